package rollout

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/sim"
)

// startController runs `nodepatch controller`, the only replica, as a real
// process with its log in dir, and waits until it leads: its limit is on the
// lock's header, where every agent's lock reads it.
func startController(ctx context.Context, client kubernetes.Interface, kubeconfig, bin, dir string, maxUnavailable int) (*harness.Process, error) {
	p, err := harness.StartProcess(harness.ProcessSpec{
		Name: "nodepatch controller", Path: bin, LogPath: filepath.Join(dir, "controller.log"), Env: sim.ProcessEnv(),
		Args: []string{"controller", "--kubeconfig=" + kubeconfig, "--namespace=" + namespace, "--lock-name=" + lockName,
			"--identity=demo", "--max-unavailable=" + strconv.Itoa(maxUnavailable),
			"--metrics-address=127.0.0.1:0", "--log-format=json"},
	})
	if err != nil {
		return nil, err
	}
	err = waitFor(ctx, time.Minute, "the rollout controller to lead and write its limit", func() (bool, error) {
		if err := controllerErr(p); err != nil {
			return false, err
		}
		header, err := client.CoordinationV1().Leases(namespace).Get(ctx, lockName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && header.Annotations[lock.AnnotationLimitSource] == lock.LimitSourceController, err
	})
	if err != nil {
		_ = p.Kill()
		return nil, err
	}
	return p, nil
}

// controllerErr says that the controller exited, with the end of its log;
// nil while it runs, or when none was started.
func controllerErr(p *harness.Process) error {
	if p == nil {
		return nil
	}
	if exited, err := p.Exited(); exited {
		return fmt.Errorf("the rollout controller exited (%v); its log ends:\n%s", err, p.LogTail(2000))
	}
	return nil
}

// Admissions counts the rollout controller's Admitted Events on the Nodes.
func Admissions(ctx context.Context, client kubernetes.Interface) (int, error) {
	events, err := client.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=Admitted"})
	if err != nil {
		return 0, fmt.Errorf("reading admission Events: %w", err)
	}
	n := 0
	for _, e := range events.Items {
		if e.InvolvedObject.Kind == "Node" {
			n += int(max(e.Count, 1))
		}
	}
	return n, nil
}
