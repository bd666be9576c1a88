// Package status is what `nodepatch status` shows: every node's phase, the
// lock's holders, and the rollout as the controller's protocol leaves it on the
// Nodes (who waits, who is admitted, the queue's order).
package status

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/controller"
	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/policy"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// Report is what `nodepatch status` shows.
type Report struct {
	Lock    LockStatus   `json:"lock"`
	Nodes   []NodeStatus `json:"nodes"`
	Rollout Rollout      `json:"rollout"`
}

// LockStatus is the lock: its slots, holders, limit and pause.
type LockStatus struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Slots     int    `json:"slots"`
	// Limit is the limit on the header Lease and who set it ("controller" or
	// the agents' configuration); 0 when none is written.
	Limit       int      `json:"limit,omitempty"`
	LimitSource string   `json:"limitSource,omitempty"`
	Holders     []string `json:"holders"`
	Paused      string   `json:"paused,omitempty"`
	// Policy is the rollout controller's rules, as it published them; Pools
	// its pools, described; PolicyError why its pools ConfigMap is not in
	// force (it keeps the last good pools).
	Policy      string   `json:"policy,omitempty"`
	Pools       []string `json:"pools,omitempty"`
	PolicyError string   `json:"policyError,omitempty"`
}

// NodeStatus is one node.
type NodeStatus struct {
	Name string `json:"name"`
	// Pool is the rollout controller's pool of the node (by the policy it
	// published); empty: the default policy. Two names: a misconfiguration.
	Pool       string    `json:"pool,omitempty"`
	Phase      string    `json:"phase"`
	Ready      bool      `json:"ready"`
	Cordoned   string    `json:"cordoned"`
	HoldsLock  bool      `json:"holdsLock"`
	Blocked    string    `json:"blocked,omitempty"`
	Forced     bool      `json:"forced,omitempty"`
	LastReboot time.Time `json:"lastReboot,omitzero"`
	CycleSince time.Time `json:"cycleStarted,omitzero"`
	Malformed  string    `json:"malformedAnnotations,omitempty"`
	RetryAfter time.Time `json:"retryAfter,omitzero"`
	// Held is why the agent says the node's cycle waits; WaitingForGate the
	// approval gate it waits at.
	Held           string `json:"held,omitempty"`
	WaitingForGate string `json:"waitingForGate,omitempty"`
	Quarantined    bool   `json:"quarantined,omitempty"`
}

// Read gathers the report from the API server: the lock's Leases in namespace
// and every Node.
func Read(ctx context.Context, client kubernetes.Interface, namespace, lockName string) (Report, error) {
	leases, err := client.CoordinationV1().Leases(namespace).List(ctx, metav1.ListOptions{LabelSelector: lock.Selector(lockName).String()})
	if err != nil {
		return Report{}, fmt.Errorf("reading the lock in namespace %s: %w", namespace, err)
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return Report{}, fmt.Errorf("listing nodes: %w", err)
	}
	return Summarize(leases.Items, nodes.Items, namespace, lockName, time.Now()), nil
}

// Summarize is the report, a pure function of the lock's Leases and the Nodes
// at now (the pools' windows are read at now).
func Summarize(leases []coordinationv1.Lease, nodes []corev1.Node, namespace, lockName string, now time.Time) Report {
	st := Report{Lock: summarizeLock(leases, namespace, lockName)}
	rules, rulesErr := policy.ParseRules(st.Lock.Policy)
	holders := map[string]bool{}
	for _, h := range st.Lock.Holders {
		holders[strings.SplitN(h, " ", 2)[0]] = true
	}
	ptrs := make([]*corev1.Node, len(nodes))
	for i := range nodes {
		ptrs[i] = &nodes[i]
		ns := summarizeNode(&nodes[i], holders)
		if rulesErr == nil {
			ns.Pool = strings.Join(rules.PoolsOf(nodes[i].Labels), ", ")
		}
		st.Nodes = append(st.Nodes, ns)
	}
	sort.Slice(st.Nodes, func(i, j int) bool { return st.Nodes[i].Name < st.Nodes[j].Name })
	for _, p := range rules.Pools {
		st.Lock.Pools = append(st.Lock.Pools, p.Describe())
	}
	st.Rollout = summarizeRollout(ptrs, st.Lock, now)
	return st
}

func summarizeLock(leases []coordinationv1.Lease, namespace, lockName string) LockStatus {
	ls := LockStatus{Namespace: namespace, Name: lockName}
	for _, l := range leases {
		if l.Name == lockName {
			ls.Paused = l.Annotations[state.AnnotationPause]
			ls.Policy = l.Annotations[lock.AnnotationRolloutPolicy]
			ls.PolicyError = l.Annotations[lock.AnnotationRolloutPolicyError]
			if limit, _, ok := lock.ParseLimit(&l); ok {
				ls.Limit, ls.LimitSource = limit, "agents' --concurrency"
				if l.Annotations[lock.AnnotationLimitSource] == lock.LimitSourceController {
					ls.LimitSource = "rollout controller"
				}
			}
			continue
		}
		ls.Slots++
		if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
			ls.Holders = append(ls.Holders, *l.Spec.HolderIdentity+" ("+l.Name+")")
		}
	}
	return ls
}

func summarizeNode(node *corev1.Node, holders map[string]bool) NodeStatus {
	st, parseErr := state.Parse(node.Annotations)
	ns := NodeStatus{
		Name: node.Name, Phase: string(st.Phase), HoldsLock: holders[node.Name], Blocked: st.BlockReason,
		Forced: st.Force, LastReboot: st.LastReboot, CycleSince: st.CycleStarted, RetryAfter: st.RetryAfter,
		Cordoned: "no", Held: st.Held, WaitingForGate: st.WaitingForGate,
	}
	_, ns.Quarantined = node.Labels[state.LabelQuarantined]
	if ns.Phase == "" {
		ns.Phase = "Idle"
	}
	if parseErr != nil {
		ns.Malformed = parseErr.Error()
	}
	if node.Spec.Unschedulable {
		ns.Cordoned = "by operator"
		if st.CordonedByUs {
			ns.Cordoned = "by nodepatch"
		}
	}
	if nodeops.HasTaint(node) && ns.Cordoned == "no" {
		ns.Cordoned = "tainted only"
	}
	for _, cond := range node.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			ns.Ready = cond.Status == corev1.ConditionTrue
		}
	}
	return ns
}

// Print renders the report as tables, for people.
func (s Report) Print(w io.Writer, now time.Time) error {
	paused := "no"
	if s.Lock.Paused != "" {
		paused = fmt.Sprintf("yes (%s)", s.Lock.Paused)
	}
	fmt.Fprintf(w, "lock %s/%s: %d of %d slots held; paused: %s\n\n", s.Lock.Namespace, s.Lock.Name, len(s.Lock.Holders), s.Lock.Slots, paused)
	s.printPolicy(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	// The POOL column only when the controller has pools, so that the table
	// stays as it was for everyone else.
	pools := len(s.Lock.Pools) > 0
	fmt.Fprintln(tw, "NODE\t"+poolCell(pools, "POOL")+"PHASE\tREADY\tCORDONED\tLOCK\tBLOCKED\tFORCED\tLAST REBOOT\tNOTE")
	for _, n := range s.Nodes {
		fmt.Fprintf(tw, "%s\t%s%s\t%t\t%s\t%s\t%s\t%t\t%s\t%s\n", n.Name, poolCell(pools, dash(n.Pool)), n.Phase, n.Ready, n.Cordoned,
			yesNo(n.HoldsLock), dash(n.Blocked), n.Forced, ago(now, n.LastReboot), n.note(now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s.printRollout(w, now)
	return nil
}

// printPolicy tells of the rollout controller's pools, and of a pools
// ConfigMap it could not use.
func (s Report) printPolicy(w io.Writer) {
	for _, p := range s.Lock.Pools {
		fmt.Fprintf(w, "pool %s\n", p)
	}
	if s.Lock.PolicyError != "" {
		fmt.Fprintf(w, "pools ConfigMap INVALID, the rollout controller keeps the last good pools: %s\n", s.Lock.PolicyError)
	}
	if len(s.Lock.Pools) > 0 || s.Lock.PolicyError != "" {
		fmt.Fprintln(w)
	}
}

func poolCell(shown bool, value string) string {
	if !shown {
		return ""
	}
	return value + "\t"
}

func (n NodeStatus) note(now time.Time) string {
	switch {
	case n.Malformed != "":
		return "malformed: " + n.Malformed
	case n.WaitingForGate != "":
		return fmt.Sprintf("waiting for approval %s: nodepatch approve %s %s", n.WaitingForGate, n.Name, n.WaitingForGate)
	case n.Quarantined:
		return "quarantined after a drain that did not finish; remove label " + state.LabelQuarantined + " to let it go"
	case n.Held != "":
		return "held: " + n.Held
	case n.Phase == string(state.PhaseFailed):
		return "reboot failed; see Events; remove annotation " + state.AnnotationPhase + " to retry"
	case !n.CycleSince.IsZero():
		return "in cycle for " + now.Sub(n.CycleSince).Round(time.Second).String()
	case now.Before(n.RetryAfter):
		return "drain failed; retry in " + n.RetryAfter.Sub(now).Round(time.Second).String()
	}
	return ""
}

func yesNo(b bool) string {
	if b {
		return "held"
	}
	return "-"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// Rollout is the rollout as the Nodes show it: counts by phase, and the queue
// of nodes waiting for admission in the order the controller takes them.
type Rollout struct {
	Counts map[string]int `json:"counts"`
	// Queue is the waiting nodes, first to go first.
	Queue []Waiting `json:"queue,omitempty"`
	// Admitted are admitted and not started yet.
	Admitted []string `json:"admitted,omitempty"`
	// CycleTime is the mean of the nodes' latest cycles (zero: none on
	// record); Waves how many rounds of the limit the pending nodes need.
	CycleTime time.Duration `json:"cycleTime,omitempty"`
	Waves     int           `json:"waves,omitempty"`
}

// Waiting is one node in the queue.
type Waiting struct {
	Node     string    `json:"node"`
	Since    time.Time `json:"since"`
	Priority int       `json:"priority,omitempty"`
	Pool     string    `json:"pool,omitempty"`
	// Rule is the rollout controller's rule that holds the node (by the
	// policy it published), empty when it would admit it now.
	Rule string `json:"rule,omitempty"`
}

func summarizeRollout(nodes []*corev1.Node, l LockStatus, now time.Time) Rollout {
	r := Rollout{Counts: map[string]int{}}
	for _, n := range nodes {
		st, _ := state.Parse(n.Annotations)
		switch {
		case st.Phase == state.PhaseFailed:
			r.Counts["failed"]++
		case st.Phase != state.PhaseIdle:
			r.Counts["in progress"]++
		case !st.Admitted.IsZero():
			r.Counts["in progress"]++
			r.Admitted = append(r.Admitted, n.Name)
		case !st.NeedSince.IsZero():
			r.Counts["pending"]++
		case !st.LastReboot.IsZero():
			r.Counts["done"]++
		default:
			r.Counts["idle"]++
		}
	}
	sort.Strings(r.Admitted)
	rules, _ := policy.ParseRules(l.Policy)
	holds := holdRules(nodes, l, now)
	for _, pn := range policy.Queue(controller.PolicyNodes(nodes)) {
		r.Queue = append(r.Queue, Waiting{Node: pn.Name, Since: pn.NeedSince, Priority: pn.Priority, Rule: holds[pn.Name],
			Pool: strings.Join(rules.PoolsOf(pn.Labels), ", ")})
	}
	r.CycleTime = meanLatestCycle(nodes)
	if limit := max(l.Limit, 1); r.Counts["pending"] > 0 {
		r.Waves = (r.Counts["pending"] + limit - 1) / limit
	}
	return r
}

// holdRules runs the rollout controller's own policy, as it published it on
// the lock's header, over the Nodes: the rule that holds each waiting node.
func holdRules(nodes []*corev1.Node, l LockStatus, now time.Time) map[string]string {
	holds := map[string]string{}
	rules, err := policy.ParseRules(l.Policy)
	if err != nil {
		return holds
	}
	for _, h := range policy.Decide(rules, controller.PolicyNodes(nodes), now).Held {
		holds[h.Node] = h.Rule
	}
	if l.Paused != "" {
		for _, n := range nodes {
			holds[n.Name] = controller.RulePaused
		}
	}
	return holds
}

// meanLatestCycle is the mean of each node's latest recorded cycle.
func meanLatestCycle(nodes []*corev1.Node) time.Duration {
	var sum time.Duration
	count := 0
	for _, n := range nodes {
		st, _ := state.Parse(n.Annotations)
		if len(st.CycleDurations) > 0 {
			sum += st.CycleDurations[0]
			count++
		}
	}
	if count == 0 {
		return 0
	}
	return sum / time.Duration(count)
}

// printRollout renders the rollout under the nodes' table.
func (s Report) printRollout(w io.Writer, now time.Time) {
	r := s.Rollout
	fmt.Fprintf(w, "\nrollout: %d pending, %d in progress, %d done, %d failed", r.Counts["pending"], r.Counts["in progress"],
		r.Counts["done"], r.Counts["failed"])
	if s.Lock.Limit > 0 {
		fmt.Fprintf(w, "; limit %d (set by the %s)", s.Lock.Limit, s.Lock.LimitSource)
	}
	fmt.Fprintln(w)
	if r.Waves > 0 {
		if r.CycleTime > 0 {
			fmt.Fprintf(w, "estimated finish: %s (%d rounds of about %s, the nodes' mean latest cycle)\n",
				now.Add(time.Duration(r.Waves)*r.CycleTime).Round(time.Minute).Format(time.RFC3339), r.Waves, r.CycleTime.Round(time.Second))
		} else {
			fmt.Fprintf(w, "estimated finish: not yet (%d rounds; no node has finished a cycle to time it by)\n", r.Waves)
		}
	}
	if len(r.Admitted) > 0 {
		fmt.Fprintf(w, "admitted, starting: %s\n", strings.Join(r.Admitted, ", "))
	}
	for i, q := range r.Queue {
		who := "next"
		if i > 0 {
			who = fmt.Sprintf("#%d", i+1)
		}
		prio := ""
		if q.Priority != 0 {
			prio = fmt.Sprintf(", priority %d", q.Priority)
		}
		if q.Pool != "" {
			prio += ", pool " + q.Pool
		}
		held := ""
		if q.Rule != "" {
			held = "; held by " + q.Rule
		}
		fmt.Fprintf(w, "  %s: %s (waiting %s%s%s)\n", who, q.Node, now.Sub(q.Since).Round(time.Second), prio, held)
	}
}
