package sim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// The contract the watcher checks (the agent's own constants are not
// imported: the watcher is an independent observer).
const (
	LockLabel           = "nodepatch.io/lock"
	RebootingTaint      = "nodepatch.io/rebooting"
	CordonedAnnotation  = "nodepatch.io/cordoned-by-nodepatch"
	PhaseAnnotation     = "nodepatch.io/phase"
	ForceAnnotation     = "nodepatch.io/force-reboot"
	BlockAnnotation     = "nodepatch.io/block-reboot"
	PauseAnnotation     = "nodepatch.io/pause"
	RepeatedAnnotation  = "nodepatch.io/repeated-reboots"
	AttemptsAnnotation  = "nodepatch.io/reboot-attempts"
	LimitAnnotation     = "nodepatch.io/limit"
	LimitGenAnnotation  = "nodepatch.io/limit-generation"
	DefaultWaitDeadline = 2 * time.Minute
)

// Watcher observes the cluster through informers, independently of the
// agents, and keeps the peaks the safety invariants are about: lock holders
// at once, and nodes taken out of service at once. It updates its own state
// from each event in order, so a short-lived peak is not missed.
type Watcher struct {
	cancel    context.CancelFunc
	done      chan struct{}
	client    kubernetes.Interface
	namespace string

	mu          sync.Mutex
	holders     map[string]string // lock Lease name -> holderIdentity
	cordoned    map[string]bool   // node name -> tainted or annotated by nodepatch
	bootIDs     map[string]string // node name -> last seen boot id
	completions map[string]int    // node name -> boot id changes seen
	maxHolders  int
	maxCordoned int
	inv         invariants
}

// StartWatcher starts informers on all Nodes and on the lock Leases in
// namespace, and returns once their caches have synced.
func StartWatcher(ctx context.Context, client kubernetes.Interface, namespace string) (*Watcher, error) {
	runCtx, cancel := context.WithCancel(context.Background())
	w := &Watcher{
		cancel: cancel, done: make(chan struct{}), client: client, namespace: namespace,
		holders: map[string]string{}, cordoned: map[string]bool{},
		bootIDs: map[string]string{}, completions: map[string]int{},
		inv: newInvariants(),
	}
	nodes := informers.NewSharedInformerFactory(client, 0)
	leases := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = LockLabel }))
	if err := w.register(nodes, leases); err != nil {
		cancel()
		return nil, err
	}
	nodes.Start(runCtx.Done())
	leases.Start(runCtx.Done())
	go func() {
		<-runCtx.Done()
		nodes.Shutdown()
		leases.Shutdown()
		close(w.done)
	}()
	if err := w.waitSynced(ctx, nodes, leases); err != nil {
		w.Stop()
		return nil, err
	}
	return w, nil
}

func (w *Watcher) register(nodes, leases informers.SharedInformerFactory) error {
	_, err := nodes.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.onNode(obj, false) },
		UpdateFunc: func(_, obj any) { w.onNode(obj, false) },
		DeleteFunc: func(obj any) { w.onNode(obj, true) },
	})
	if err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	_, err = leases.Coordination().V1().Leases().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { w.onLease(obj, false) },
		UpdateFunc: func(_, obj any) { w.onLease(obj, false) },
		DeleteFunc: func(obj any) { w.onLease(obj, true) },
	})
	if err != nil {
		return fmt.Errorf("watch leases: %w", err)
	}
	return nil
}

func (w *Watcher) waitSynced(ctx context.Context, factories ...informers.SharedInformerFactory) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, f := range factories {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("watcher: cache of %v did not sync: %w", typ, ctx.Err())
			}
		}
	}
	return nil
}

func (w *Watcher) onNode(obj any, deleted bool) {
	node, ok := unwrapTombstone(obj).(*corev1.Node)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.noteVersion("node", node.Name, node.ResourceVersion, deleted)
	if deleted {
		delete(w.cordoned, node.Name)
		delete(w.inv.nodes, node.Name)
		w.checkBounds()
		return
	}
	w.cordoned[node.Name] = outOfService(node)
	w.maxCordoned = max(w.maxCordoned, countTrue(w.cordoned))
	w.noteBootID(node.Name, node.Status.NodeInfo.BootID)
	w.inv.nodes[node.Name] = node
	w.checkNode(node)
	w.checkBounds()
}

// noteBootID counts a completed reboot when a node's boot id changes.
func (w *Watcher) noteBootID(node, bootID string) {
	last := w.bootIDs[node]
	if bootID == "" || bootID == last {
		return
	}
	if last != "" {
		w.completions[node]++
	}
	w.bootIDs[node] = bootID
}

func (w *Watcher) onLease(obj any, deleted bool) {
	lease, ok := unwrapTombstone(obj).(*coordinationv1.Lease)
	if !ok {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	w.noteVersion("lease", lease.Name, lease.ResourceVersion, deleted)
	if deleted || holder == "" {
		delete(w.holders, lease.Name)
		w.checkBounds()
		return
	}
	w.holders[lease.Name] = holder
	w.maxHolders = max(w.maxHolders, len(w.distinctHolders()))
	w.checkBounds()
}

func unwrapTombstone(obj any) any {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return tomb.Obj
	}
	return obj
}

// outOfService reports whether nodepatch has taken the node out: it carries
// the rebooting taint or the cordoned-by-nodepatch annotation.
func outOfService(node *corev1.Node) bool {
	if node.Annotations[CordonedAnnotation] == "true" {
		return true
	}
	return slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == RebootingTaint })
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}

// distinctHolders returns the sorted distinct lock holders; w.mu held.
func (w *Watcher) distinctHolders() []string {
	var holders []string
	for _, h := range w.holders {
		if !slices.Contains(holders, h) {
			holders = append(holders, h)
		}
	}
	slices.Sort(holders)
	return holders
}

// MaxHolders is the most distinct lock holders seen at once.
func (w *Watcher) MaxHolders() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxHolders
}

// MaxCordoned is the most nodes seen out of service (rebooting taint or
// cordoned-by-nodepatch annotation) at once.
func (w *Watcher) MaxCordoned() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.maxCordoned
}

// Holders returns the current distinct lock holders, sorted.
func (w *Watcher) Holders() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.distinctHolders()
}

// Cordoned returns the nodes out of service now, sorted.
func (w *Watcher) Cordoned() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var names []string
	for name, out := range w.cordoned {
		if out {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// RebootCompletions is how many boot id changes the watcher saw on node.
func (w *Watcher) RebootCompletions(node string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.completions[node]
}

// TotalRebootCompletions is the sum of RebootCompletions over all nodes.
func (w *Watcher) TotalRebootCompletions() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	total := 0
	for _, n := range w.completions {
		total += n
	}
	return total
}

// WaitFor polls cond every 50ms until it is true or ctx ends; a ctx without
// a deadline gets DefaultWaitDeadline. cond must not call WaitFor.
func (w *Watcher) WaitFor(ctx context.Context, cond func() bool) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultWaitDeadline)
		defer cancel()
	}
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(context.Context) (bool, error) {
		return cond(), nil
	})
	if err != nil {
		return fmt.Errorf("watcher: condition not met (holders now %v, out of service now %v): %w",
			w.Holders(), w.Cordoned(), err)
	}
	return nil
}

// Stop ends the informers and waits for them.
func (w *Watcher) Stop() {
	w.cancel()
	<-w.done
}
