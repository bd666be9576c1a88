package model

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// move is one transition of the model.
type move struct {
	// step, renew, reboot, kubelet, tick, control (a controller's round);
	// faults: crash (the agent process dies), lose (a reboot request that does
	// nothing), sticky (a reboot that leaves the sentinel in place), block,
	// reset and edit (the operator's writes), ctlcrash (a controller process
	// dies, and a new one makes its first round)
	kind string
	i    int // the node, or for control and ctlcrash the controller
	// A step first delivers this many queued Node and Lease writes to the
	// agent's caches. A delivery changes nothing but what the agent's next step
	// reads, so delivering right before that step loses no interleaving.
	nodes, leases int
	// counts: for a control move (whose nodes is the delivery's number, see
	// ctlCache.deliveries), how many of each Node's queued writes it delivers.
	counts []int
	plan   plan
}

func (mv move) fault() bool {
	switch mv.kind {
	case "crash", "lose", "sticky", "block", "reset", "edit", "ctlcrash":
		return true
	}
	return mv.plan != plan{}
}

func (mv move) String() string {
	s := fmt.Sprintf("%s node-%d", mv.kind, mv.i)
	if mv.kind == "control" || mv.kind == "ctlcrash" {
		s = fmt.Sprintf("%s controller-%d", mv.kind, mv.i)
	}
	switch {
	case mv.kind == "tick" || mv.kind == "end" || mv.kind == "start":
		return mv.kind
	case (mv.kind == "control" || mv.kind == "ctlcrash") && mv.nodes > 0:
		s += fmt.Sprintf(" (its caches first get %v of each Node's queued writes and %d of the header's)", mv.counts, mv.leases)
	case mv.kind == "step" && (mv.nodes > 0 || mv.leases > 0):
		s += fmt.Sprintf(" (its caches first get %d Node and %d Lease writes)", mv.nodes, mv.leases)
	}
	p := mv.plan
	if p.interfereAt > 0 {
		s += fmt.Sprintf(" [%s write before its write %d]", p.interfere, p.interfereAt)
	}
	if p.atGet > 0 {
		s += fmt.Sprintf(" [%s write right before its read %d of its Node]", p.interfere, p.atGet)
	}
	if p.crashAt > 0 {
		s += fmt.Sprintf(" [crash after its effect %d]", p.crashAt)
	}
	if p.drainFails {
		s += " [drain fails]"
	}
	if p.failAt > 0 || p.failOn != "" {
		which := fmt.Sprintf("effect %d", p.failAt)
		if p.failOn != "" {
			which = "first " + p.failOn + " effect"
		}
		s += fmt.Sprintf(" [a 500 answers its %s %s]", which, map[bool]string{false: "before it happens", true: "after it happened"}[p.failAfter])
	}
	if p.raceAt > 0 {
		s += fmt.Sprintf(" [node-%d's step runs right before its effect %d]", p.racer, p.raceAt)
	}
	return s
}

// baseMoves are the moves that need no fault: each agent's next step (after
// each number of queued writes its caches may have received by then), pending
// reboots and the kubelet's report after one, each controller's next round.
func (m *model) baseMoves() []move {
	w := m.w
	var moves []move
	for i, a := range m.agents {
		if a == nil {
			continue
		}
		if m.cfg.ttl > 0 {
			// the agent's renewal loop, which may run at any time (or not)
			moves = append(moves, move{kind: "renew", i: i})
		}
		for n := range len(w.caches[i].nodeQ) + 1 {
			for l := range len(w.caches[i].leaseQ) + 1 {
				moves = append(moves, move{kind: "step", i: i, nodes: n, leases: l})
			}
		}
	}
	for i := range m.agents {
		name := m.name(i)
		if w.nodes[name].Status.NodeInfo.BootID != bootID(name, w.hosts[i].boot) {
			moves = append(moves, move{kind: "kubelet", i: i})
		}
		if w.hosts[i].pending {
			moves = append(moves, move{kind: "reboot", i: i})
		}
	}
	// last, so that the checker knows by then whether anything else moves (see rounds)
	return append(moves, m.controlMoves()...)
}

// faultMoves are the faults that may strike between steps.
func (m *model) faultMoves() []move {
	k := m.cfg.kinds
	var moves []move
	for i, a := range m.agents {
		if a != nil && k["crash"] {
			moves = append(moves, move{kind: "crash", i: i})
		}
		if m.w.hosts[i].pending && k["lose"] {
			moves = append(moves, move{kind: "lose", i: i})
		}
		if m.w.hosts[i].pending && k["sticky"] {
			moves = append(moves, move{kind: "sticky", i: i})
		}
		annotations := m.w.nodes[m.name(i)].Annotations
		if k["block"] && annotations[state.AnnotationBlockReboot] == "" {
			moves = append(moves, move{kind: "block", i: i})
		}
		if k["reset"] && resettable(annotations) {
			moves = append(moves, move{kind: "reset", i: i})
		}
		if k["edit"] && annotations[state.AnnotationBootIDBefore] != "" {
			moves = append(moves, move{kind: "edit", i: i})
		}
	}
	if k["ctlcrash"] {
		for _, mv := range m.controlMoves() {
			mv.kind = "ctlcrash"
			moves = append(moves, mv)
		}
	}
	return moves
}

// variants are the faults that may strike inside a step, found from what the
// step did without them: a crash after each of its effects, another client's
// write right before each of its writes or its reads of its Node, another
// agent's step right before each effect, a failing drain.
func variants(step move, ctl *stepCtl, cfg config) []move {
	if step.kind == "control" {
		return controlVariants(step, ctl, cfg)
	}
	kinds := cfg.kinds
	var plans []plan
	for k, e := range ctl.effects {
		n := k + 1
		if n < len(ctl.effects) && kinds["crash"] {
			// A crash after the last effect is the crash move after the step.
			plans = append(plans, plan{crashAt: n})
		}
		if kinds["fail"] {
			plans = append(plans, plan{failAt: n}, plan{failAt: n, failAfter: true})
		}
		// Another client's write right before this one makes it conflict: on a
		// Lease some other write (a conflict is a lost race there), on a Node
		// the operator's block (see plan for why only with "conflict").
		switch {
		case e.kind == "update" && strings.HasPrefix(e.key, "lease/") && kinds["bump"]:
			plans = append(plans, plan{interfereAt: n, interfere: "bump"})
		case e.kind == "update" && strings.HasPrefix(e.key, "node/") && kinds["conflict"]:
			plans = append(plans, plan{interfereAt: n, interfere: "block"})
		}
	}
	if kinds["race"] {
		plans = append(plans, races(step.i, len(ctl.effects), cfg.nodes)...)
	}
	for r := range ctl.nodeGets {
		if kinds["block"] {
			plans = append(plans, plan{atGet: r + 1, interfere: "block"})
		}
		if kinds["reset"] && ctl.resettable {
			plans = append(plans, plan{atGet: r + 1, interfere: "reset"})
		}
	}
	if ctl.drained && kinds["drain"] {
		plans = append(plans, plan{drainFails: true})
	}
	moves := make([]move, len(plans))
	for k, p := range plans {
		moves[k] = step
		moves[k].plan = p
	}
	return moves
}

// races are the plans that run each other agent's step right before each of
// the first effects of a step of agent i.
func races(i, effects, agents int) []plan {
	var plans []plan
	for k := range effects {
		for j := range agents {
			if j != i {
				plans = append(plans, plan{raceAt: k + 1, racer: j})
			}
		}
	}
	return plans
}

// resettable: the operator removes the phase of a Failed node (the documented
// retry) or, as in issue 8, during the drain. Resets in other phases are
// not explored (they are not an operator's action the docs describe).
func resettable(annotations map[string]string) bool {
	p := state.Phase(annotations[state.AnnotationPhase])
	return p == state.PhaseDraining || p == state.PhaseFailed
}

// apply makes a move on the live state. It returns the step's record for steps.
func (m *model) apply(mv move) *stepCtl {
	w := m.w
	if mv.fault() {
		w.faults++
	}
	var ctl *stepCtl
	switch mv.kind {
	case "step":
		start := time.Now()
		w.caches[mv.i].deliver(mv.nodes, mv.leases)
		ctl = m.withStep(mv.i, mv.plan, func(ctx context.Context) { _, _, _ = m.agents[mv.i].ReconcileOnce(ctx) })
		// A step waits in real time only for its cache (polled ends that
		// early) and for client-go's conflict back-off: anything longer is a
		// wait the model does not know of, which would slow the search to a
		// crawl; say so rather than time out.
		if took := time.Since(start); took > 10*time.Second {
			m.bad = append(m.bad, fmt.Sprintf("slow step: node-%d's step took %s of real time", mv.i, took))
		}
	case "reboot":
		m.reboot(mv.i)
	case "kubelet":
		m.kubeletReports(mv.i)
	case "crash":
		m.restart(mv.i)
	case "lose":
		w.hosts[mv.i].pending = false
	case "sticky":
		m.reboot(mv.i)
		w.hosts[mv.i].needs = true
	case "block", "reset", "edit":
		m.interfere(nodeKey(m.name(mv.i)), mv.kind)
	case "control":
		ctl = m.control(mv)
	case "ctlcrash":
		// The process dies between rounds and the new one makes its first
		// round at once: until it does, the dead one and the new one do
		// nothing, which the old one doing nothing for as long covers.
		m.restartController(mv.i)
		m.control(mv)
	case "renew":
		m.withStep(mv.i, plan{}, func(ctx context.Context) { _ = m.refs[mv.i].Renew(ctx) })
	case "tick":
		w.clock = w.clock.Add(tick)
	default:
		panic("model: unknown move " + mv.kind)
	}
	m.checkState()
	return ctl
}

// reboot is the host going down and up: a new boot id, the sentinel gone, a new
// agent process. The kubelet reports the new boot in a later move.
func (m *model) reboot(i int) {
	h := &m.w.hosts[i]
	if !m.holdsSlot(m.name(i)) {
		m.bad = append(m.bad, fmt.Sprintf("reboot without the lock: node-%d's host rebooted while it held no slot on the API server", i))
	}
	h.boot++
	h.needs, h.pending = false, false
	h.reboots++
	m.restart(i)
}

// kubeletReports is the kubelet starting on the new boot: it reports the boot
// id and Ready.
func (m *model) kubeletReports(i int) {
	n := m.w.nodes[m.name(i)].DeepCopy()
	n.Status.NodeInfo.BootID = bootID(n.Name, m.w.hosts[i].boot)
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	_, err := m.updateNode(-1, n)
	must(err)
}

func (m *model) holdsSlot(name string) bool {
	for _, l := range m.w.leases {
		if l.Name != lockName && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == name {
			return true
		}
	}
	return false
}

func outOfService(n *corev1.Node) bool {
	st, _ := state.Parse(n.Annotations)
	return nodeops.HasTaint(n) || (n.Spec.Unschedulable && st.CordonedByUs)
}
