package rollout

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/controller"
	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/policy"
	"github.com/nodepatch/nodepatch/pkg/status"
	"github.com/nodepatch/nodepatch/test/sim"
)

// frame is one look at the rollout: what `nodepatch status` reports (the
// nodes, the lock, the controller's queue and the rule holding each waiting
// node), the controller's count of nodes out against its limit, and what the
// simulated hosts know.
type frame struct {
	now    time.Time
	report status.Report
	// plan is the controller's policy as it published it on the lock's header,
	// run over the Nodes: its limit and how many nodes are out. Nil without a
	// published policy (no rollout controller).
	plan  *policy.Plan
	hosts map[string]hostState
}

// hostState is what the simulated host knows that the API server does not.
type hostState struct {
	reboots  int  // reboots the supervisor performed
	required bool // the reboot-required sentinel is there
	down     bool // the host is rebooting (the agent asked, it is not back)
}

// observe reads the lock's Leases and the Nodes once, as `nodepatch status`
// does, and asks the supervisor about the hosts.
func observe(ctx context.Context, client kubernetes.Interface, sup *sim.Supervisor) (frame, error) {
	leases, err := client.CoordinationV1().Leases(namespace).List(ctx, metav1.ListOptions{LabelSelector: lock.Selector(lockName).String()})
	if err != nil {
		return frame{}, fmt.Errorf("reading the lock: %w", err)
	}
	nodes, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return frame{}, fmt.Errorf("listing nodes: %w", err)
	}
	now := time.Now()
	f := frame{now: now, report: status.Summarize(leases.Items, nodes.Items, namespace, lockName, now), hosts: map[string]hostState{}}
	f.plan = publishedPlan(f.report.Lock.Policy, nodes.Items, now)
	for _, n := range nodes.Items {
		if h := sup.Host(n.Name); h != nil {
			f.hosts[n.Name] = hostState{reboots: sup.Reboots(n.Name), required: h.RebootRequired(), down: h.RebootRequested()}
		}
	}
	return f, nil
}

// publishedPlan is the rollout controller's decision by the rules it published
// on the lock's header (as status's holds are), for its limit and its count of
// nodes out; nil when it published none.
func publishedPlan(published string, nodes []corev1.Node, now time.Time) *policy.Plan {
	rules, err := policy.ParseRules(published)
	if published == "" || err != nil {
		return nil
	}
	ptrs := make([]*corev1.Node, len(nodes))
	for i := range nodes {
		ptrs[i] = &nodes[i]
	}
	plan := policy.Decide(rules, controller.PolicyNodes(ptrs), now)
	return &plan
}

// row is one node as the view shows it.
type row struct {
	node, phase string
	ready       bool
	cordoned    string // as status says it: no, by nodepatch, by operator, tainted only
	reboots     int
	inCycle     time.Duration // zero when not in a cycle
	queue       string        // the node's place in the controller's queue: "#1 next", "#2"
	why         string        // why it waits, or what it waits for
}

// rows are the frame's nodes by name, and how many have finished: rebooted,
// back to Idle and in service.
func (f frame) rows() ([]row, int) {
	place, held := map[string]int{}, map[string]string{}
	for i, q := range f.report.Rollout.Queue {
		place[q.Node], held[q.Node] = i+1, q.Rule
	}
	admitted := map[string]bool{}
	for _, n := range f.report.Rollout.Admitted {
		admitted[n] = true
	}
	var rows []row
	done := 0
	for _, n := range f.report.Nodes { // sorted by name
		h := f.hosts[n.Name]
		r := row{node: n.Name, phase: n.Phase, ready: n.Ready, cordoned: n.Cordoned, reboots: h.reboots}
		if !n.CycleSince.IsZero() {
			r.inCycle = f.now.Sub(n.CycleSince)
		}
		i, queued := place[n.Name]
		switch {
		case n.Phase == "Rebooting" && h.down:
			r.phase = "Rebooting (down)"
		case n.Phase != "Idle":
		case admitted[n.Name]:
			r.phase, r.why = "Admitted", "taking a lock slot"
		case queued:
			r.phase, r.queue, r.why = "Waiting", fmt.Sprintf("#%d", i), f.holdReason(held[n.Name])
			if i == 1 {
				r.queue = "#1 next"
			}
		case h.required && f.plan != nil:
			// In controller mode the agent reports a need only when nothing on
			// the node holds it back.
			r.phase, r.why = "Needs reboot", f.agentReason(n)
		case h.required:
			r.phase, r.why = "Waiting", f.slotReason()
		case h.reboots > 0 && n.Cordoned == "no":
			r.phase, done = "Done", done+1
		}
		rows = append(rows, r)
	}
	return rows, done
}

// holdReason says, for a node in the controller's queue, the rule that holds
// it, with the figures behind the overall limit.
func (f frame) holdReason(rule string) string {
	switch rule {
	case "":
		return "admitting: no rule holds it"
	case policy.RuleMaxUnavailable:
		if f.plan != nil {
			return fmt.Sprintf("limit: %d of %d nodes out", f.plan.Unavailable, f.plan.Limit)
		}
	case controller.RulePaused:
		return "paused: " + f.report.Lock.Paused
	case policy.RuleWindowClosed:
		return "its pool's maintenance window is closed"
	}
	return "held by " + rule
}

// agentReason says why a node that needs a reboot is not in the controller's
// queue: its agent holds it back, or has not reported the need yet.
func (f frame) agentReason(n status.NodeStatus) string {
	switch {
	case n.Blocked != "":
		return "blocked: " + n.Blocked
	case n.Held != "":
		return "held: " + n.Held
	case f.report.Lock.Paused != "":
		return "paused: " + f.report.Lock.Paused
	}
	return "its agent has not reported the need yet"
}

// slotReason says, without a rollout controller, what a waiting node waits for.
func (f frame) slotReason() string {
	if l := f.report.Lock; l.Limit > 0 {
		return fmt.Sprintf("a free lock slot: %d of %d held", len(l.Holders), l.Limit)
	}
	return "a free lock slot"
}

// headline is the rollout in a line: the counts, the nodes out against the
// controller's limit and who set the limit, the admissions not started yet.
func (f frame) headline() string {
	r, l := f.report.Rollout, f.report.Lock
	var b strings.Builder
	fmt.Fprintf(&b, "%d pending, %d in progress, %d done", r.Counts["pending"], r.Counts["in progress"], r.Counts["done"])
	if n := r.Counts["failed"]; n > 0 {
		fmt.Fprintf(&b, ", %d failed", n)
	}
	switch {
	case f.plan != nil:
		fmt.Fprintf(&b, "; %d of %d nodes out", f.plan.Unavailable, f.plan.Limit)
		if l.Limit > 0 {
			fmt.Fprintf(&b, " (limit set by the %s)", l.LimitSource)
		}
	case l.Limit > 0:
		fmt.Fprintf(&b, "; %d of %d lock slots held (limit set by the %s)", len(l.Holders), l.Limit, l.LimitSource)
	}
	if len(r.Admitted) > 0 {
		fmt.Fprintf(&b, "; admitted, starting: %s", strings.Join(r.Admitted, ", "))
	}
	return b.String()
}

// queueLine is the controller's queue in its order (priority, then first come,
// first served by need time), each node with the rule that holds it; nodes
// in a row held for the same reason share it. Empty when none waits.
func (f frame) queueLine() string {
	q := f.report.Rollout.Queue
	var groups []string
	for i := 0; i < len(q); {
		j := i
		var names []string
		for ; j < len(q) && q[j].Rule == q[i].Rule; j++ {
			name := q[j].Node
			if j == 0 {
				name += " next"
			}
			names = append(names, name)
		}
		groups = append(groups, fmt.Sprintf("%s (%s)", strings.Join(names, ", "), f.holdReason(q[i].Rule)))
		i = j
	}
	return strings.Join(groups, ", then ")
}

// view shows the rollout: a table redrawn in place on a terminal, or a line per
// change elsewhere.
type view struct {
	out      io.Writer
	live     bool
	start    time.Time
	last     map[string]string
	headline string
}

func newView(out io.Writer, live bool, start time.Time) *view {
	return &view{out: out, live: live, start: start, last: map[string]string{}}
}

func (v *view) show(f frame, rows []row) {
	elapsed := f.now.Sub(v.start).Round(100 * time.Millisecond)
	if v.live {
		fmt.Fprint(v.out, table(f, rows, elapsed))
		return
	}
	for _, r := range rows {
		line := fmt.Sprintf("%s ready=%t cordoned=%s", r.phase, r.ready, r.cordoned)
		// A queued node's place and hold are on the rollout line, once for
		// all of them, rather than a line per node each time a count moves.
		if r.why != "" && r.queue == "" {
			line += ": " + r.why
		}
		if v.last[r.node] != line {
			v.last[r.node] = line
			fmt.Fprintf(v.out, "[%7s] %-8s %s\n", elapsed, r.node, line)
		}
	}
	h := "rollout: " + f.headline()
	if q := f.queueLine(); q != "" {
		h += "; queue: " + q
	}
	if h != v.headline {
		v.headline = h
		fmt.Fprintf(v.out, "[%7s] %s\n", elapsed, h)
	}
}

// table is the live view: the screen cleared, the nodes, and the rollout's
// headline under them.
func table(f frame, rows []row, elapsed time.Duration) string {
	var b strings.Builder
	const format = "%-8s %-16s %-5s %-12s %-7s %-8s %-7s %s\n"
	fmt.Fprintf(&b, "\x1b[H\x1b[2Jelapsed %s\n\n", elapsed)
	fmt.Fprintf(&b, format, "NODE", "PHASE", "READY", "CORDONED", "REBOOTS", "IN CYCLE", "QUEUE", "WAITING FOR")
	for _, r := range rows {
		inCycle := ""
		if r.inCycle > 0 {
			inCycle = r.inCycle.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(&b, format, r.node, r.phase, fmt.Sprint(r.ready), r.cordoned, fmt.Sprint(r.reboots), inCycle, r.queue, r.why)
	}
	fmt.Fprintf(&b, "\nrollout: %s\n", f.headline())
	if q := f.queueLine(); q != "" {
		fmt.Fprintf(&b, "queue:   %s\n", q)
	}
	return b.String()
}
