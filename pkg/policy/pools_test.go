package policy

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const gpuSpec = `selector: nodepool=gpu
maxUnavailable: 1
maxUnavailablePer: [topology.kubernetes.io/zone=1]
windows: ["sat 02:00-06:00 UTC"]
`

func TestParsePools(t *testing.T) {
	pools, err := ParsePools(map[string]string{"gpu": gpuSpec, "batch": `{"selector": "tier in (batch,spot)", "maxUnavailable": "25%"}`})
	require.NoError(t, err)
	require.Len(t, pools, 2)
	require.Equal(t, "batch", pools[0].Name, "pools in key order")
	require.Equal(t, Quantity{Value: 25, Percent: true}, pools[0].MaxUnavailable)
	require.True(t, pools[0].Selector.Matches(labels.Set(labelSet("tier", "spot"))))
	require.True(t, pools[0].Open(t0), "a pool without windows is always open")
	gpu := pools[1]
	require.Equal(t, Quantity{Value: 1}, gpu.MaxUnavailable)
	require.Equal(t, []LabelLimit{{Key: "topology.kubernetes.io/zone", Max: 1}}, gpu.PerLabel)
	require.False(t, gpu.Open(t0), "a Tuesday is outside a Saturday window")
	require.Equal(t, "gpu (nodepool=gpu): max-unavailable 1, max-unavailable-per topology.kubernetes.io/zone=1, window sat 02:00-06:00 UTC",
		gpu.Describe())

	none, err := ParsePools(nil)
	require.NoError(t, err)
	require.Empty(t, none, "no ConfigMap data: every node under the default policy")

	for _, c := range []struct{ key, value, want string }{
		{"gpu", "selector: [", `key "gpu" value "selector: [": error converting YAML`},
		{"gpu", "selector: a=b\nmaxUnavaliable: 1", `unknown field "maxUnavaliable"`},
		{"gpu", "selector: a=b", "maxUnavailable: missing"},
		{"gpu", "selector: a=b\nmaxUnavailable: 0", `maxUnavailable "0": "0" is not a number of nodes`},
		{"gpu", "selector: a=b\nmaxUnavailable: 101%", `maxUnavailable "101%"`},
		{"gpu", "maxUnavailable: 1", `selector "": want a label selector`},
		{"gpu", "selector: a==,\nmaxUnavailable: 1", `selector "a==,"`},
		{"gpu", "selector: a=b\nmaxUnavailable: 1\nmaxUnavailablePer: [zone]", `maxUnavailablePer "zone"`},
		{"gpu", "selector: a=b\nmaxUnavailable: 1\nwindows: [someday 01:00-02:00]", `windows or blackouts: --window "someday 01:00-02:00": unknown day "someday"`},
		{"gpu", "selector: a=b\nmaxUnavailable: 1\nblackouts: [soon]", `--blackout "soon"`},
		{"GPU_pool", "selector: a=b\nmaxUnavailable: 1", `pool "GPU_pool": name "GPU_pool": want a pool name`},
	} {
		pools, err := ParsePools(map[string]string{c.key: c.value, "good": "selector: x=y\nmaxUnavailable: 2"})
		require.ErrorContains(t, err, c.want, c.value)
		require.ErrorContains(t, err, fmt.Sprintf("key %q value %q", c.key, c.value), "the error names the bad key and its value")
		require.NotContains(t, err.Error(), `key "good"`, "a good key is not blamed")
		require.Nil(t, pools, "a half-read ConfigMap must not be used")
	}
}

func labelSet(kv ...string) map[string]string {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// pool is a pool of the nodes labelled nodepool=name.
func pool(name, max string, change ...func(*PoolSpec)) func(*Rules) {
	return func(r *Rules) {
		q := intOrString(max)
		spec := PoolSpec{Selector: "nodepool=" + name, MaxUnavailable: &q}
		for _, c := range change {
			c(&spec)
		}
		p, err := NewPool(name, spec)
		if err != nil {
			panic(err)
		}
		r.Pools = append(r.Pools, p)
	}
}

func in(pool string) func(*Node) { return func(n *Node) { n.Labels["nodepool"] = pool } }

func poolPerZone(n int) func(*PoolSpec) {
	return func(s *PoolSpec) {
		s.MaxUnavailablePer = append(s.MaxUnavailablePer, fmt.Sprintf("topology.kubernetes.io/zone=%d", n))
	}
}

func window(w string) func(*PoolSpec) { return func(s *PoolSpec) { s.Windows = append(s.Windows, w) } }

func TestDecidePools(t *testing.T) {
	gpu, batch := "pool gpu: ", "pool batch: "
	cases := []struct {
		name  string
		rules Rules
		nodes []Node
		admit []string
		held  []Hold
	}{
		{"each pool its own limit; nodes in no pool under the default", rules("10", pool("gpu", "1"), pool("batch", "2")),
			[]Node{node("g1", 1, in("gpu")), node("g2", 2, in("gpu")), node("b1", 3, in("batch")), node("b2", 4, in("batch")),
				node("b3", 5, in("batch")), node("w1", 6), node("w2", 7)},
			[]string{"g1", "b1", "b2", "w1", "w2"}, []Hold{{"g2", gpu + RuleMaxUnavailable}, {"b3", batch + RuleMaxUnavailable}}},
		{"a pool's percentage is of its own nodes", rules("10", pool("batch", "50%")),
			[]Node{node("b1", 1, in("batch")), node("b2", 2, in("batch")), node("b3", 3, in("batch")), node("b4", 4, in("batch")), node("w", 5)},
			[]string{"b1", "b2", "w"}, []Hold{{"b3", batch + RuleMaxUnavailable}, {"b4", batch + RuleMaxUnavailable}}},
		{"a pool's nodes out for any reason count against it", rules("10", pool("gpu", "1")),
			[]Node{node("x", 0, idle, notReady, in("gpu")), node("g1", 1, in("gpu")), node("w", 2)},
			[]string{"w"}, []Hold{{"g1", gpu + RuleMaxUnavailable}}},
		{"the overall limit still binds across pools", rules("2", pool("gpu", "5"), pool("batch", "5")),
			[]Node{node("g1", 1, in("gpu")), node("b1", 2, in("batch")), node("g2", 3, in("gpu"))},
			[]string{"g1", "b1"}, []Hold{{"g2", RuleMaxUnavailable}}},
		{"a full pool holds every later node of the pool, even one already out", rules("10", pool("gpu", "2")),
			[]Node{node("g1", 1, in("gpu")), node("g2", 2, in("gpu"), notReady), node("g3", 3, in("gpu"), notReady), node("w", 4)},
			[]string{"w"}, []Hold{{"g1", gpu + RuleMaxUnavailable}, {"g2", gpu + RuleMaxUnavailable}, {"g3", gpu + RuleMaxUnavailable}}},
		{"a pool's per-label limit counts its own nodes only", rules("10", pool("gpu", "5", poolPerZone(1)), perZone(1)),
			[]Node{node("g1", 1, in("gpu"), zone("z1")), node("g2", 2, in("gpu"), zone("z1")), node("w1", 3, zone("z1")),
				node("w2", 4, zone("z1"))},
			[]string{"g1", "w1"}, []Hold{{"g2", gpu + RulePerLabel("topology.kubernetes.io/zone")}, {"w2", RulePerLabel("topology.kubernetes.io/zone")}}},
		{"the default's per-label limit does not bind a pool's nodes", rules("10", pool("gpu", "5"), perZone(1)),
			[]Node{node("g1", 1, in("gpu"), zone("z1")), node("g2", 2, in("gpu"), zone("z1"))},
			[]string{"g1", "g2"}, nil},
		{"outside its window a pool's nodes wait, others pass", rules("10", pool("gpu", "5", window("sat 02:00-06:00 UTC"))),
			[]Node{node("g1", 1, in("gpu")), node("w", 2)},
			[]string{"w"}, []Hold{{"g1", gpu + RuleWindowClosed}}},
		{"inside its window a pool's nodes go", rules("10", pool("gpu", "5", window("tue 09:00-11:00 UTC"))),
			[]Node{node("g1", 1, in("gpu"))}, []string{"g1"}, nil},
		{"a node two pools select is held, naming both", rules("10", pool("gpu", "5"),
			func(r *Rules) {
				q := intOrString("5")
				p, err := NewPool("zone1", PoolSpec{Selector: "topology.kubernetes.io/zone=z1", MaxUnavailable: &q})
				require.NoError(t, err)
				r.Pools = append(r.Pools, p)
			}),
			[]Node{node("g1", 1, in("gpu"), zone("z1")), node("g2", 2, in("gpu"), zone("z2"))},
			[]string{"g2"}, []Hold{{"g1", RulePoolsOverlap([]string{"gpu", "zone1"})}}},
		{"control-plane order stays global", rules("10", pool("gpu", "5")),
			[]Node{node("cp", 1, controlPlane, in("gpu")), node("w", 2)},
			[]string{"w"}, []Hold{{"cp", RuleControlPlaneLast}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			plan := Decide(c.rules, c.nodes, t0)
			require.Equal(t, c.admit, plan.Admit)
			require.Equal(t, c.held, plan.Held)
		})
	}
	t.Run("the plan reports each pool and every overlap", func(t *testing.T) {
		r := rules("10", pool("gpu", "50%"), pool("batch", "1"))
		overlap := node("both", 0, idle, in("gpu"))
		overlap.Labels["other"] = "x"
		r.Pools[1].Selector = mustSelector(t, "other=x")
		plan := Decide(r, []Node{node("g1", 0, in("gpu"), inCycle), node("g2", 1, in("gpu")), node("g3", 2, in("gpu")), overlap}, t0)
		require.Equal(t, []PoolPlan{{Name: "gpu", Nodes: 4, Limit: 2, Unavailable: 1}, {Name: "batch", Nodes: 1, Limit: 1}}, plan.Pools)
		require.Equal(t, []Overlap{{Node: "both", Pools: []string{"gpu", "batch"}}}, plan.Overlaps)
		require.Equal(t, []string{"g2"}, plan.Admit)
	})
}

// TestDecideNeverExceedsAPoolsLimit: over many small clusters of two pools and
// the default, a pool never has more nodes out than its limit once Decide
// admits one of its nodes, and a node two pools select is never admitted.
func TestDecideNeverExceedsAPoolsLimit(t *testing.T) {
	states := []func(*Node){idle, inCycle, notReady, cordoned, func(*Node) {}}
	for seed := range 3000 {
		r := rules("4", pool("a", fmt.Sprint(1+seed%2)), pool("b", []string{"1", "50%", "2"}[seed%3], poolPerZone(1)), perZone(1))
		r.Pools[1].Selector = mustSelector(t, "nodepool in (b,ab)")
		r.Pools[0].Selector = mustSelector(t, "nodepool in (a,ab)")
		var nodes []Node
		for i := range 7 {
			n := node(fmt.Sprintf("n%d", i), (seed*5+i*3)%13, zone(fmt.Sprintf("z%d", (seed+i)%2)),
				in([]string{"a", "b", "none", "ab"}[(seed/(i+1)+i)%4]))
			states[(seed/(i+2)+i)%len(states)](&n)
			nodes = append(nodes, n)
		}
		plan := Decide(r, nodes, t0)
		admitted := map[string]bool{}
		for _, a := range plan.Admit {
			admitted[a] = true
		}
		where := fmt.Sprintf("seed %d: %+v -> %+v", seed, nodes, plan)
		for pi, p := range r.Pools {
			out, newly := 0, 0
			for _, n := range nodes {
				if !p.Selector.Matches(labelsOf(n)) {
					continue
				}
				if n.unavailable() || admitted[n.Name] {
					out++
				}
				if admitted[n.Name] && !n.unavailable() {
					newly++
				}
			}
			if newly > 0 {
				require.LessOrEqual(t, out, plan.Pools[pi].Limit, "pool %s: %s", p.Name, where)
			}
		}
		for _, n := range nodes {
			if n.Labels["nodepool"] == "ab" {
				require.False(t, admitted[n.Name], "a node two pools select was admitted: %s", where)
			}
		}
	}
}

// TestRulesRoundTripWithPools: the pools publish with the rules and read back
// the same, ';' in a value and all.
func TestRulesRoundTripWithPools(t *testing.T) {
	r := rules("10%", perZone(1), pool("gpu", "1", poolPerZone(2), window("sat 02:00-06:00 UTC")), pool("batch", "25%"))
	r.Pools[1].Spec.Blackouts = []string{"2026-12-24..2026-12-26 Europe/Berlin"}
	s := r.String()
	require.NotContains(t, s[len("max-unavailable=10%;max-unavailable-per=topology.kubernetes.io/zone=1;control-plane=last;"):], "=;")
	back, err := ParseRules(s)
	require.NoError(t, err)
	require.Equal(t, s, back.String())
	require.Len(t, back.Pools, 2)
	require.Equal(t, r.Pools[0].Describe(), back.Pools[0].Describe())
	require.False(t, back.Pools[0].Open(t0))

	_, err = ParseRules(s + `;pool={"name":"gpu","selector":"a=b","maxUnavailable":1}`)
	require.ErrorContains(t, err, `pool "gpu" given twice`)
	_, err = ParseRules(`max-unavailable=1;control-plane=last;pool={"name":"x","selector":"a=b","maxUnavailable":1,"colour":"red"}`)
	require.ErrorContains(t, err, `unknown field "colour"`)
}

// FuzzParsePools: whatever a ConfigMap key holds, ParsePools either names the
// key in its error or yields pools that publish and read back the same.
func FuzzParsePools(f *testing.F) {
	f.Add("gpu", gpuSpec)
	f.Add("batch", `{"selector": "tier in (batch,spot)", "maxUnavailable": "25%", "blackouts": ["2026-12-24"]}`)
	f.Add("a", "selector: a=b;c\nmaxUnavailable: 1")
	f.Add("semi", "selector: a=b\nmaxUnavailable: 1\nwindows: ['cron \"0 2 * * *\" 1h UTC']")
	f.Add("GPU", "")
	f.Add("x", "selector: '!a'\nmaxUnavailable: '1'")
	f.Fuzz(func(t *testing.T, key, value string) {
		pools, err := ParsePools(map[string]string{key: value})
		if err != nil {
			require.Contains(t, err.Error(), fmt.Sprintf("key %q", key))
			require.Nil(t, pools)
			return
		}
		require.Len(t, pools, 1)
		r := Rules{MaxUnavailable: Quantity{Value: 1}, ControlPlane: ControlPlaneLast, Pools: pools}
		back, err := ParseRules(r.String())
		require.NoError(t, err, r.String())
		require.Equal(t, r.String(), back.String())
		require.Equal(t, pools[0].Describe(), back.Pools[0].Describe())
	})
}

func intOrString(s string) intstr.IntOrString { return intstr.Parse(s) }

func mustSelector(t *testing.T, s string) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(s)
	require.NoError(t, err)
	return sel
}

func labelsOf(n Node) labels.Set { return labels.Set(n.Labels) }
