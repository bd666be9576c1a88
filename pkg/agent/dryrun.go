package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// dryRun is the agent's effects made harmless: the same Decide and the same
// executor run, but node writes land in a shadow copy that the agent's own reads
// see, the lock is taken and released in memory, the drain only lists the pods it
// would evict and the reboot only says so. Each says what it would do in a DryRun
// Event; the executor's own Events go to the log only. After the would-be reboot
// the shadow is dropped and the agent rests for a period.
type dryRun struct {
	agent *Agent
	// Real readers and the real recorder, wrapped by the dry effects.
	node   NodeReader
	nodes  NodeWriter
	lock   Lock
	events record.EventRecorder

	shadow    map[string]*string // agent-written annotations (and force) as the agent would have them
	tainted   bool
	cordoned  *bool // nil: the node's own
	held      bool
	restUntil time.Time
}

// newDryRun swaps a's effects for recording ones.
func newDryRun(a *Agent) *dryRun {
	d := &dryRun{agent: a, node: a.cfg.Node, nodes: a.cfg.Nodes, lock: a.cfg.Lock, events: a.cfg.Events}
	a.cfg.Node, a.cfg.Nodes, a.cfg.Lock = dryNodeReader{d}, dryNodeWriter{d}, dryLock{d}
	a.cfg.Rebooter, a.cfg.Patcher, a.cfg.HostBusy, a.cfg.FlushEvents = dryRebooter{d}, nil, nil, nil
	a.cfg.Events = logOnlyRecorder{}
	return d
}

func (d *dryRun) say(format string, args ...any) {
	d.events.Event(d.agent.nodeRef(), corev1.EventTypeNormal, "DryRun", "dry run: "+fmt.Sprintf(format, args...))
}

// overlay is the real node with the shadow on top.
func (d *dryRun) overlay(real *corev1.Node) *corev1.Node {
	n := real.DeepCopy()
	if d.shadow == nil {
		return n
	}
	if n.Annotations == nil {
		n.Annotations = map[string]string{}
	}
	for key, value := range d.shadow {
		if value == nil {
			delete(n.Annotations, key)
		} else {
			n.Annotations[key] = *value
		}
	}
	nodeops.RemoveTaint(n)
	if d.tainted {
		nodeops.AddTaint(n, d.agent.cfg.Clock())
	}
	if d.cordoned != nil {
		n.Spec.Unschedulable = *d.cordoned
	}
	return n
}

// remember takes what a write would have left on the node into the shadow.
func (d *dryRun) remember(before, after *corev1.Node) {
	d.shadow = map[string]*string{}
	keys := append(mapKeys(state.Node{}.AgentAnnotations()), state.AnnotationForceReboot, state.AnnotationAdmitted, state.AnnotationAdmittedSlot)
	for _, key := range keys {
		if v, ok := after.Annotations[key]; ok {
			d.shadow[key] = &v
		} else {
			d.shadow[key] = nil
		}
	}
	if !nodeops.HasTaint(before) && nodeops.HasTaint(after) {
		d.say("would taint %s and cordon (already cordoned: %t)", state.TaintKey, before.Spec.Unschedulable)
	}
	d.tainted = nodeops.HasTaint(after)
	cordoned := after.Spec.Unschedulable
	d.cordoned = &cordoned
}

// forget drops the shadow after the would-be reboot, and rests a period.
func (d *dryRun) forget() {
	d.shadow, d.tainted, d.cordoned, d.held = nil, false, nil, false
	d.restUntil = d.agent.cfg.Clock().Add(jitter(d.agent.cfg.Period))
	d.agent.forgetHost()
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

type dryNodeReader struct{ d *dryRun }

func (r dryNodeReader) Get() (*corev1.Node, error) {
	real, err := r.d.node.Get()
	if err != nil {
		return nil, err
	}
	return r.d.overlay(real), nil
}

type dryNodeWriter struct{ d *dryRun }

func (w dryNodeWriter) Update(_ context.Context, mutate func(*corev1.Node) error) (*corev1.Node, error) {
	current, err := dryNodeReader(w).Get()
	if err != nil {
		return nil, err
	}
	next := current.DeepCopy()
	if err := mutate(next); err != nil {
		return nil, err
	}
	w.d.remember(current, next)
	return next, nil
}

func (w dryNodeWriter) Drain(ctx context.Context, opts nodeops.DrainOptions) error {
	pods, err := w.d.nodes.PodsToEvict(ctx, opts)
	if err != nil {
		w.d.say("the drain would fail: %v", err)
		return err
	}
	w.d.say("would evict %d pods: %s", len(pods), strings.Join(pods, ", "))
	return nil
}

func (w dryNodeWriter) PodsToEvict(ctx context.Context, opts nodeops.DrainOptions) ([]string, error) {
	return w.d.nodes.PodsToEvict(ctx, opts)
}

func (w dryNodeWriter) DrainBlockers(ctx context.Context, opts nodeops.DrainOptions) ([]string, error) {
	return w.d.nodes.DrainBlockers(ctx, opts)
}

type dryLock struct{ d *dryRun }

func (l dryLock) Snapshot() (lock.Snapshot, error) {
	snap, err := l.d.lock.Snapshot()
	if err == nil && l.d.held {
		snap.Holders = append(snap.Holders, lock.Holder{Slot: "dry-run", Identity: l.d.agent.cfg.NodeName})
	}
	return snap, err
}

func (l dryLock) TryAcquire(context.Context) (string, bool, error) {
	snap, err := l.d.lock.Snapshot()
	if err != nil {
		return "", false, err
	}
	l.d.say("would take a lock slot (%s)", snap.Describe())
	l.d.held = true
	return "dry-run", true, nil
}

func (l dryLock) Release(context.Context) error {
	if l.d.held {
		l.d.say("would release the lock slot")
	}
	l.d.held = false
	return nil
}

func (dryLock) Renew(context.Context) error              { return nil }
func (l dryLock) HoldsNow(context.Context) (bool, error) { return l.d.held, nil }
func (dryLock) Fenced(context.Context) bool              { return false }

type dryRebooter struct{ d *dryRun }

func (r dryRebooter) Reboot(context.Context) error {
	r.d.say("would reboot the host now, then wait for a new boot id and Ready, uncordon and release the slot")
	r.d.forget()
	return nil
}

// logOnlyRecorder drops the executor's Events in a dry run: the agent logs each
// one already, and Events saying "took a slot" would not be true.
type logOnlyRecorder struct{}

func (logOnlyRecorder) Event(runtime.Object, string, string, string)          {}
func (logOnlyRecorder) Eventf(runtime.Object, string, string, string, ...any) {}
func (logOnlyRecorder) AnnotatedEventf(runtime.Object, map[string]string, string, string, string, ...any) {
}
