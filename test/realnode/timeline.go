package realnode

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/nodepatch/nodepatch/pkg/state"
)

// Timeline events: what a Timeline notes, the first time it sees each.
const (
	EventAdmitted      = "admitted"       // the rollout controller's admission appears
	EventTainted       = "tainted"        // nodepatch.io/rebooting taint appears
	EventDraining      = "draining"       // phase Draining
	EventRebooting     = "rebooting"      // phase Rebooting
	EventNotReady      = "not-ready"      // Ready stops being True
	EventNewBoot       = "new-boot"       // the kubelet reports another boot id
	EventReadyNewBoot  = "ready-new-boot" // Ready again, from that boot
	EventUntainted     = "untainted"      // taint and cordon gone after the cycle
	EventLockTaken     = "lock-taken"     // a slot Lease names the node
	EventLockReleased  = "lock-released"  // and then that Lease no longer does
	rebootingTaintKey  = "nodepatch.io/rebooting"
	phaseAnnotation    = "nodepatch.io/phase"
	lockLabelSelector  = "nodepatch.io/lock"
	cordonedAnnotation = "nodepatch.io/cordoned-by-nodepatch"
)

// Timeline stamps the moments of one node's reboot cycle as the API server
// shows them, from informers of its own (independent of the agent).
type Timeline struct {
	node   string
	cancel context.CancelFunc

	mu       sync.Mutex
	at       map[string]time.Time
	rv       map[string]uint64 // resourceVersion of the object that showed the event
	firstBot string            // boot id when the timeline started
	seenRV   string            // resourceVersion of the object being handled
	log      []string          // what each event showed, for failure messages
	held     map[string]bool   // lease name -> it names this node
}

// StartTimeline watches node and the lock Leases in namespace.
func StartTimeline(ctx context.Context, client kubernetes.Interface, node, namespace string) (*Timeline, error) {
	runCtx, cancel := context.WithCancel(context.Background())
	tl := &Timeline{node: node, cancel: cancel, at: map[string]time.Time{}, rv: map[string]uint64{}, held: map[string]bool{}}
	nodes := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("metadata.name", node).String()
	}))
	leases := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = lockLabelSelector }))
	_, err := nodes.Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: tl.onNode, UpdateFunc: func(_, obj any) { tl.onNode(obj) },
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("timeline: watch node: %w", err)
	}
	_, err = leases.Coordination().V1().Leases().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: tl.onLease, UpdateFunc: func(_, obj any) { tl.onLease(obj) },
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("timeline: watch leases: %w", err)
	}
	nodes.Start(runCtx.Done())
	leases.Start(runCtx.Done())
	syncCtx, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	for _, f := range []informers.SharedInformerFactory{nodes, leases} {
		for typ, ok := range f.WaitForCacheSync(syncCtx.Done()) {
			if !ok {
				cancel()
				return nil, fmt.Errorf("timeline: cache of %v did not sync: %w", typ, syncCtx.Err())
			}
		}
	}
	return tl, nil
}

// Stop ends the informers.
func (tl *Timeline) Stop() { tl.cancel() }

func (tl *Timeline) onNode(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.seenRV = node.ResourceVersion
	boot := node.Status.NodeInfo.BootID
	if tl.firstBot == "" {
		tl.firstBot = boot
	}
	tainted := slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == rebootingTaintKey })
	tl.log = append(tl.log, fmt.Sprintf("rv %s node: tainted=%t unschedulable=%t phase=%q cordoned-by=%q ready=%t boot=%s",
		node.ResourceVersion, tainted, node.Spec.Unschedulable, node.Annotations[phaseAnnotation], node.Annotations[cordonedAnnotation], NodeReady(node), boot))
	if _, ok := node.Annotations[state.AnnotationAdmitted]; ok {
		tl.note(EventAdmitted)
	}
	if tainted {
		tl.note(EventTainted)
	}
	switch node.Annotations[phaseAnnotation] {
	case "Draining":
		tl.note(EventDraining)
	case "Rebooting":
		tl.note(EventRebooting)
	}
	_, seenReboot := tl.at[EventRebooting]
	if seenReboot && !NodeReady(node) {
		tl.note(EventNotReady)
	}
	if boot != "" && boot != tl.firstBot {
		tl.note(EventNewBoot)
		if NodeReady(node) {
			tl.note(EventReadyNewBoot)
		}
	}
	_, seenTaint := tl.at[EventTainted]
	if seenTaint && !tainted && !node.Spec.Unschedulable && node.Annotations[cordonedAnnotation] == "" {
		tl.note(EventUntainted)
	}
}

func (tl *Timeline) onLease(obj any) {
	lease, ok := obj.(*coordinationv1.Lease)
	if !ok {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.seenRV = lease.ResourceVersion
	holds := lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == tl.node
	tl.log = append(tl.log, fmt.Sprintf("rv %s lease %s: held by this node=%t", lease.ResourceVersion, lease.Name, holds))
	if holds {
		tl.note(EventLockTaken)
	} else if tl.held[lease.Name] {
		tl.note(EventLockReleased)
	}
	tl.held[lease.Name] = holds
}

// note stamps event the first time, with the resourceVersion of the object
// being handled; tl.mu held.
func (tl *Timeline) note(event string) {
	if _, ok := tl.at[event]; !ok {
		tl.at[event] = time.Now()
		tl.rv[event], _ = strconv.ParseUint(tl.seenRV, 10, 64)
	}
}

// Log is what each event showed, in arrival order.
func (tl *Timeline) Log() string {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return strings.Join(tl.log, "\n")
}

// Before reports whether the write that showed event a came before the one
// that showed b, by resourceVersion. Node and Lease events come through
// separate watches, whose arrival order says nothing; the resourceVersions
// of one etcd-backed API server are its store's revisions, which are
// ordered across objects.
func (tl *Timeline) Before(a, b string) (bool, error) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	ra, rb := tl.rv[a], tl.rv[b]
	if ra == 0 || rb == 0 {
		return false, fmt.Errorf("timeline: no resourceVersion for %s (%d) or %s (%d)", a, ra, b, rb)
	}
	return ra < rb, nil
}

// At is when event was first seen, and whether it was.
func (tl *Timeline) At(event string) (time.Time, bool) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	at, ok := tl.at[event]
	return at, ok
}

// Between is the time from one event to another; an error names a missing one.
func (tl *Timeline) Between(from, to string) (time.Duration, error) {
	a, ok := tl.At(from)
	if !ok {
		return 0, fmt.Errorf("timeline: %s was not seen", from)
	}
	b, ok := tl.At(to)
	if !ok {
		return 0, fmt.Errorf("timeline: %s was not seen", to)
	}
	return b.Sub(a), nil
}
