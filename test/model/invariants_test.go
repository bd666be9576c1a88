package model

import (
	"fmt"
	"slices"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// The invariants, judged on the model API server (the truth), never on a cache.
// Each broken one is a line in m.bad that starts with the invariant's name.

// checkState runs after every move.
func (m *model) checkState() {
	w := m.w
	holders, out := 0, 0
	for _, l := range w.leases {
		if l.Name != lockName && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			holders++
		}
	}
	for _, n := range w.nodes {
		// With a TTL a slot passes on when its holder stops renewing, and
		// the holder's taint and cordon stay until its agent can undo them (a
		// node that never comes back keeps them): then only the nodes out of
		// service that hold a slot count, and that is bounded by the holders.
		if outOfService(n) && (m.cfg.ttl == 0 || m.holdsSlot(n.Name)) {
			out++
		}
	}
	if holders > m.cfg.limit {
		m.fail("slot holders over the limit: %d holders, limit %d", holders, m.cfg.limit)
	}
	if out > m.cfg.limit {
		m.fail("out of service over the limit: %d nodes tainted or cordoned by nodepatch, limit %d", out, m.cfg.limit)
	}
	if c := m.cfg.cordoned; c >= 0 && !w.nodes[m.name(c)].Spec.Unschedulable {
		m.fail("operator's cordon lifted on node-%d", c)
	}
	for i, h := range w.hosts {
		if h.reboots > 1 {
			m.fail("rebooted more than once: node-%d rebooted %d times", i, h.reboots)
		}
	}
}

// checkNodeWrite judges one Node write, from cur to next. A write that records
// a reboot attempt (the phase becomes Rebooting, or its attempt count grows)
// is where the agent commits to a reboot: it must not carry the operator's
// block, nor follow the operator's reset of the phase (the write would take
// an idle node straight to Rebooting). A write that finishes a cycle (a new
// last-reboot) needs a reboot of the host since the cycle's first attempt.
func (m *model) checkNodeWrite(cur, next *corev1.Node) {
	was, _ := state.Parse(cur.Annotations)
	now, _ := state.Parse(next.Annotations)
	h := &m.w.hosts[m.index(next.Name)]
	if was.Phase == state.PhaseIdle && now.Phase == state.PhaseDraining {
		h.cycles++
	}
	if now.Phase == state.PhaseRebooting && (was.Phase != state.PhaseRebooting || now.RebootAttempts > was.RebootAttempts) {
		if now.BlockReason != "" {
			m.fail("block ignored: %s recorded a reboot attempt (phase %q, attempt %d) although it carries %s=%q",
				next.Name, now.Phase, now.RebootAttempts, state.AnnotationBlockReboot, now.BlockReason)
		}
		if was.Phase == state.PhaseIdle {
			m.fail("phase reset overwritten: %s went from no phase (the operator's reset) straight to Rebooting", next.Name)
		}
		if was.Phase != state.PhaseRebooting {
			h.bootAtAttempt = h.boot
		}
	}
	if !now.LastReboot.Equal(was.LastReboot) && h.boot == h.bootAtAttempt {
		m.fail("finished without a reboot: %s recorded a finished reboot, but its host is still on the boot its cycle left", next.Name)
	}
	_, had := cur.Annotations[state.AnnotationAdmitted]
	_, has := next.Annotations[state.AnnotationAdmitted]
	switch {
	case has && !had:
		h.admitted = true // only a controller adds it (an agent's update carries what it read)
	case had && !has && !m.controllerStepping():
		h.admitted = false
	}
}

// controllerStepping: the move being made is a controller's round.
func (m *model) controllerStepping() bool { return m.step != nil && m.step.agent >= m.cfg.nodes }

// checkLeaseWrite judges one Lease write: with controllers, a node takes a
// slot only once a controller has admitted it (since its last cycle).
func (m *model) checkLeaseWrite(cur, next *coordinationv1.Lease) {
	if m.cfg.controllers == 0 || next.Name == lockName || next.Spec.HolderIdentity == nil || *next.Spec.HolderIdentity == "" {
		return
	}
	holder := *next.Spec.HolderIdentity
	if cur != nil && cur.Spec.HolderIdentity != nil && *cur.Spec.HolderIdentity == holder {
		return
	}
	if i := m.index(holder); i >= 0 && !m.w.hosts[i].admitted {
		m.fail("unadmitted slot: %s took %s with no admission written for it since its last cycle", holder, next.Name)
	}
}

// index is the model's number of a node.
func (m *model) index(name string) int { return slices.Index(m.nodeNames, name) }

// checkRebootRequest judges a reboot request of node i at the moment it is made.
func (m *model) checkRebootRequest(i int) {
	name := m.name(i)
	n := m.w.nodes[name]
	st, _ := state.Parse(n.Annotations)
	if !m.holdsSlot(name) {
		m.fail("reboot without the lock: %s asked for a reboot holding no slot on the API server", name)
	}
	if !nodeops.HasTaint(n) || !n.Spec.Unschedulable || st.Phase != state.PhaseRebooting {
		m.fail("reboot of an undrained node: %s asked for a reboot while tainted=%t unschedulable=%t phase=%q",
			name, nodeops.HasTaint(n), n.Spec.Unschedulable, st.Phase)
	}
	// Every request is an attempt recorded on the Node first, and no attempt is
	// asked for twice, whatever restarted in between (hole 10).
	attempt := fmt.Sprintf("cycle %d/%s/%d", m.w.hosts[i].cycles, st.BootIDBefore, st.RebootAttempts)
	switch h := &m.w.hosts[i]; {
	case st.RebootAttempts == 0:
		m.fail("unrecorded reboot request: %s asked for a reboot with no attempt recorded on the Node", name)
	case h.askedFor == attempt:
		m.fail("reboot asked twice for one attempt: %s asked again for attempt %s", name, attempt)
	default:
		h.askedFor = attempt
	}
}

// checkEnd judges a settled state at the time bound: nothing more happens
// without a fault or more time.
func (m *model) checkEnd() {
	w := m.w
	failedHolders := 0
	for _, l := range w.leases {
		if l.Name == lockName || l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			continue
		}
		holder := *l.Spec.HolderIdentity
		st, _ := state.Parse(w.nodes[holder].Annotations)
		if st.Phase == state.PhaseFailed {
			failedHolders++
			continue
		}
		m.fail("slot left held at the end: %s holds %s in phase %q", holder, l.Name, st.Phase)
	}
	halted := failedHolders >= m.cfg.limit
	for i := range w.hosts {
		m.checkNodeAtEnd(i, halted)
	}
}

func (m *model) checkNodeAtEnd(i int, halted bool) {
	n := m.w.nodes[m.name(i)]
	st, _ := state.Parse(n.Annotations)
	if st.Phase == state.PhaseFailed {
		return // halted with a reason: the operator's to look at
	}
	if h := m.w.hosts[i]; m.cfg.controllers > 0 && h.reboots > 0 && !h.needs && (!st.NeedSince.IsZero() || !st.Admitted.IsZero()) {
		// An admission left behind would let the node's next need skip the
		// controller.
		m.fail("admission left at the end: %s rebooted and needs nothing, but carries need-since %q and admitted %q",
			n.Name, n.Annotations[state.AnnotationNeedSince], n.Annotations[state.AnnotationAdmitted])
	}
	if st.Phase != state.PhaseIdle || nodeops.HasTaint(n) || st.CordonedByUs || n.Spec.Unschedulable != (i == m.cfg.cordoned) {
		m.fail("left out of service at the end: %s phase=%q tainted=%t cordoned-by-nodepatch=%t unschedulable=%t",
			n.Name, st.Phase, nodeops.HasTaint(n), st.CordonedByUs, n.Spec.Unschedulable)
	}
	if m.w.hosts[i].reboots == 0 && st.BlockReason == "" && !halted {
		m.fail("never rebooted: %s needed a reboot, is not blocked, and the rollout is not halted", n.Name)
	}
}

func (m *model) fail(format string, args ...any) {
	m.bad = append(m.bad, fmt.Sprintf(format, args...))
}
