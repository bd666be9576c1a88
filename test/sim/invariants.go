package sim

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// tamperGrace is how long after an operator freed a slot under its holder
// (a Lease deleted or edited, a Node deleted) a reboot request without a slot
// is blamed on the operator: the agent may have confirmed its slot just
// before. Longer gaps are the agent's fault.
const tamperGrace = 3 * time.Second

// excuseTimeout ends the excuse of a node that lost its slot to an operator
// but never went out of service.
const excuseTimeout = 20 * time.Second

// Violation is one breach of a safety invariant, as the watcher saw it.
type Violation struct {
	At   time.Time
	What string
}

func (v Violation) String() string { return v.At.Format("15:04:05.000") + " " + v.What }

// invariants is the watcher's state for checking the promises at every event;
// guarded by Watcher.mu.
type invariants struct {
	nodes map[string]*corev1.Node // the latest of every existing Node
	// The bounds on holders and on nodes out of service; 0 checks nothing.
	// A shrinking limit lowers each bound only once the count has come down
	// to it: the holders of the larger limit finish their cycles first.
	holderBound, outBound   int
	holderTarget, outTarget int
	protected               map[string]bool   // nodes cordoned by the operator
	excused                 map[string]excuse // nodes whose slot an operator took away
	lastTamper              time.Time         // an operator last freed a held slot
	reported                map[string]bool   // one Violation per distinct message
	violations              []Violation       // in the order seen
	rebootChecks            int               // reboot requests checked against the API server
	excusedReboots          []string          // reboot requests without a slot blamed on the operator
	versions                map[string]string // "node/NAME" or "lease/NAME" -> resourceVersion seen
	blind                   bool              // an outage: the cache may mix moments
}

// excuse is a node taken out of service under a slot an operator freed: it
// does not count against the bound until it is back in service.
type excuse struct {
	since time.Time
	out   bool // seen out of service since
}

func newInvariants() invariants {
	return invariants{
		nodes: map[string]*corev1.Node{}, protected: map[string]bool{}, excused: map[string]excuse{},
		reported: map[string]bool{}, versions: map[string]string{},
	}
}

// SetLimit sets the limit in force: from now on, at every event, the holders
// of a slot that are Nodes, and the nodes out of service, must be at most n.
// A larger n applies at once; a smaller one once the count has come down.
func (w *Watcher) SetLimit(n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	inv := &w.inv
	inv.holderTarget, inv.outTarget = n, n
	if n >= inv.holderBound {
		inv.holderBound = n
	}
	if n >= inv.outBound {
		inv.outBound = n
	}
	w.checkBounds()
}

// Limits returns the bounds in force on holders and on nodes out of service.
func (w *Watcher) Limits() (holders, out int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inv.holderBound, w.inv.outBound
}

// ProtectCordon records that the operator cordoned node (without nodepatch):
// it waits until the watcher sees the cordon, then reports a Violation
// whenever it sees the node schedulable.
func (w *Watcher) ProtectCordon(ctx context.Context, node string) error {
	err := w.WaitFor(ctx, func() bool {
		n := w.Node(node)
		return n != nil && n.Spec.Unschedulable
	})
	if err != nil {
		return fmt.Errorf("watcher: the operator's cordon on %s: %w", node, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inv.protected[node] = true
	return nil
}

// SlotTampered records that an operator freed node's slot under it (deleted
// or edited its Lease, or deleted its Node). The node may then be out of
// service without a slot through no fault of the agent until it is back in
// service; and for tamperGrace a reboot request without a slot is excused.
func (w *Watcher) SlotTampered(node string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	w.inv.lastTamper = now
	if node != "" {
		w.inv.excused[node] = excuse{since: now, out: w.cordoned[node]}
	}
}

// Violations returns what the watcher saw break, in order.
func (w *Watcher) Violations() []Violation {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.inv.violations)
}

// AddViolation records a breach found by a check outside the watcher (the
// end-of-run checks), so that one list holds them all.
func (w *Watcher) AddViolation(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violate(fmt.Sprintf(format, args...))
}

// RebootChecks is how many reboot requests were checked against the API
// server, and the ones excused because an operator had just freed the slot.
func (w *Watcher) RebootChecks() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inv.rebootChecks, slices.Clone(w.inv.excusedReboots)
}

// Node returns a copy of the latest Node the watcher saw, or nil if it does
// not exist.
func (w *Watcher) Node(name string) *corev1.Node {
	w.mu.Lock()
	defer w.mu.Unlock()
	if n := w.inv.nodes[name]; n != nil {
		return n.DeepCopy()
	}
	return nil
}

// HolderOf returns whether node holds a slot as the watcher sees it.
func (w *Watcher) HolderOf(node string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, h := range w.holders {
		if h == node {
			return true
		}
	}
	return false
}

// CheckRebootRequest asks the API server (a live list, not the watcher's
// cache) whether node holds a slot of the lock, and records a Violation if
// not. Call it when the host sees the reboot request. While the API server is
// down it keeps asking, until ctx ends: the slot cannot legitimately change
// hands while the node reboots.
func (w *Watcher) CheckRebootRequest(ctx context.Context, node string) error {
	var slots []string
	err := w.WaitFor(ctx, func() bool {
		list, err := w.client.CoordinationV1().Leases(w.namespace).List(ctx, metav1.ListOptions{LabelSelector: LockLabel})
		if err != nil {
			return false
		}
		slots = slots[:0]
		for _, l := range list.Items {
			if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == node {
				slots = append(slots, l.Name)
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("check the slot of %s at its reboot request: %w", node, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inv.rebootChecks++
	if len(slots) > 0 {
		return nil
	}
	if since := time.Since(w.inv.lastTamper); since < tamperGrace {
		w.inv.excusedReboots = append(w.inv.excusedReboots,
			fmt.Sprintf("%s asked for a reboot without a slot %s after an operator freed a slot", node, since.Round(time.Millisecond)))
		return nil
	}
	w.violate(fmt.Sprintf("%s asked for a reboot while the API server says it holds no slot", node))
	return nil
}

// checkNode checks the invariants about one node; w.mu held.
func (w *Watcher) checkNode(node *corev1.Node) {
	if w.inv.protected[node.Name] && !node.Spec.Unschedulable {
		w.violate(fmt.Sprintf("the operator's cordon on %s was lifted", node.Name))
	}
	ex, ok := w.inv.excused[node.Name]
	switch {
	case !ok:
	case outOfService(node):
		ex.out = true
		w.inv.excused[node.Name] = ex
	case ex.out || time.Since(ex.since) > excuseTimeout:
		delete(w.inv.excused, node.Name)
	}
}

// checkBounds checks holders and nodes out of service against the limit in
// force; w.mu held. Holders that are not Nodes (a deleted node, a name an
// operator typed) do not count: the lock treats their slots as free.
func (w *Watcher) checkBounds() {
	inv := &w.inv
	if inv.blind {
		return
	}
	var holders []string
	for _, h := range w.distinctHolders() {
		if inv.nodes[h] != nil {
			holders = append(holders, h)
		}
	}
	var out []string
	for name, isOut := range w.cordoned {
		if _, excused := inv.excused[name]; isOut && !excused {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	if len(holders) <= inv.holderTarget {
		inv.holderBound = inv.holderTarget
	}
	if len(out) <= inv.outTarget {
		inv.outBound = inv.outTarget
	}
	if inv.holderBound > 0 && len(holders) > inv.holderBound {
		w.violate(fmt.Sprintf("%d slot holders %v over the limit %d", len(holders), holders, inv.holderBound))
	}
	if inv.outBound > 0 && len(out) > inv.outBound {
		w.violate(fmt.Sprintf("%d nodes out of service %v over the limit %d", len(out), out, inv.outBound))
	}
}

// noteVersion records the version of an object the cache now holds; w.mu
// held. A deletion is newer than any version.
func (w *Watcher) noteVersion(kind, name, version string, deleted bool) {
	if deleted {
		version = strconv.FormatUint(math.MaxUint64, 10)
	}
	w.inv.versions[kind+"/"+name] = version
}

// Blind stops the bound checks: the control plane is about to restart. When
// the informers list again after it, they update one object after the
// other, so for an instant the cache shows some objects' new state and
// others' old one: a mix no moment ever had. CatchUp ends it.
func (w *Watcher) Blind() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inv.blind = true
}

// CatchUp reads the Nodes and the lock's Leases from the API server, waits
// until the cache holds those versions or newer (so it shows one moment
// again), and checks the bounds again from then on.
func (w *Watcher) CatchUp(ctx context.Context) error {
	var want map[string]uint64
	err := w.WaitFor(ctx, func() bool {
		var err error
		want, err = w.liveVersions(ctx)
		return err == nil
	})
	if err != nil {
		return fmt.Errorf("watcher: read the versions to catch up with: %w", err)
	}
	err = w.WaitFor(ctx, func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		for key, v := range want {
			if parseVersion(w.inv.versions[key]) < v {
				return false
			}
		}
		return true
	})
	if err != nil {
		return fmt.Errorf("watcher: catch up with the API server: %w", err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inv.blind = false
	w.checkBounds()
	return nil
}

func (w *Watcher) liveVersions(ctx context.Context) (map[string]uint64, error) {
	nodes, err := w.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	leases, err := w.client.CoordinationV1().Leases(w.namespace).List(ctx, metav1.ListOptions{LabelSelector: LockLabel})
	if err != nil {
		return nil, err
	}
	want := map[string]uint64{}
	for _, n := range nodes.Items {
		want["node/"+n.Name] = parseVersion(n.ResourceVersion)
	}
	for _, l := range leases.Items {
		want["lease/"+l.Name] = parseVersion(l.ResourceVersion)
	}
	return want, nil
}

func parseVersion(v string) uint64 {
	n, _ := strconv.ParseUint(v, 10, 64)
	return n
}

// violate records a Violation once per distinct message; w.mu held.
func (w *Watcher) violate(what string) {
	if w.inv.reported[what] {
		return
	}
	w.inv.reported[what] = true
	w.inv.violations = append(w.inv.violations, Violation{At: time.Now(), What: what})
}
