package status

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/state"
)

// ErrNoCycle: the node is in no cycle, so there is nothing to approve.
var ErrNoCycle = errors.New("no cycle to approve")

// Approve approves gate for the node's current cycle: it writes the gate's
// approval annotation with the cycle's id, on the version of the Node it read,
// so an approval never lands on a cycle that began after the look.
func Approve(ctx context.Context, client kubernetes.Interface, node, gate string) (string, error) {
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("reading node %s: %w", node, err)
	}
	st, _ := state.Parse(n.Annotations)
	cycle := st.CycleID()
	if cycle == "" {
		return "", fmt.Errorf("node %s: %w (it is %s)", node, ErrNoCycle, phaseOf(st))
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": n.ResourceVersion,
		"annotations":     map[string]string{state.ApprovalAnnotation(gate): cycle},
	}})
	if err != nil {
		return "", err
	}
	if _, err := client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return "", fmt.Errorf("approving %s on node %s: %w", gate, node, err)
	}
	return cycle, nil
}

func phaseOf(st state.Node) string {
	if st.Phase == state.PhaseIdle {
		return "idle"
	}
	return string(st.Phase)
}
