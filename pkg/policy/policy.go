// Package policy is the rollout controller's decision: a pure function from the
// nodes as the controller sees them to which of them may start a reboot cycle
// now, and for each one that waits, the rule that holds it. It is the cluster's
// counterpart of agent.Decide, and like it reads nothing but its arguments.
package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ControlPlaneOrder says when control-plane nodes go.
type ControlPlaneOrder string

// The control-plane orders.
const (
	ControlPlaneLast  ControlPlaneOrder = "last"  // after every other node that waits
	ControlPlaneFirst ControlPlaneOrder = "first" // before any other node
	ControlPlaneAny   ControlPlaneOrder = "any"   // in queue order
)

// Quantity is a number of nodes, or a percentage of the nodes in scope.
type Quantity struct {
	Value   int
	Percent bool
}

// ParseQuantity reads "3" or "10%".
func ParseQuantity(s string) (Quantity, error) {
	text, percent := strings.CutSuffix(strings.TrimSpace(s), "%")
	n, err := strconv.Atoi(text)
	if err != nil || n < 1 || (percent && n > 100) {
		return Quantity{}, fmt.Errorf("%q is not a number of nodes (1 or more) or a percentage (1%% to 100%%)", s)
	}
	return Quantity{Value: n, Percent: percent}, nil
}

// Of resolves q against total nodes: a percentage rounds down but is never
// below one node, so that a rollout can always move.
func (q Quantity) Of(total int) int {
	if !q.Percent {
		return q.Value
	}
	return max(1, total*q.Value/100)
}

func (q Quantity) String() string {
	if q.Percent {
		return strconv.Itoa(q.Value) + "%"
	}
	return strconv.Itoa(q.Value)
}

// LabelLimit allows at most Max nodes out at once per value of the label Key.
type LabelLimit struct {
	Key string
	Max int
}

// ParseLabelLimit reads "topology.kubernetes.io/zone=1".
func ParseLabelLimit(s string) (LabelLimit, error) {
	key, value, ok := strings.Cut(s, "=")
	n, err := strconv.Atoi(value)
	if !ok || strings.TrimSpace(key) == "" || err != nil || n < 1 {
		return LabelLimit{}, fmt.Errorf("%q is not KEY=N (a label key and at least 1 node)", s)
	}
	return LabelLimit{Key: strings.TrimSpace(key), Max: n}, nil
}

// Rules is one policy.
type Rules struct {
	MaxUnavailable Quantity
	PerLabel       []LabelLimit
	ControlPlane   ControlPlaneOrder
}

// Node is what the controller knows of one node in scope.
type Node struct {
	Name         string
	Labels       map[string]string
	ControlPlane bool
	Ready        bool
	// CordonedByOthers: unschedulable, and not by nodepatch.
	CordonedByOthers bool
	// InCycle: the node is in a reboot cycle (a phase, a slot, or admitted and
	// not started yet): it is out, or about to be.
	InCycle bool
	// NeedSince is when the agent reported that the node needs a cycle; zero
	// when it does not.
	NeedSince time.Time
	// Priority jumps the queue: higher goes first.
	Priority int
}

// unavailable: out of service, for whatever reason.
func (n Node) unavailable() bool { return n.InCycle || !n.Ready || n.CordonedByOthers }

// waiting: needs a cycle and is not in one.
func (n Node) waiting() bool { return !n.NeedSince.IsZero() && !n.InCycle }

// Hold names the rule that keeps a waiting node back.
type Hold struct {
	Node string
	Rule string
}

// Plan is the decision: the nodes to admit now, in order, and every waiting
// node that is not, in queue order, with the rule that holds it.
type Plan struct {
	Admit []string
	Held  []Hold
	// Limit is MaxUnavailable resolved against the nodes in scope;
	// Unavailable is how many are out now, before Admit.
	Limit       int
	Unavailable int
}

// Rule names, as holds report them and metrics label them.
const (
	RuleMaxUnavailable         = "max-unavailable"
	RuleControlPlaneOneAtATime = "control-plane-one-at-a-time"
	RuleControlPlaneNotReady   = "control-plane-not-ready"
	RuleControlPlaneLast       = "control-plane-last"
	RuleControlPlaneFirst      = "control-plane-first"
)

// RulePerLabel names the per-label rule for key.
func RulePerLabel(key string) string { return "max-unavailable-per " + key }

// Decide admits waiting nodes in queue order (priority, then first come, first
// served) while every limit allows: MaxUnavailable over all nodes in scope, each
// per-label limit per label value, control-plane nodes one at a time and never
// while another is NotReady, and the control-plane order. Nodes already out for
// any reason (NotReady, cordoned by someone else, in a cycle) count against the
// limits. A node held by the overall limit holds every node after it, so none
// starves; one held by its own label's limit lets nodes elsewhere pass.
func Decide(r Rules, nodes []Node) Plan {
	plan := Plan{Limit: r.MaxUnavailable.Of(len(nodes))}
	out := newCounts(r, nodes)
	plan.Unavailable = out.total
	queue := Queue(nodes)
	cpWaiting, othersBusy := false, false
	for _, n := range nodes {
		if n.ControlPlane && n.waiting() {
			cpWaiting = true
		}
		if !n.ControlPlane && (n.waiting() || n.InCycle) {
			othersBusy = true
		}
	}
	full := false
	for _, n := range queue {
		rule := plan.hold(r, out, n, full, cpWaiting, othersBusy)
		if rule == RuleMaxUnavailable {
			full = true
		}
		if rule != "" {
			plan.Held = append(plan.Held, Hold{Node: n.Name, Rule: rule})
			continue
		}
		plan.Admit = append(plan.Admit, n.Name)
		if !n.unavailable() {
			out.add(r, n)
		}
	}
	return plan
}

// hold names the rule that keeps n waiting, or "". A node already out (NotReady,
// cordoned by someone else) is counted once: its own absence does not hold it.
func (plan Plan) hold(r Rules, out *counts, n Node, full, cpWaiting, othersBusy bool) string {
	self := 0
	if n.unavailable() {
		self = 1
	}
	notReadySelf := 0
	if !n.Ready {
		notReadySelf = 1
	}
	switch {
	case full || out.total-self >= plan.Limit:
		return RuleMaxUnavailable
	case n.ControlPlane && r.ControlPlane == ControlPlaneLast && othersBusy:
		return RuleControlPlaneLast
	case !n.ControlPlane && r.ControlPlane == ControlPlaneFirst && (cpWaiting || out.controlPlaneInCycle > 0):
		return RuleControlPlaneFirst
	case n.ControlPlane && out.controlPlaneNotReady-notReadySelf > 0:
		return RuleControlPlaneNotReady
	case n.ControlPlane && out.controlPlane-self > 0:
		return RuleControlPlaneOneAtATime
	}
	return out.labelHold(r, n, self)
}

// Queue is the waiting nodes in the order they go: higher priority first, then
// the oldest need, then the name.
func Queue(nodes []Node) []Node {
	var q []Node
	for _, n := range nodes {
		if n.waiting() {
			q = append(q, n)
		}
	}
	slices.SortStableFunc(q, func(a, b Node) int {
		switch {
		case a.Priority != b.Priority:
			return b.Priority - a.Priority
		case !a.NeedSince.Equal(b.NeedSince):
			return a.NeedSince.Compare(b.NeedSince)
		}
		return strings.Compare(a.Name, b.Name)
	})
	return q
}

// counts are the nodes out now, overall and per label value.
type counts struct {
	total                int
	controlPlane         int // control-plane nodes out (any reason)
	controlPlaneInCycle  int // control-plane nodes in a cycle or admitted
	controlPlaneNotReady int
	perLabel             map[string]map[string]int // key -> value -> out
}

func newCounts(r Rules, nodes []Node) *counts {
	c := &counts{perLabel: map[string]map[string]int{}}
	for _, l := range r.PerLabel {
		c.perLabel[l.Key] = map[string]int{}
	}
	for _, n := range nodes {
		if !n.unavailable() {
			continue
		}
		c.add(r, n)
		if n.ControlPlane && !n.Ready {
			c.controlPlaneNotReady++
		}
	}
	return c
}

func (c *counts) add(r Rules, n Node) {
	c.total++
	if n.ControlPlane {
		c.controlPlane++
		if n.InCycle || n.waiting() { // a waiting node added is one just admitted
			c.controlPlaneInCycle++
		}
	}
	for _, l := range r.PerLabel {
		if v, ok := n.Labels[l.Key]; ok {
			c.perLabel[l.Key][v]++
		}
	}
}

// labelHold names the first per-label limit that n's admission would break.
func (c *counts) labelHold(r Rules, n Node, self int) string {
	for _, l := range r.PerLabel {
		if v, ok := n.Labels[l.Key]; ok && c.perLabel[l.Key][v]-self >= l.Max {
			return RulePerLabel(l.Key)
		}
	}
	return ""
}

// Budget is the failure budget: at most Failures failed cycles within Within.
type Budget struct {
	Failures int
	Within   time.Duration
}

// ParseBudget reads "N/DURATION", e.g. "3/1h".
func ParseBudget(s string) (Budget, error) {
	count, window, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(count)
	d, derr := time.ParseDuration(window)
	if !ok || err != nil || derr != nil || n < 1 || d <= 0 {
		return Budget{}, fmt.Errorf("%q is not N/DURATION (at least 1 failure within a positive duration, e.g. 3/1h)", s)
	}
	return Budget{Failures: n, Within: d}, nil
}

// Recent lists the failures (key -> when it failed) within the budget's window
// at now, oldest first.
func (b Budget) Recent(failures map[string]time.Time, now time.Time) []string {
	type failure struct {
		key string
		at  time.Time
	}
	var recent []failure
	for key, at := range failures {
		if !at.Before(now.Add(-b.Within)) {
			recent = append(recent, failure{key, at})
		}
	}
	slices.SortFunc(recent, func(a, b failure) int { return a.at.Compare(b.at) })
	keys := make([]string, len(recent))
	for i, f := range recent {
		keys[i] = f.key
	}
	return keys
}

// Spent says whether the failures within the window use up the budget.
func (b Budget) Spent(failures map[string]time.Time, now time.Time) bool {
	return b.Failures > 0 && len(b.Recent(failures, now)) >= b.Failures
}
