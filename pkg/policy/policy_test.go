package policy

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// node is a Ready worker that needs a cycle since t0 plus order minutes.
func node(name string, order int, change ...func(*Node)) Node {
	n := Node{Name: name, Ready: true, NeedSince: t0.Add(time.Duration(order) * time.Minute), Labels: map[string]string{}}
	for _, c := range change {
		c(&n)
	}
	return n
}

func idle(n *Node)         { n.NeedSince = time.Time{} }
func inCycle(n *Node)      { n.InCycle = true }
func notReady(n *Node)     { n.Ready = false }
func cordoned(n *Node)     { n.CordonedByOthers = true }
func controlPlane(n *Node) { n.ControlPlane = true }
func zone(z string) func(*Node) {
	return func(n *Node) { n.Labels["topology.kubernetes.io/zone"] = z }
}
func priority(p int) func(*Node) { return func(n *Node) { n.Priority = p } }

func rules(max string, change ...func(*Rules)) Rules {
	q, err := ParseQuantity(max)
	if err != nil {
		panic(err)
	}
	r := Rules{MaxUnavailable: q, ControlPlane: ControlPlaneLast}
	for _, c := range change {
		c(&r)
	}
	return r
}

func perZone(n int) func(*Rules) {
	return func(r *Rules) {
		r.PerLabel = append(r.PerLabel, LabelLimit{Key: "topology.kubernetes.io/zone", Max: n})
	}
}

func order(o ControlPlaneOrder) func(*Rules) { return func(r *Rules) { r.ControlPlane = o } }

func TestDecide(t *testing.T) {
	cases := []struct {
		name  string
		rules Rules
		nodes []Node
		admit []string
		held  []Hold
	}{
		{"first come, first served", rules("2"),
			[]Node{node("c", 3), node("a", 1), node("b", 2)},
			[]string{"a", "b"}, []Hold{{"c", RuleMaxUnavailable}}},
		{"nothing waits", rules("2"), []Node{node("a", 0, idle)}, nil, nil},
		{"a node in a cycle counts", rules("2"),
			[]Node{node("a", 0, inCycle), node("b", 1), node("c", 2)},
			[]string{"b"}, []Hold{{"c", RuleMaxUnavailable}}},
		{"NotReady and cordoned by others count against the limit", rules("2"),
			[]Node{node("x", 0, idle, notReady), node("y", 0, idle, cordoned), node("a", 1)},
			nil, []Hold{{"a", RuleMaxUnavailable}}},
		{"a waiting node already out is not held by its own absence", rules("1"),
			[]Node{node("a", 1, notReady), node("b", 2)},
			[]string{"a"}, []Hold{{"b", RuleMaxUnavailable}}},
		{"a percentage of the nodes in scope", rules("10%"),
			manyWaiting(30), []string{"n00", "n01", "n02"}, heldAfter(3, 30)},
		{"a percentage never rounds to zero", rules("10%"),
			manyWaiting(5), []string{"n00"}, heldAfter(1, 5)},
		{"priority jumps the queue", rules("1"),
			[]Node{node("a", 1), node("b", 2, priority(10))},
			[]string{"b"}, []Hold{{"a", RuleMaxUnavailable}}},
		{"per zone: one out per zone, others pass", rules("3", perZone(1)),
			[]Node{node("a", 1, zone("z1")), node("b", 2, zone("z1")), node("c", 3, zone("z2"))},
			[]string{"a", "c"}, []Hold{{"b", RulePerLabel("topology.kubernetes.io/zone")}}},
		{"per zone counts a NotReady node of the zone", rules("3", perZone(1)),
			[]Node{node("x", 0, idle, notReady, zone("z1")), node("a", 1, zone("z1")), node("c", 2, zone("z2"))},
			[]string{"c"}, []Hold{{"a", RulePerLabel("topology.kubernetes.io/zone")}}},
		{"the overall limit holds everyone behind the head", rules("1", perZone(1)),
			[]Node{node("a", 1, zone("z1")), node("b", 2, zone("z2"))},
			[]string{"a"}, []Hold{{"b", RuleMaxUnavailable}}},
		{"control plane last: waits for the workers", rules("3"),
			[]Node{node("cp", 1, controlPlane), node("w", 2)},
			[]string{"w"}, []Hold{{"cp", RuleControlPlaneLast}}},
		{"control plane last: goes once no worker waits", rules("3"),
			[]Node{node("cp", 1, controlPlane), node("w", 2, idle)},
			[]string{"cp"}, nil},
		{"control plane last: a worker in a cycle still holds it", rules("3"),
			[]Node{node("cp", 1, controlPlane), node("w", 0, inCycle)},
			nil, []Hold{{"cp", RuleControlPlaneLast}}},
		{"control plane first: workers wait", rules("3", order(ControlPlaneFirst)),
			[]Node{node("w", 1), node("cp", 2, controlPlane)},
			[]string{"cp"}, []Hold{{"w", RuleControlPlaneFirst}}},
		{"control plane one at a time", rules("3", order(ControlPlaneAny)),
			[]Node{node("cp1", 1, controlPlane), node("cp2", 2, controlPlane), node("w", 3)},
			[]string{"cp1", "w"}, []Hold{{"cp2", RuleControlPlaneOneAtATime}}},
		{"never while another control-plane node is NotReady", rules("3", order(ControlPlaneAny)),
			[]Node{node("cp1", 0, idle, controlPlane, notReady), node("cp2", 1, controlPlane)},
			nil, []Hold{{"cp2", RuleControlPlaneNotReady}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plan := Decide(c.rules, c.nodes, t0)
			require.Equal(t, c.admit, plan.Admit)
			require.Equal(t, c.held, plan.Held)
		})
	}
}

// heldAfter: nodes from..to-1 of manyWaiting, held by the overall limit.
func heldAfter(from, to int) []Hold {
	var h []Hold
	for i := from; i < to; i++ {
		h = append(h, Hold{fmt.Sprintf("n%02d", i), RuleMaxUnavailable})
	}
	return h
}

func manyWaiting(n int) []Node {
	nodes := make([]Node, n)
	for i := range nodes {
		nodes[i] = node(fmt.Sprintf("n%02d", i), i)
	}
	return nodes
}

// TestDecideNeverExceedsTheLimits checks the invariants over many small
// clusters: admitted plus already out never exceeds the overall limit (unless
// only nodes already out are admitted), nor any zone's, nor one control-plane
// node at a time.
func TestDecideNeverExceedsTheLimits(t *testing.T) {
	states := []func(*Node){idle, inCycle, notReady, cordoned, func(*Node) {}}
	for seed := range 3000 {
		var nodes []Node
		for i := range 5 {
			n := node(fmt.Sprintf("n%d", i), (seed*7+i*3)%11, zone(fmt.Sprintf("z%d", (seed+i)%2)))
			states[(seed/(i+1)+i)%len(states)](&n)
			if (seed+i)%4 == 0 {
				controlPlane(&n)
			}
			nodes = append(nodes, n)
		}
		r := rules(fmt.Sprint(1+seed%3), perZone(1+seed%2), order([]ControlPlaneOrder{ControlPlaneLast, ControlPlaneFirst, ControlPlaneAny}[seed%3]))
		plan := Decide(r, nodes, t0)
		out, perZoneOut, cp := 0, map[string]int{}, 0
		admitted := map[string]bool{}
		for _, a := range plan.Admit {
			admitted[a] = true
		}
		for _, n := range nodes {
			if n.unavailable() || admitted[n.Name] {
				out++
				perZoneOut[n.Labels["topology.kubernetes.io/zone"]]++
				if n.ControlPlane {
					cp++
				}
			}
		}
		where := fmt.Sprintf("seed %d: %+v -> %+v", seed, nodes, plan)
		newlyOut := 0
		for _, n := range nodes {
			if admitted[n.Name] && !n.unavailable() {
				newlyOut++
			}
		}
		if newlyOut > 0 {
			require.LessOrEqual(t, out, plan.Limit, where)
		}
		for _, n := range nodes {
			if z := n.Labels["topology.kubernetes.io/zone"]; admitted[n.Name] && !n.unavailable() {
				require.LessOrEqual(t, perZoneOut[z], r.PerLabel[0].Max, "zone %s: %s", z, where)
			}
		}
		cpAdmitted := 0
		for _, n := range nodes {
			if admitted[n.Name] && n.ControlPlane {
				cpAdmitted++
			}
		}
		require.LessOrEqual(t, cpAdmitted, 1, where)
		if cpAdmitted == 1 {
			require.LessOrEqual(t, cp, 1, "a control-plane node admitted while another is out: %s", where)
		}
	}
}

func TestParse(t *testing.T) {
	q, err := ParseQuantity("10%")
	require.NoError(t, err)
	require.Equal(t, Quantity{Value: 10, Percent: true}, q)
	for _, bad := range []string{"0", "-1", "101%", "ten", "", "5%%"} {
		_, err := ParseQuantity(bad)
		require.ErrorContains(t, err, fmt.Sprintf("%q", bad))
	}
	l, err := ParseLabelLimit("topology.kubernetes.io/zone=2")
	require.NoError(t, err)
	require.Equal(t, LabelLimit{Key: "topology.kubernetes.io/zone", Max: 2}, l)
	for _, bad := range []string{"zone", "=1", "zone=0", "zone=x"} {
		_, err := ParseLabelLimit(bad)
		require.ErrorContains(t, err, fmt.Sprintf("%q", bad))
	}
	b, err := ParseBudget("3/1h")
	require.NoError(t, err)
	require.Equal(t, Budget{Failures: 3, Within: time.Hour}, b)
	for _, bad := range []string{"3", "0/1h", "3/0s", "x/1h", "3/soon"} {
		_, err := ParseBudget(bad)
		require.ErrorContains(t, err, fmt.Sprintf("%q", bad))
	}
}

func TestBudget(t *testing.T) {
	b := Budget{Failures: 2, Within: time.Hour}
	old := map[string]time.Time{"a": t0.Add(-2 * time.Hour), "b": t0.Add(-time.Minute)}
	require.False(t, b.Spent(old, t0), "a failure outside the window counted")
	require.Equal(t, []string{"b"}, b.Recent(old, t0))
	recent := map[string]time.Time{"a": t0.Add(-30 * time.Minute), "b": t0.Add(-time.Minute)}
	require.True(t, b.Spent(recent, t0))
	require.Equal(t, []string{"a", "b"}, b.Recent(recent, t0))
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"3", "10%", "zone=1", "3/1h", "", "%", "=", "/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if q, err := ParseQuantity(s); err == nil {
			require.GreaterOrEqual(t, q.Of(1), 1)
		} else {
			require.Contains(t, err.Error(), fmt.Sprintf("%q", s))
		}
		if _, err := ParseLabelLimit(s); err != nil {
			require.Contains(t, err.Error(), fmt.Sprintf("%q", s))
		}
		if b, err := ParseBudget(s); err == nil {
			require.Positive(t, b.Failures)
			require.Positive(t, b.Within)
		} else {
			require.Contains(t, err.Error(), fmt.Sprintf("%q", s))
		}
	})
}
