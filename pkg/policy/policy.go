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
	// Pools have limits of their own over the nodes they select; PerLabel
	// then binds only the nodes no pool selects (see Decide).
	Pools []Pool
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
	// Pools are each pool's nodes, limit and nodes out before Admit, in the
	// rules' order; Overlaps the nodes more than one pool selects.
	Pools    []PoolPlan
	Overlaps []Overlap
}

// PoolPlan is one pool in a Plan.
type PoolPlan struct {
	Name        string
	Nodes       int
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
// served) while every limit allows at now: MaxUnavailable over all nodes in
// scope, control-plane nodes one at a time and never while another is NotReady,
// the control-plane order, and then the limits of the node's pool (its window,
// its max-unavailable over its own nodes, its per-label limits) or, for a node
// no pool selects, the rules' own per-label limits. Nodes already out for any
// reason (NotReady, cordoned by someone else, in a cycle) count against the
// limits. A node held by the overall limit holds every node after it, and one
// held by its pool's max-unavailable every node of that pool after it, so none
// starves; one held by its label's limit or its pool's window lets others pass.
// A node two pools select is held: which limits it should go under is the
// operator's to say.
func Decide(r Rules, nodes []Node, now time.Time) Plan {
	d := newDecision(r, nodes, now)
	for _, n := range Queue(nodes) {
		rule := d.hold(n)
		if rule != "" {
			d.plan.Held = append(d.plan.Held, Hold{Node: n.Name, Rule: rule})
			continue
		}
		d.plan.Admit = append(d.plan.Admit, n.Name)
		if !n.unavailable() {
			d.out.add(d.scopesOf(n), n)
		}
	}
	for i := range d.plan.Pools {
		d.plan.Pools[i].Unavailable = d.out.scopes[i].initial
	}
	return d.plan
}

// decision is one run of Decide: the rules, who is in which pool, and the
// counts as admissions add to them.
type decision struct {
	r          Rules
	now        time.Time
	plan       Plan
	out        *counts
	member     map[string][]int // node -> the pools that select it
	full       bool             // the overall limit held a node
	cpWaiting  bool             // a control-plane node waits
	othersBusy bool             // a worker waits or is in a cycle
}

func newDecision(r Rules, nodes []Node, now time.Time) *decision {
	d := &decision{r: r, now: now, plan: Plan{Limit: r.MaxUnavailable.Of(len(nodes))}, member: map[string][]int{}}
	size := make([]int, len(r.Pools))
	for _, n := range nodes {
		in := r.poolsOf(n.Labels)
		d.member[n.Name] = in
		for _, i := range in {
			size[i]++
		}
		if len(in) > 1 {
			d.plan.Overlaps = append(d.plan.Overlaps, Overlap{Node: n.Name, Pools: r.PoolsOf(n.Labels)})
		}
		if n.ControlPlane && n.waiting() {
			d.cpWaiting = true
		}
		if !n.ControlPlane && (n.waiting() || n.InCycle) {
			d.othersBusy = true
		}
	}
	for i, p := range r.Pools {
		d.plan.Pools = append(d.plan.Pools, PoolPlan{Name: p.Name, Nodes: size[i], Limit: p.MaxUnavailable.Of(size[i])})
	}
	d.out = newCounts(r, nodes, d.scopesOf)
	d.plan.Unavailable = d.out.total
	return d
}

// scopesOf are the indexes of the counts n counts in: its pools, or the
// default's (after the pools') when no pool selects it.
func (d *decision) scopesOf(n Node) []int {
	if in := d.member[n.Name]; len(in) > 0 {
		return in
	}
	return []int{len(d.r.Pools)}
}

// hold names the rule that keeps n waiting, or "". A node already out (NotReady,
// cordoned by someone else) is counted once: its own absence does not hold it.
func (d *decision) hold(n Node) string {
	self := 0
	if n.unavailable() {
		self = 1
	}
	notReadySelf := 0
	if !n.Ready {
		notReadySelf = 1
	}
	r, out := d.r, d.out
	switch {
	case d.full || out.total-self >= d.plan.Limit:
		d.full = true
		return RuleMaxUnavailable
	case n.ControlPlane && r.ControlPlane == ControlPlaneLast && d.othersBusy:
		return RuleControlPlaneLast
	case !n.ControlPlane && r.ControlPlane == ControlPlaneFirst && (d.cpWaiting || out.controlPlaneInCycle > 0):
		return RuleControlPlaneFirst
	case n.ControlPlane && out.controlPlaneNotReady-notReadySelf > 0:
		return RuleControlPlaneNotReady
	case n.ControlPlane && out.controlPlane-self > 0:
		return RuleControlPlaneOneAtATime
	}
	in := d.member[n.Name]
	switch len(in) {
	case 0:
		return out.labelHold(r.PerLabel, len(r.Pools), n, self)
	case 1:
		return d.poolHold(in[0], n, self)
	}
	return RulePoolsOverlap(r.PoolsOf(n.Labels))
}

// poolHold names the rule of pool i that keeps n waiting, or "".
func (d *decision) poolHold(i int, n Node, self int) string {
	p, sc := d.r.Pools[i], &d.out.scopes[i]
	switch {
	case !p.Open(d.now):
		return RulePool(p.Name, RuleWindowClosed)
	case sc.full || sc.total-self >= d.plan.Pools[i].Limit:
		sc.full = true
		return RulePool(p.Name, RuleMaxUnavailable)
	}
	if rule := d.out.labelHold(p.PerLabel, i, n, self); rule != "" {
		return RulePool(p.Name, rule)
	}
	return ""
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

// counts are the nodes out now, overall and per scope: each pool's, then the
// default's (the nodes no pool selects).
type counts struct {
	total                int
	controlPlane         int // control-plane nodes out (any reason)
	controlPlaneInCycle  int // control-plane nodes in a cycle or admitted
	controlPlaneNotReady int
	scopes               []scopeCounts
}

// scopeCounts are one scope's nodes out, overall and per label value.
type scopeCounts struct {
	total    int
	initial  int                       // total before any admission
	perLabel map[string]map[string]int // key -> value -> out
	limits   []LabelLimit
	full     bool // its max-unavailable held a node
}

func newCounts(r Rules, nodes []Node, scopesOf func(Node) []int) *counts {
	c := &counts{scopes: make([]scopeCounts, len(r.Pools)+1)}
	for i := range c.scopes {
		limits := r.PerLabel
		if i < len(r.Pools) {
			limits = r.Pools[i].PerLabel
		}
		c.scopes[i] = scopeCounts{perLabel: map[string]map[string]int{}, limits: limits}
		for _, l := range limits {
			c.scopes[i].perLabel[l.Key] = map[string]int{}
		}
	}
	for _, n := range nodes {
		if !n.unavailable() {
			continue
		}
		c.add(scopesOf(n), n)
		if n.ControlPlane && !n.Ready {
			c.controlPlaneNotReady++
		}
	}
	for i := range c.scopes {
		c.scopes[i].initial = c.scopes[i].total
	}
	return c
}

// add counts n out, in each of the scopes given (a node two pools select
// counts in both).
func (c *counts) add(scopes []int, n Node) {
	c.total++
	if n.ControlPlane {
		c.controlPlane++
		if n.InCycle || n.waiting() { // a waiting node added is one just admitted
			c.controlPlaneInCycle++
		}
	}
	for _, i := range scopes {
		sc := &c.scopes[i]
		sc.total++
		for _, l := range sc.limits {
			if v, ok := n.Labels[l.Key]; ok {
				sc.perLabel[l.Key][v]++
			}
		}
	}
}

// labelHold names the first per-label limit of scope i that n's admission
// would break.
func (c *counts) labelHold(limits []LabelLimit, i int, n Node, self int) string {
	for _, l := range limits {
		if v, ok := n.Labels[l.Key]; ok && c.scopes[i].perLabel[l.Key][v]-self >= l.Max {
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
