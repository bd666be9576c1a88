package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/nodepatch/nodepatch/test/harness"
)

// DefaultNodeTimeout bounds the waits on a node's Ready condition when the
// caller's context has no earlier deadline.
const DefaultNodeTimeout = 60 * time.Second

// CreateNode registers a Node that kwok plays the kubelet for, reporting
// bootID as its status.nodeInfo.bootID, and waits until it is Ready. When no
// node lifecycle controller runs, it also removes the not-ready taint that
// admission put on the new Node, as that controller would once it is Ready.
func CreateNode(ctx context.Context, client kubernetes.Interface, name string, labels map[string]string, bootID string) (*corev1.Node, error) {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      labels,
			Annotations: map[string]string{harness.KwokNodeAnnotation: "fake"},
		},
		Status: corev1.NodeStatus{NodeInfo: corev1.NodeSystemInfo{BootID: bootID}},
	}
	created, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create node %s: %w", name, err)
	}
	// The API server keeps the status a node registers with; set it
	// explicitly if a future version drops it.
	if created.Status.NodeInfo.BootID != bootID {
		if err := SetBootID(ctx, client, name, bootID); err != nil {
			return nil, err
		}
	}
	if err := WaitNodeReady(ctx, client, name, true); err != nil {
		return nil, err
	}
	if err := removeNotReadyTaint(ctx, client, name); err != nil {
		return nil, err
	}
	return client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
}

// removeNotReadyTaint drops node.kubernetes.io/not-ready from a Ready node.
// With kube-controller-manager running it is usually gone already.
func removeNotReadyTaint(ctx context.Context, client kubernetes.Interface, name string) error {
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		kept := node.Spec.Taints[:0]
		for _, t := range node.Spec.Taints {
			if t.Key != corev1.TaintNodeNotReady {
				kept = append(kept, t)
			}
		}
		if len(kept) == len(node.Spec.Taints) {
			return nil
		}
		node.Spec.Taints = kept
		_, err = client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("remove not-ready taint from node %s: %w", name, err)
	}
	return nil
}

// WaitNodeReady waits until the node's Ready condition is True (ready) or
// anything else (not ready). Errors reading the Node (an API server that is
// restarting) are retried until the deadline.
func WaitNodeReady(ctx context.Context, client kubernetes.Interface, name string, ready bool) error {
	var last string
	var lastErr error
	err := pollNode(ctx, func() (bool, error) {
		node, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if lastErr = err; err != nil {
			return false, nil
		}
		last = readyStatus(node)
		return (last == string(corev1.ConditionTrue)) == ready, nil
	})
	if err != nil {
		return fmt.Errorf("wait for node %s ready=%t (Ready condition %q, last error %v): %w", name, ready, last, lastErr, err)
	}
	return nil
}

// pollNode polls every 100ms until done, an error, or the deadline.
func pollNode(ctx context.Context, done func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, DefaultNodeTimeout)
	defer cancel()
	return wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		return done()
	})
}

// readyStatus returns the status of the node's Ready condition, or "" if it
// has none.
func readyStatus(node *corev1.Node) string {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return string(c.Status)
		}
	}
	return ""
}

// IsReady reports whether the node's Ready condition is True.
func IsReady(node *corev1.Node) bool { return readyStatus(node) == string(corev1.ConditionTrue) }

// SetDown sets (down) or removes the annotation that makes kwok report the
// node NotReady, as a host that is rebooting.
func SetDown(ctx context.Context, client kubernetes.Interface, name string, down bool) error {
	var value any // nil removes the key in a merge patch
	if down {
		value = "true"
	}
	patch := map[string]any{"metadata": map[string]any{"annotations": map[string]any{harness.DownAnnotation: value}}}
	if err := patchNode(ctx, client, name, patch); err != nil {
		return fmt.Errorf("set node %s down=%t: %w", name, down, err)
	}
	return nil
}

// SetBootID reports bootID in the node's status, as the kubelet does when
// it starts.
func SetBootID(ctx context.Context, client kubernetes.Interface, name, bootID string) error {
	patch := map[string]any{"status": map[string]any{"nodeInfo": map[string]any{"bootID": bootID}}}
	if err := patchNode(ctx, client, name, patch, "status"); err != nil {
		return fmt.Errorf("set node %s boot id: %w", name, err)
	}
	return nil
}

// patchNode merge-patches the Node, retrying until the deadline while the
// API server cannot be reached: hardware does not give up on a reboot
// because the control plane restarts.
func patchNode(ctx context.Context, client kubernetes.Interface, name string, patch map[string]any, subresources ...string) error {
	data, err := json.Marshal(patch)
	if err != nil {
		return fmt.Errorf("encode patch: %w", err)
	}
	var lastErr error
	err = pollNode(ctx, func() (bool, error) {
		_, lastErr = client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{}, subresources...)
		if lastErr != nil && !apierrors.IsNotFound(lastErr) && !apierrors.IsInvalid(lastErr) {
			return false, nil
		}
		return true, lastErr
	})
	if lastErr != nil {
		return lastErr
	}
	return err
}

// ReregisterNode deletes the node's Node object and registers it again, Ready
// and with the host's current boot id but none of the old annotations, taints
// or cordon, as a kubelet does when its Node was deleted under it. A reboot
// under way finishes first, and none starts until the Node is back.
func (s *Supervisor) ReregisterNode(ctx context.Context, name string) error {
	var hardware *sync.Mutex
	var host *Host
	if err := s.withNode(name, func(n *simNode) error { hardware, host = n.hardware, n.host; return nil }); err != nil {
		return err
	}
	hardware.Lock()
	defer hardware.Unlock()
	if err := s.client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("re-register node %s: delete: %w", name, err)
	}
	err := pollNode(ctx, func() (bool, error) {
		_, err := s.client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, nil
		}
		return false, err
	})
	if err != nil {
		return fmt.Errorf("re-register node %s: wait for the deletion: %w", name, err)
	}
	bootID, err := host.BootID()
	if err != nil {
		return err
	}
	if _, err := CreateNode(ctx, s.client, name, nil, bootID); err != nil {
		return fmt.Errorf("re-register node %s: %w", name, err)
	}
	s.logf("%s: node deleted and registered again, boot id %s", name, bootID)
	return nil
}
