package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/nodepatch/nodepatch/pkg/state"
)

// observer watches every Node, as the rollout controller does, and times what
// the controller does about it: from the moment a node is back in service while
// others wait (a freed slot) to the next admission. Times are when this
// process saw the events, for both ends, so the watch's delivery delay cancels
// out but for its jitter.
type observer struct {
	cancel  context.CancelFunc
	done    chan struct{}
	factory informers.SharedInformerFactory

	mu    sync.Mutex
	nodes map[string]*observed
	// freed are the freed slots not yet taken by an admission, oldest first.
	freed []time.Time
	// delays are freed slot -> next admission, in the order of the admissions.
	delays     []time.Duration
	admissions int
	events     int
	out        int // nodes out now
	maxOut     int // the most out at once
	// onAdmit, when set, is called (without mu) for every new admission.
	onAdmit func(node string)
}

// observed is what the observer keeps of one Node.
type observed struct {
	firstBootID string
	bootID      string
	out         bool   // counts against the limit: NotReady, cordoned, tainted, in a cycle or admitted
	waiting     bool   // reports a need and is not in a cycle
	admitted    string // the admission's value
	clean       bool   // idle: no phase, admission, need, cordon or taint
}

func startObserver(ctx context.Context, client kubernetes.Interface, onAdmit func(string)) (*observer, error) {
	runCtx, cancel := context.WithCancel(context.Background())
	o := &observer{cancel: cancel, done: make(chan struct{}), nodes: map[string]*observed{}, onAdmit: onAdmit,
		factory: informers.NewSharedInformerFactory(client, 0)}
	inf := o.factory.Core().V1().Nodes().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { o.onNode(obj) },
		UpdateFunc: func(_, obj any) { o.onNode(obj) },
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("observer: watch nodes: %w", err)
	}
	o.factory.Start(runCtx.Done())
	go func() {
		<-runCtx.Done()
		o.factory.Shutdown()
		close(o.done)
	}()
	syncCtx, cancelSync := context.WithTimeout(ctx, time.Minute)
	defer cancelSync()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		o.stop()
		return nil, fmt.Errorf("observer: the node cache did not sync: %w", syncCtx.Err())
	}
	return o, nil
}

func (o *observer) stop() {
	o.cancel()
	<-o.done
}

func (o *observer) onNode(obj any) {
	node, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	now := time.Now()
	admittedNow := o.note(node, now)
	if admittedNow && o.onAdmit != nil {
		o.onAdmit(node.Name)
	}
}

// note updates the node's record and the freed slots and admissions; it
// reports whether this event is a new admission.
func (o *observer) note(node *corev1.Node, now time.Time) bool {
	st, _ := state.Parse(node.Annotations)
	tainted := slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == state.TaintKey })
	inCycle := st.Phase != state.PhaseIdle || !st.Admitted.IsZero() || tainted
	admitted := node.Annotations[state.AnnotationAdmitted]
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events++
	prev := o.nodes[node.Name]
	if prev == nil {
		prev = &observed{firstBootID: node.Status.NodeInfo.BootID}
		o.nodes[node.Name] = prev
	}
	cur := &observed{
		firstBootID: prev.firstBootID,
		bootID:      node.Status.NodeInfo.BootID,
		out:         !ready(node) || node.Spec.Unschedulable || inCycle,
		waiting:     !st.NeedSince.IsZero() && !inCycle,
		admitted:    admitted,
		clean:       !inCycle && st.NeedSince.IsZero() && !node.Spec.Unschedulable,
	}
	o.nodes[node.Name] = cur
	if prev.out != cur.out {
		if cur.out {
			o.out++
		} else {
			o.out--
		}
		o.maxOut = max(o.maxOut, o.out)
	}
	if prev.out && !cur.out && o.waitingLocked() > 0 {
		o.freed = append(o.freed, now)
	}
	if admitted == "" || admitted == prev.admitted {
		return false
	}
	o.admissions++
	if len(o.freed) > 0 {
		o.delays = append(o.delays, now.Sub(o.freed[0]))
		o.freed = o.freed[1:]
	}
	return true
}

// waitingLocked counts the nodes that wait for an admission; o.mu held.
func (o *observer) waitingLocked() int {
	n := 0
	for _, rec := range o.nodes {
		if rec.waiting {
			n++
		}
	}
	return n
}

// finished counts the nodes back from a reboot (a boot id other than the
// first seen) and idle again.
func (o *observer) finished() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, rec := range o.nodes {
		if rec.clean && rec.bootID != rec.firstBootID {
			n++
		}
	}
	return n
}

// idle counts the nodes that are idle (whether or not they rebooted).
func (o *observer) idle() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := 0
	for _, rec := range o.nodes {
		if rec.clean {
			n++
		}
	}
	return n
}

// peakOut is the most nodes seen out at once (NotReady, cordoned, tainted,
// in a cycle or admitted): what the controller's limit bounds.
func (o *observer) peakOut() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.maxOut
}

// timings returns the freed slot -> next admission delays, the admissions and
// the Node events seen.
func (o *observer) timings() (delays []time.Duration, admissions, events int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.delays), o.admissions, o.events
}

func ready(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
