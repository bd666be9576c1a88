package harness

import (
	_ "embed"
	"fmt"
	"os"
)

// KwokStages is the kwok Stage configuration StartControlPlane gives kwok;
// see kwok-stages.yaml for how it differs from kwok's defaults.
//
//go:embed kwok-stages.yaml
var KwokStages string

const (
	// KwokNodeAnnotation marks the nodes kwok manages (value "fake").
	KwokNodeAnnotation = "kwok.x-k8s.io/node"
	// DownAnnotation, set to "true" on a kwok node, makes it NotReady
	// until removed: a host that is rebooting.
	DownAnnotation = "sim.nodepatch.io/down"
)

func (cp *ControlPlane) startKwok(token string) error {
	kubeconfig, err := cp.KubeconfigForToken(token)
	if err != nil {
		return err
	}
	stages := cp.path("kwok-stages.yaml")
	if err := os.WriteFile(stages, []byte(KwokStages), 0o644); err != nil {
		return fmt.Errorf("write kwok stages: %w", err)
	}
	// kwok keeps state under $HOME/.kwok: give it a home of its own.
	home := cp.path("kwok-home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		return fmt.Errorf("create kwok home: %w", err)
	}
	args := []string{
		"--kubeconfig=" + kubeconfig,
		"--config=" + stages,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
		"--cidr=10.244.0.1/16", // pod IPs, apart from the service range
		"--node-ip=10.1.0.1",
	}
	return cp.startComponent("kwok", args, append(os.Environ(), "HOME="+home))
}
