package harness

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// startControllers starts kube-controller-manager and kube-scheduler and
// waits until the controller manager has published kube-root-ca.crt and the
// default ServiceAccount in the default namespace, which shows its
// controllers run.
func (cp *ControlPlane) startControllers(ctx context.Context, tokens map[string]string, timeout time.Duration) error {
	kcmConfig, err := cp.KubeconfigForToken(tokens["kube-controller-manager"])
	if err != nil {
		return err
	}
	schedConfig, err := cp.KubeconfigForToken(tokens["kube-scheduler"])
	if err != nil {
		return err
	}
	if err := cp.startComponent("kube-controller-manager", cp.controllerManagerArgs(kcmConfig), nil); err != nil {
		return err
	}
	if err := cp.startComponent("kube-scheduler", schedulerArgs(schedConfig), nil); err != nil {
		return err
	}
	return cp.waitFor(ctx, timeout, "kube-controller-manager to publish kube-root-ca.crt", cp.controllersRunning)
}

func (cp *ControlPlane) controllerManagerArgs(kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		// No HTTPS endpoint: nothing scrapes it, and no port to pick.
		"--secure-port=0",
		"--service-account-private-key-file=" + cp.pki.SAKey,
		"--root-ca-file=" + cp.pki.CACert,
		"--use-service-account-credentials=false",
		// Cloud controllers are skipped by kube-controller-manager itself.
		"--controllers=*",
	}
}

func schedulerArgs(kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
	}
}

func (cp *ControlPlane) controllersRunning(ctx context.Context) (bool, error) {
	_, err := cp.Client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get kube-root-ca.crt: %w", err)
	}
	_, err = cp.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("get default ServiceAccount: %w", err)
	}
	return true, nil
}
