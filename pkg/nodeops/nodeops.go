// Package nodeops changes the agent's own Node: its nodepatch annotations, taint and
// cordon (in one conflict-checked update, so they are never half written), and
// drains it through k8s.io/kubectl/pkg/drain, which evicts pods so that
// PodDisruptionBudgets hold.
package nodeops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
	"k8s.io/kubectl/pkg/drain"

	"github.com/nodepatch/nodepatch/pkg/state"
)

// Node changes one Node.
type Node struct {
	Client kubernetes.Interface
	Name   string
	// Cached, when set, returns the Node as the agent's informer has it: Update
	// tries its write on that copy first and reads the API server only when
	// the copy turns out stale (a conflict) or mutate refuses it, which saves
	// a GET per write. The agent waits for each of its writes to reach its
	// cache, so the copy is usually current.
	Cached func() (*corev1.Node, error)
}

// Update lets mutate change a copy of the Node and writes it back with the
// resourceVersion of that copy, retrying on conflicts from a fresh read: a
// concurrent change by an operator (say, a block annotation) is never
// overwritten. The first copy may come from the cache (see Cached); a write
// only succeeds if that copy was current, and a refusal by mutate is judged
// again on the API server's copy.
func (n *Node) Update(ctx context.Context, mutate func(*corev1.Node) error) (*corev1.Node, error) {
	updated, tried, err := n.updateCached(ctx, mutate)
	if tried {
		if err != nil {
			return nil, fmt.Errorf("updating node %s: %w", n.Name, err)
		}
		return updated, nil
	}
	attempts := 0
	err = retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		attempts++
		current, err := n.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		updated, err = n.write(ctx, current, mutate)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("updating node %s (%d attempts): %w", n.Name, attempts, err)
	}
	return updated, nil
}

// updateCached tries the write on the cached copy. tried is false when the
// API server's copy must decide: no cache, a stale copy (a conflict) or a
// refusal by mutate. Any other error of the write is the answer: the write
// may have landed, and mutate is not applied twice.
func (n *Node) updateCached(ctx context.Context, mutate func(*corev1.Node) error) (updated *corev1.Node, tried bool, err error) {
	if n.Cached == nil {
		return nil, false, nil
	}
	cached, err := n.Cached()
	if err != nil || cached == nil {
		return nil, false, nil
	}
	next := cached.DeepCopy()
	if mutate(next) != nil {
		return nil, false, nil
	}
	updated, err = n.Client.CoreV1().Nodes().Update(ctx, next, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		return nil, false, nil
	}
	return updated, true, err
}

func (n *Node) write(ctx context.Context, current *corev1.Node, mutate func(*corev1.Node) error) (*corev1.Node, error) {
	next := current.DeepCopy()
	if err := mutate(next); err != nil {
		return nil, err
	}
	return n.Client.CoreV1().Nodes().Update(ctx, next, metav1.UpdateOptions{})
}

// SetAgentState writes the agent-owned annotations of st onto node.
func SetAgentState(node *corev1.Node, st state.Node) {
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	for key, value := range st.AgentAnnotations() {
		if value == nil {
			delete(node.Annotations, key)
		} else {
			node.Annotations[key] = *value
		}
	}
}

// HasTaint tells whether node carries nodepatch's taint.
func HasTaint(node *corev1.Node) bool {
	for _, t := range node.Spec.Taints {
		if t.Key == state.TaintKey {
			return true
		}
	}
	return false
}

// AddTaint puts nodepatch's NoSchedule taint on node, once.
func AddTaint(node *corev1.Node, now time.Time) {
	if HasTaint(node) {
		return
	}
	added := metav1.NewTime(now)
	node.Spec.Taints = append(node.Spec.Taints, corev1.Taint{
		Key: state.TaintKey, Value: "true", Effect: corev1.TaintEffectNoSchedule, TimeAdded: &added,
	})
}

// RemoveTaint takes nodepatch's taint off node; other taints stay.
func RemoveTaint(node *corev1.Node) {
	kept := node.Spec.Taints[:0]
	for _, t := range node.Spec.Taints {
		if t.Key != state.TaintKey {
			kept = append(kept, t)
		}
	}
	node.Spec.Taints = kept
}

// DrainOptions are the operator's drain settings.
type DrainOptions struct {
	Timeout     time.Duration
	GracePeriod int // seconds; -1 uses each pod's own
	PodSelector string
	// DeleteEmptyDirData lets pods with emptyDir volumes go (their data with them).
	DeleteEmptyDirData bool
	// Force lets pods without a controller go: deleting them loses them for good.
	Force bool
	// SkipWaitForDeleteTimeout: pods whose deletion is older than this many
	// seconds are not waited for (0: wait for all), as kubectl's flag.
	SkipWaitForDeleteTimeout int
	// DisableEviction deletes the pods instead of evicting them: past their
	// PodDisruptionBudgets (--drain-timeout-action=force only).
	DisableEviction bool
	Log             io.Writer
	OnPodEvicted    func(pod *corev1.Pod)
}

// ErrDrainTimeout: the drain did not finish within DrainOptions.Timeout, whether
// evictions were still refused or evicted pods were still terminating.
var ErrDrainTimeout = errors.New("drain timed out")

// Drain evicts the node's pods (DaemonSet pods stay) and waits until they are
// gone, for at most opts.Timeout. Pods without a controller make it fail unless
// opts.Force: deleting them would lose them for good, which is the operator's call.
//
// The deadline is a context of its own rather than the drain helper's Timeout:
// the helper reports its two timeouts (evictions refused, pods slow to go) in
// different words, and a context says which it was without reading any.
func (n *Node) Drain(ctx context.Context, opts DrainOptions) error {
	parent := ctx
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}
	if opts.Log == nil {
		opts.Log = io.Discard // the drain helper writes progress unconditionally
	}
	helper := &drain.Helper{
		Ctx:                             ctx,
		Client:                          budgetWaiting{Interface: n.Client},
		GracePeriodSeconds:              opts.GracePeriod,
		IgnoreAllDaemonSets:             true,
		DeleteEmptyDirData:              opts.DeleteEmptyDirData,
		Force:                           opts.Force,
		SkipWaitForDeleteTimeoutSeconds: opts.SkipWaitForDeleteTimeout,
		DisableEviction:                 opts.DisableEviction,
		PodSelector:                     opts.PodSelector,
		EvictErrorRetryDelay:            evictRetryDelay, // budgetWaiting has waited for the budget
		Out:                             opts.Log,
		ErrOut:                          opts.Log,
		OnPodDeletedOrEvicted: func(pod *corev1.Pod, _ bool) {
			if opts.OnPodEvicted != nil {
				opts.OnPodEvicted(pod)
			}
		},
	}
	err := drain.RunNodeDrain(helper, n.Name)
	if err != nil && parent.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("draining node %s: %w after %s: %v", n.Name, ErrDrainTimeout, opts.Timeout, err)
	}
	if err != nil {
		return fmt.Errorf("draining node %s: %w", n.Name, err)
	}
	return nil
}

// PodsToEvict lists the pods a drain would evict, for a dry run.
func (n *Node) PodsToEvict(ctx context.Context, opts DrainOptions) ([]string, error) {
	helper := &drain.Helper{Ctx: ctx, Client: n.Client, IgnoreAllDaemonSets: true, DeleteEmptyDirData: opts.DeleteEmptyDirData,
		Force: opts.Force, PodSelector: opts.PodSelector}
	list, errs := helper.GetPodsForDeletion(n.Name)
	if len(errs) > 0 {
		return nil, fmt.Errorf("listing pods to evict from node %s: %v", n.Name, errs)
	}
	var names []string
	for _, p := range list.Pods() {
		names = append(names, p.Namespace+"/"+p.Name)
	}
	return names, nil
}

// Pods lists the pods bound to the node, from the API server: the pod blocker
// and the health gate read them only at the moments they decide on.
func (n *Node) Pods(ctx context.Context) ([]corev1.Pod, error) {
	list, err := n.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("spec.nodeName", n.Name).String(),
	})
	if err != nil {
		return nil, fmt.Errorf("listing the pods on node %s: %w", n.Name, err)
	}
	return list.Items, nil
}

// DrainBlockers names what keeps the drain from finishing: each pod still to
// go, with the PodDisruptionBudget that covers it and the disruptions it
// allows. For the Event after a drain timed out; best effort.
func (n *Node) DrainBlockers(ctx context.Context, opts DrainOptions) ([]string, error) {
	helper := &drain.Helper{Ctx: ctx, Client: n.Client, IgnoreAllDaemonSets: true, DeleteEmptyDirData: true, Force: true, PodSelector: opts.PodSelector}
	list, errs := helper.GetPodsForDeletion(n.Name)
	if len(errs) > 0 {
		return nil, fmt.Errorf("listing the pods left on node %s: %v", n.Name, errs)
	}
	budgets := map[string][]policyv1.PodDisruptionBudget{}
	var out []string
	for _, p := range list.Pods() {
		if _, ok := budgets[p.Namespace]; !ok {
			pdbs, err := n.Client.PolicyV1().PodDisruptionBudgets(p.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, fmt.Errorf("listing the PodDisruptionBudgets in %s: %w", p.Namespace, err)
			}
			budgets[p.Namespace] = pdbs.Items
		}
		out = append(out, describeBlocker(p, budgets[p.Namespace]))
	}
	return out, nil
}

// selects tells whether the budget covers the pod (an empty or bad selector
// covers nothing, as the API server's eviction check has it).
func selects(pdb policyv1.PodDisruptionBudget, p corev1.Pod) bool {
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	return err == nil && !sel.Empty() && sel.Matches(labels.Set(p.Labels))
}

func describeBlocker(p corev1.Pod, pdbs []policyv1.PodDisruptionBudget) string {
	for _, pdb := range pdbs {
		if !selects(pdb, p) {
			continue
		}
		return fmt.Sprintf("pod %s/%s (PodDisruptionBudget %s allows %d disruptions)", p.Namespace, p.Name, pdb.Name, pdb.Status.DisruptionsAllowed)
	}
	return fmt.Sprintf("pod %s/%s", p.Namespace, p.Name)
}
