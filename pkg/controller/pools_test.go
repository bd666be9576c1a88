package controller

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/policy"
	"github.com/nodepatch/nodepatch/pkg/state"
)

func inPool(pool string) func(*corev1.Node) {
	return func(n *corev1.Node) { n.Labels["nodepool"] = pool }
}

func TestDecidePools(t *testing.T) {
	pools, err := policy.ParsePools(map[string]string{"gpu": "selector: nodepool=gpu\nmaxUnavailable: 1"})
	require.NoError(t, err)
	nodes := []*corev1.Node{kubeNode("g1", needs(3), inPool("gpu")), kubeNode("g2", needs(2), inPool("gpu")), kubeNode("w", needs(1))}
	t.Run("the pools in force bind their nodes and are published", func(t *testing.T) {
		act := Decide(settings("5"), View{Now: t0, Nodes: nodes, Pools: pools})
		require.Equal(t, []string{"g1", "w"}, act.Admit)
		require.Equal(t, []policy.Hold{{Node: "g2", Rule: "pool gpu: max-unavailable"}}, act.Plan.Held)
		require.Contains(t, act.Rules.String(), `pool={"name":"gpu"`)
	})
	t.Run("no pool known: every waiting node is held", func(t *testing.T) {
		act := Decide(settings("5"), View{Now: t0, Nodes: nodes, PoolsUnknown: true})
		require.Empty(t, act.Admit)
		require.Len(t, act.Plan.Held, 3)
		for _, h := range act.Plan.Held {
			require.Equal(t, RulePoolsUnknown, h.Rule)
		}
	})
}

// fakeCaches serve a Rollout from the fake clientset, as fresh as it is.
type fakeCaches struct {
	client *fake.Clientset
	cm     *corev1.ConfigMap // nil: no ConfigMap
}

func (f *fakeCaches) List(labels.Selector) ([]*corev1.Node, error) {
	list, err := f.client.CoreV1().Nodes().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	out := make([]*corev1.Node, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

func (f *fakeCaches) Get(name string) (*corev1.ConfigMap, error) {
	if f.cm == nil || f.cm.Name != name {
		return nil, apierrors.NewNotFound(corev1.Resource("configmaps"), name)
	}
	return f.cm, nil
}

func (f *fakeCaches) setPools(data map[string]string) {
	f.cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "pools", Namespace: "nodepatch"}, Data: data}
}

func newTestRollout(t *testing.T, f *fakeCaches, events *record.FakeRecorder, m *Metrics) *Rollout {
	t.Helper()
	s := settings("5")
	r := NewRollout(Config{Client: f.client, Namespace: "nodepatch", LockName: "nodepatch-lock", Identity: "test",
		Settings: s, PoolsConfigMap: "pools", Events: events, Metrics: m, Log: slog.New(slog.DiscardHandler),
		Clock: func() time.Time { return t0 }}, f, lock.APILister{Leases: f.client.CoordinationV1().Leases("nodepatch")})
	r.ReadPoolsFrom(f)
	return r
}

func (f *fakeCaches) header(t *testing.T) *coordinationv1.Lease {
	t.Helper()
	h, err := f.client.CoordinationV1().Leases("nodepatch").Get(context.Background(), "nodepatch-lock", metav1.GetOptions{})
	require.NoError(t, err)
	return h
}

func (f *fakeCaches) admitted(t *testing.T) []string {
	t.Helper()
	nodes, err := f.List(labels.Everything())
	require.NoError(t, err)
	var names []string
	for _, n := range nodes {
		if _, ok := n.Annotations[state.AnnotationAdmitted]; ok {
			names = append(names, n.Name)
		}
	}
	return names
}

// drain returns the Events recorded so far.
func drain(events *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-events.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

// TestRolloutKeepsTheLastGoodPools: an edit applies at the next round; a bad
// edit keeps the last good pools and says so (Warning Event naming the key and
// value, the header, the metric); a new leader facing a bad ConfigMap takes the
// pools its predecessor published, and with none known holds everyone.
func TestRolloutKeepsTheLastGoodPools(t *testing.T) {
	ctx := context.Background()
	var nodes []*corev1.Node
	for _, n := range []string{"g1", "g2", "g3"} {
		nodes = append(nodes, kubeNode(n, needs(len(nodes)+5), inPool("gpu")))
	}
	f := &fakeCaches{client: fake.NewClientset(nodes[0], nodes[1], nodes[2])}
	f.setPools(map[string]string{"gpu": "selector: nodepool=gpu\nmaxUnavailable: 1"})
	events, m := record.NewFakeRecorder(100), NewMetrics()
	r := newTestRollout(t, f, events, m)

	require.NoError(t, r.Reconcile(ctx))
	require.Len(t, f.admitted(t), 1, "pool gpu admits one at a time")
	require.Contains(t, f.header(t).Annotations[lock.AnnotationRolloutPolicy], `"maxUnavailable":1`)
	require.Contains(t, strings.Join(drain(events), "\n"), "Normal PoolsApplied pools in force: gpu (nodepool=gpu): max-unavailable 1")
	require.Equal(t, 1.0, gaugeValue(t, m.Pools.Valid))

	f.setPools(map[string]string{"gpu": "selector: nodepool=gpu\nmaxUnavailable: 2"})
	require.NoError(t, r.Reconcile(ctx))
	require.Len(t, f.admitted(t), 2, "the raised limit applies at the next round")
	require.Equal(t, 2.0, gaugeValue(t, m.Pools.Limit.WithLabelValues("gpu")))
	require.Contains(t, strings.Join(drain(events), "\n"), "Normal PoolsApplied pools in force: gpu (nodepool=gpu): max-unavailable 2")

	f.setPools(map[string]string{"gpu": "selector: nodepool=gpu\nmaxUnavailable: 0"})
	require.NoError(t, r.Reconcile(ctx))
	require.Len(t, f.admitted(t), 2, "the last good limit, 2, still binds")
	got := drain(events)
	require.Len(t, got, 1)
	require.Contains(t, got[0], `Warning PoolsInvalid ConfigMap nodepatch/pools: key "gpu" value "selector: nodepool=gpu\nmaxUnavailable: 0"`)
	require.Contains(t, got[0], "keeps the last good pools: gpu (nodepool=gpu): max-unavailable 2")
	require.Equal(t, 0.0, gaugeValue(t, m.Pools.Valid))
	require.Contains(t, f.header(t).Annotations[lock.AnnotationRolloutPolicyError], `key "gpu"`)
	require.Contains(t, f.header(t).Annotations[lock.AnnotationRolloutPolicy], `"maxUnavailable":2`, "the header keeps the last good pools")
	require.NoError(t, r.Reconcile(ctx))
	require.Empty(t, drain(events), "one Warning per fault, not one per round")

	t.Run("a new leader takes the pools the last one published", func(t *testing.T) {
		next := newTestRollout(t, f, record.NewFakeRecorder(100), NewMetrics())
		pools, unknown, fault := next.poolsView(f.header(t))
		require.False(t, unknown)
		require.NotEmpty(t, fault)
		require.Len(t, pools, 1)
		require.Equal(t, policy.Quantity{Value: 2}, pools[0].MaxUnavailable)
	})
	t.Run("with no good pools known every waiting node is held", func(t *testing.T) {
		g3 := &fakeCaches{client: fake.NewClientset(kubeNode("g3", needs(1), inPool("gpu")), kubeNode("w", needs(2)))}
		g3.setPools(map[string]string{"gpu": "selector: ["})
		fresh := newTestRollout(t, g3, record.NewFakeRecorder(100), NewMetrics())
		require.NoError(t, fresh.Reconcile(ctx))
		require.Empty(t, g3.admitted(t))
		require.Contains(t, g3.header(t).Annotations[lock.AnnotationRolloutPolicyError], `key "gpu" value "selector: ["`)
	})

	f.setPools(map[string]string{"gpu": "selector: nodepool=gpu\nmaxUnavailable: 3"})
	require.NoError(t, r.Reconcile(ctx))
	require.Len(t, f.admitted(t), 3)
	require.NotContains(t, f.header(t).Annotations, lock.AnnotationRolloutPolicyError, "a good edit clears the fault")
	require.Equal(t, 1.0, gaugeValue(t, m.Pools.Valid))
}

// TestRolloutWarnsOfOverlaps: a node two pools select gets a Warning Event
// naming both pools and the node, once.
func TestRolloutWarnsOfOverlaps(t *testing.T) {
	both := kubeNode("n1", needs(1), inPool("gpu"), func(n *corev1.Node) { n.Labels["tier"] = "batch" })
	f := &fakeCaches{client: fake.NewClientset(both)}
	f.setPools(map[string]string{"gpu": "selector: nodepool=gpu\nmaxUnavailable: 1", "batch": "selector: tier=batch\nmaxUnavailable: 1"})
	events, m := record.NewFakeRecorder(100), NewMetrics()
	r := newTestRollout(t, f, events, m)
	require.NoError(t, r.Reconcile(context.Background()))
	require.NoError(t, r.Reconcile(context.Background()))
	require.Empty(t, f.admitted(t))
	var warnings []string
	for _, e := range drain(events) {
		if strings.Contains(e, "PoolsOverlap") {
			warnings = append(warnings, e)
		}
	}
	require.Equal(t, []string{"Warning PoolsOverlap pools batch, gpu select node n1, each; it is not admitted until their selectors " +
		"(ConfigMap nodepatch/pools) choose one pool for it"}, warnings)
	require.Equal(t, 1.0, gaugeValue(t, m.Pools.Overlaps))
}

func gaugeValue(t *testing.T, g prometheus.Gauge) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, g.Write(&m))
	return m.GetGauge().GetValue()
}
