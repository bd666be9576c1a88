// Package controller is the rollout controller: one leader-elected process that
// decides which nodes may start a reboot cycle, and keeps the limit on the
// lock's header Lease. The agents still take their Lease slots themselves, so the
// lock stays the hard bound even with two controllers that both believe they
// lead, or agents that do not wait for admission.
//
// The protocol, all on objects the agents already watch:
//   - an agent that needs a cycle and may start one writes nodepatch.io/need-since
//     on its Node;
//   - the controller admits it by writing nodepatch.io/admitted on that Node;
//   - the agent then takes a slot and runs its cycle, and clears both at its end;
//   - the controller writes the limit (max-unavailable resolved against the
//     nodes in scope) on the header Lease, where every agent's lock reads it.
package controller

import (
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodepatch/nodepatch/pkg/policy"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// LabelControlPlane marks control-plane nodes.
const LabelControlPlane = "node-role.kubernetes.io/control-plane"

// RulePaused holds every waiting node while the rollout is paused.
const RulePaused = "paused"

// RulePoolsUnknown holds every waiting node while the pools ConfigMap is bad
// and this leader knows no good content (none since it started, and none
// published on the lock's header).
const RulePoolsUnknown = "pools unknown: the pools ConfigMap is invalid and no good content is known"

// View is what the controller observes: every Node, the pause on the lock's
// header, the failures it has seen, and the clock.
type View struct {
	Now         time.Time
	Nodes       []*corev1.Node
	PauseReason string
	// Failures: failed cycle (FailureKey) -> when this controller first saw it.
	Failures map[string]time.Time
	// Pending are admissions this controller wrote that its cache does not show
	// yet: read-your-writes, so that they count before the Node events come.
	Pending map[string]bool
	// Pools are the pools in force: the pools ConfigMap's content, or the last
	// good one while it is bad.
	Pools []policy.Pool
	// PoolsUnknown: the ConfigMap is bad and no good content is known, so
	// which limits bind which node is unknown: every waiting node is held.
	PoolsUnknown bool
	// SlotHolders are the lock's held slots, by index, and their holders
	// (the Lease cache).
	SlotHolders map[int]string
	// SuggestedSlots are the slots suggested to admissions this controller
	// wrote that its cache does not show yet.
	SuggestedSlots map[int]bool
}

// Settings are the operator's choices.
type Settings struct {
	Rules policy.Rules
	// Budget, when set, pauses the rollout after that many failures.
	Budget *policy.Budget
	// AdmissionTimeout revokes an admission no cycle followed (an agent that
	// went away, or changed its mind without saying so).
	AdmissionTimeout time.Duration
}

// Actions are what the controller does next.
type Actions struct {
	Admit []string
	// Slots suggests to admitted nodes the slot to try first: a different
	// free one each, while there are some.
	Slots  map[string]int
	Revoke []string
	// Limit is the limit to keep on the header Lease.
	Limit int
	// Pause, when not empty, is the reason to pause the rollout with.
	Pause string
	// Plan is the policy's decision, for metrics and status; Rules the rules it
	// was decided by (the settings' with the pools in force), to publish.
	Plan  policy.Plan
	Rules policy.Rules
	// Phases counts the nodes by phase (Idle, Waiting, Draining, ...).
	Phases map[string]int
	// OldestNeed is the oldest waiting need; zero when none waits.
	OldestNeed time.Time
	// BudgetUsed is the failures within the budget's window.
	BudgetUsed int
}

// Decide is the controller's whole decision, a pure function of the view.
func Decide(s Settings, v View) Actions {
	nodes := make([]policy.Node, 0, len(v.Nodes))
	act := Actions{Phases: map[string]int{}}
	inCycle := map[string]bool{}
	for _, n := range v.Nodes {
		pn, st := policyNode(n)
		if v.Pending[n.Name] {
			pn.InCycle = true
		}
		inCycle[n.Name] = pn.InCycle
		nodes = append(nodes, pn)
		act.Phases[phaseOf(pn, st)]++
		if !st.Admitted.IsZero() && st.Phase == state.PhaseIdle && s.AdmissionTimeout > 0 &&
			!v.Now.Before(st.Admitted.Add(s.AdmissionTimeout)) {
			act.Revoke = append(act.Revoke, n.Name)
		}
		if pn.InCycle || pn.NeedSince.IsZero() {
			continue
		}
		if act.OldestNeed.IsZero() || pn.NeedSince.Before(act.OldestNeed) {
			act.OldestNeed = pn.NeedSince
		}
	}
	act.Rules = s.Rules
	act.Rules.Pools = v.Pools
	act.Plan = policy.Decide(act.Rules, nodes, v.Now)
	act.Limit = act.Plan.Limit
	pause := v.PauseReason
	if s.Budget != nil {
		recent := s.Budget.Recent(v.Failures, v.Now)
		act.BudgetUsed = len(recent)
		if s.Budget.Spent(v.Failures, v.Now) && pause == "" {
			act.Pause = fmt.Sprintf("failure budget spent: %d failed cycles within %s (%s)",
				len(recent), s.Budget.Within, strings.Join(failedNodes(recent), ", "))
			pause = act.Pause
		}
	}
	switch {
	case pause != "":
		act.Plan = holdAll(act.Plan, RulePaused)
		return act
	case v.PoolsUnknown:
		act.Plan = holdAll(act.Plan, RulePoolsUnknown)
		return act
	}
	act.Admit = act.Plan.Admit
	act.Slots = AssignSlots(act.Limit, slotsInUse(v, inCycle), act.Admit)
	return act
}

// slotsInUse are the slots not to suggest: those suggested to the admissions
// the view shows or that are pending (a suggestion stays the node's until its
// cycle ends), and those held by a node still in a cycle. A slot whose
// holder's cycle has ended is about to be released (the agent cleans its
// Node before it gives the slot back, and the Lease cache may show the
// release after the Node): suggesting it spares the nodes admitted on that
// Node event a race for the other slots.
func slotsInUse(v View, inCycle map[string]bool) map[int]bool {
	used := maps.Clone(v.SuggestedSlots)
	if used == nil {
		used = map[int]bool{}
	}
	for i, holder := range v.SlotHolders {
		if stillIn, known := inCycle[holder]; stillIn || !known {
			used[i] = true
		}
	}
	for _, n := range v.Nodes {
		if i := state.AdmittedSlot(n.Annotations); i >= 0 {
			used[i] = true
		}
	}
	return used
}

// AssignSlots gives each node of admit, in order, the lowest slot below limit
// that is not in use and not given to an earlier one; nodes past the free
// slots get no suggestion (their agents try the free slots in an order of
// their own).
func AssignSlots(limit int, inUse map[int]bool, admit []string) map[string]int {
	slots := map[string]int{}
	next := 0
	for _, name := range admit {
		for next < limit && inUse[next] {
			next++
		}
		if next >= limit {
			break
		}
		slots[name] = next
		next++
	}
	return slots
}

// holdAll turns every admission of plan into a hold by rule.
func holdAll(plan policy.Plan, rule string) policy.Plan {
	held := make([]policy.Hold, 0, len(plan.Admit)+len(plan.Held))
	for _, n := range plan.Admit {
		held = append(held, policy.Hold{Node: n, Rule: rule})
	}
	plan.Held = append(held, plan.Held...)
	plan.Admit = nil
	return plan
}

// PolicyNodes are the Nodes as the policy sees them.
func PolicyNodes(nodes []*corev1.Node) []policy.Node {
	out := make([]policy.Node, len(nodes))
	for i, n := range nodes {
		out[i], _ = policyNode(n)
	}
	return out
}

// policyNode is a Node as the policy sees it, and its nodepatch state.
func policyNode(n *corev1.Node) (policy.Node, state.Node) {
	st, _ := state.Parse(n.Annotations) // malformed values read as their safest meaning
	_, controlPlane := n.Labels[LabelControlPlane]
	priority, _ := strconv.Atoi(n.Annotations[state.AnnotationPriority])
	pn := policy.Node{
		Name:             n.Name,
		Labels:           n.Labels,
		ControlPlane:     controlPlane,
		Ready:            ready(n),
		CordonedByOthers: n.Spec.Unschedulable && !st.CordonedByUs,
		InCycle:          st.Phase != state.PhaseIdle || !st.Admitted.IsZero() || hasTaint(n),
		NeedSince:        st.NeedSince,
		Priority:         priority,
	}
	return pn, st
}

func phaseOf(pn policy.Node, st state.Node) string {
	switch {
	case st.Phase != state.PhaseIdle:
		return string(st.Phase)
	case !st.Admitted.IsZero():
		return "Admitted"
	case !pn.NeedSince.IsZero():
		return "Waiting"
	}
	return "Idle"
}

func ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func hasTaint(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == state.TaintKey {
			return true
		}
	}
	return false
}

// NoteFailures adds to failures (FailureKey -> first seen) each cycle seen
// Failed for the first time, at now. A cycle no longer Failed stays, so that
// the budget counts it for its whole window; a node that fails again in a new
// cycle counts again.
func NoteFailures(failures map[string]time.Time, nodes []*corev1.Node, now time.Time) {
	for _, n := range nodes {
		if n.Annotations[state.AnnotationPhase] != string(state.PhaseFailed) {
			continue
		}
		key := FailureKey(n.Name, n.Annotations[state.AnnotationCycleStarted])
		if _, seen := failures[key]; !seen {
			failures[key] = now
		}
	}
}

// FailureKey names one failed cycle: the node and when its cycle started.
func FailureKey(node, cycleStarted string) string { return node + "@" + cycleStarted }

// failedNodes turns failure keys into node names.
func failedNodes(keys []string) []string {
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i], _, _ = strings.Cut(k, "@")
	}
	return names
}
