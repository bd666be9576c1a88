package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// scriptedHealth answers the health gate as the test says.
type scriptedHealth struct{ view HealthView }

func (h *scriptedHealth) Healthy(context.Context) HealthView { return h.view }

func rebootedState() state.Node {
	return state.Node{Phase: state.PhaseRebooting, BootIDBefore: "boot-a", CordonedByUs: true,
		CycleStarted: time.Now().Add(-2 * time.Minute), RebootRequestedAt: time.Now().Add(-time.Minute), RebootAttempts: 1}
}

// rebootedWorld: the node rebooted (the host and the kubelet say boot-b) and
// holds its slot, with a health gate of a 3-minute soak and a 10-minute timeout.
func rebootedWorld(t *testing.T, health *scriptedHealth) *world {
	w := newWorld(t, rebootedState())
	w.holdSlot()
	w.bootedInto("boot-b")
	w.cfg = func(c *Config) {
		c.Limits.HealthGate, c.Limits.Soak, c.Limits.HealthTimeout = true, 3*time.Minute, 10*time.Minute
		c.Health = health
	}
	return w
}

// TestHealthGateHoldsTheSlotInService: back from the reboot, the node is in
// service at once but keeps its slot until healthy at the end of its soak.
func TestHealthGateHoldsTheSlotInService(t *testing.T) {
	health := &scriptedHealth{view: HealthView{Detail: "pods not Ready: kube-system/cni-x"}}
	w := rebootedWorld(t, health)
	a := w.agent()
	a.reconcile(context.Background())

	n := w.node()
	require.False(t, nodeops.HasTaint(n), "still tainted after the node came back")
	require.False(t, n.Spec.Unschedulable, "still cordoned after the node came back")
	require.True(t, w.slotHeld(), "the slot went on before the node proved healthy")
	st := w.state()
	require.Equal(t, state.PhaseVerifying, st.Phase)
	require.Equal(t, w.now.UTC().Truncate(time.Second), st.BackAt.UTC().Truncate(time.Second))

	health.view = HealthView{Healthy: true}
	w.now = w.now.Add(time.Minute)
	a.reconcile(context.Background())
	require.True(t, w.slotHeld(), "the slot went on before the soak ended")

	w.now = w.now.Add(2 * time.Minute)
	w.agent().reconcile(context.Background()) // a restart in the middle keeps the soak
	w.requireClean()
	require.Equal(t, 1.0, counterValue(t, w.metrics.Reboots.WithLabelValues("success")))
	require.Contains(t, allEvents(w.events), "BackInService")
}

// TestHealthGateTimeoutFailsAndKeepsTheSlot: a node not healthy in time stops
// the rollout (it keeps its slot) but stays in service, and a restarted agent
// does not start verifying again.
func TestHealthGateTimeoutFailsAndKeepsTheSlot(t *testing.T) {
	health := &scriptedHealth{view: HealthView{Detail: "the health query says unhealthy: 0 series"}}
	w := rebootedWorld(t, health)
	w.agent().reconcile(context.Background())
	w.now = w.now.Add(10 * time.Minute)
	w.agent().reconcile(context.Background())

	st := w.state()
	require.Equal(t, state.PhaseFailed, st.Phase)
	require.True(t, w.slotHeld(), "a node that failed its health gate gave its slot on")
	require.False(t, w.node().Spec.Unschedulable, "a node back in service was cordoned again")
	require.Equal(t, 1.0, counterValue(t, w.metrics.Reboots.WithLabelValues("unhealthy")))
	require.Contains(t, allEvents(w.events), "HealthCheckFailed")

	health.view = HealthView{Healthy: true}
	step, _, err := w.agent().ReconcileOnce(context.Background())
	require.NoError(t, err)
	require.Equal(t, ActHalt, step.Action, "a failed health gate must wait for an operator: %s", step.Reason)
}

type podList []corev1.Pod

func (p podList) Pods(context.Context) ([]corev1.Pod, error) { return p, nil }

type failingPods struct{}

func (failingPods) Pods(context.Context) ([]corev1.Pod, error) {
	return nil, errors.New("the server is down")
}

func pod(name string, lbls map[string]string, phase corev1.PodPhase, ready bool, owner string) corev1.Pod {
	p := corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, Labels: lbls}, Status: corev1.PodStatus{Phase: phase}}
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
	if owner != "" {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: owner, Name: "x"}}
	}
	return p
}

func TestPodBlocker(t *testing.T) {
	sel := func(s string) labels.Selector { l, err := labels.Parse(s); require.NoError(t, err); return l }
	b := PodBlocker{Selectors: []labels.Selector{sel("app=backup"), sel("tier in (db)")}}

	b.Pods = podList{pod("web", map[string]string{"app": "web"}, corev1.PodRunning, true, ""),
		pod("backup-done", map[string]string{"app": "backup"}, corev1.PodSucceeded, false, "")}
	require.Empty(t, b.Check(context.Background()), "a finished pod or a pod no selector matches held the reboot")

	b.Pods = append(b.Pods.(podList), pod("backup-1", map[string]string{"app": "backup"}, corev1.PodRunning, true, ""),
		pod("pg-0", map[string]string{"tier": "db"}, corev1.PodPending, false, ""))
	blocks := b.Check(context.Background())
	require.Equal(t, []Block{{Reason: BlockPods, Detail: "blocking pods run on the node: ns/backup-1, ns/pg-0"}}, blocks)

	b.Pods = failingPods{}
	blocks = b.Check(context.Background())
	require.Len(t, blocks, 1)
	require.Equal(t, BlockPods, blocks[0].Reason, "a pod list that fails must hold, not pass")
	require.Contains(t, blocks[0].Detail, "the server is down")
}

func TestHealthGatePods(t *testing.T) {
	sel, err := labels.Parse("app=ingress")
	require.NoError(t, err)
	g := HealthGate{DaemonSets: true, ReadyPods: sel, Pods: podList{
		pod("cni", nil, corev1.PodRunning, true, "DaemonSet"),
		pod("web", nil, corev1.PodRunning, false, "ReplicaSet"), // neither a DaemonSet's nor selected
		pod("job", nil, corev1.PodSucceeded, false, "DaemonSet"),
	}}
	require.Equal(t, HealthView{Healthy: true}, g.Healthy(context.Background()))

	g.Pods = append(g.Pods.(podList), pod("csi", nil, corev1.PodRunning, false, "DaemonSet"),
		pod("ingress-1", map[string]string{"app": "ingress"}, corev1.PodPending, false, ""))
	view := g.Healthy(context.Background())
	require.False(t, view.Healthy)
	require.Equal(t, "pods not Ready: ns/csi, ns/ingress-1", view.Detail)

	g.Pods = failingPods{}
	require.False(t, g.Healthy(context.Background()).Healthy, "a pod list that fails must not pass the gate")
}

type scriptedDetail struct {
	detail string
	err    error
}

func (s scriptedDetail) Check(context.Context) (string, error) { return s.detail, s.err }

func TestExternalBlockerFailsSafe(t *testing.T) {
	errDown := errors.New("dial tcp 127.0.0.1:9: connection refused")
	b := ExternalBlocker{Reason: BlockAlert, UnreachableReason: BlockPrometheusUnreachable,
		Unreachable: func(err error) bool { return errors.Is(err, errDown) }}
	b.Checker = scriptedDetail{}
	require.Empty(t, b.Check(context.Background()))
	b.Checker = scriptedDetail{detail: "firing: NodeDiskFull"}
	require.Equal(t, []Block{{Reason: BlockAlert, Detail: "firing: NodeDiskFull"}}, b.Check(context.Background()))
	b.Checker = scriptedDetail{err: errDown}
	require.Equal(t, BlockPrometheusUnreachable, b.Check(context.Background())[0].Reason)
	b.Checker = scriptedDetail{err: errors.New("bad_data: parse error")}
	require.Equal(t, BlockAlert, b.Check(context.Background())[0].Reason, "an error that is not unreachability must hold too")
}

// TestBlockersAreAskedAfreshBeforeTheCycle: a blocker that turns on between two
// looks stops the cycle at the step into it, though its last answer was fresh.
func TestBlockersAreAskedAfreshBeforeTheCycle(t *testing.T) {
	w := newWorld(t, state.Node{})
	pods := &togglePods{}
	w.cfg = func(c *Config) {
		sel, err := labels.Parse("app=backup")
		require.NoError(t, err)
		c.Blockers = []Blocker{PodBlocker{Pods: pods, Selectors: []labels.Selector{sel}}}
	}
	w.lock = &acquireThenBlock{onAcquire: func() { pods.on = true }}
	w.agent().reconcile(context.Background())
	require.False(t, nodeops.HasTaint(w.node()), "the cycle began although a blocking pod arrived before it")
	require.Equal(t, 1.0, w.blocked(BlockPods))
}

type togglePods struct{ on bool }

func (p *togglePods) Pods(context.Context) ([]corev1.Pod, error) {
	if !p.on {
		return nil, nil
	}
	return []corev1.Pod{pod("backup-1", map[string]string{"app": "backup"}, corev1.PodRunning, true, "")}, nil
}

// acquireThenBlock is a lock whose slot is free until taken; taking it runs
// onAcquire (a pod arrives, in the test) before the agent looks again.
type acquireThenBlock struct {
	held      bool
	onAcquire func()
}

func (l *acquireThenBlock) Snapshot() (lock.Snapshot, error) {
	s := lock.Snapshot{Limit: 1}
	if l.held {
		s.Holders = []lock.Holder{{Slot: "nodepatch-lock-0", Identity: testNode}}
	}
	return s, nil
}

func (l *acquireThenBlock) TryAcquire(context.Context) (string, bool, error) {
	l.held = true
	l.onAcquire()
	return "nodepatch-lock-0", true, nil
}
func (l *acquireThenBlock) Release(context.Context) error          { l.held = false; return nil }
func (l *acquireThenBlock) Renew(context.Context) error            { return nil }
func (l *acquireThenBlock) HoldsNow(context.Context) (bool, error) { return l.held, nil }
func (l *acquireThenBlock) Fenced(context.Context) bool            { return false }

func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, c.Write(&m))
	return m.GetCounter().GetValue()
}

func TestKuredBlocker(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ds := func(annotations map[string]string) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "kured", Namespace: "kube-system", Annotations: annotations}}
	}
	const key = "weave.works/kured-node-lock"
	cases := []struct {
		name    string
		objects []runtime.Object
		holds   string // "" for no hold, else a part of the detail
	}{
		{"no kured", nil, ""},
		{"kured without its lock", []runtime.Object{ds(nil)}, ""},
		{"one holder", []runtime.Object{ds(map[string]string{key: `{"nodeID":"n7","metadata":{"unschedulable":false},"created":"2026-12-01T09:59:00Z","TTL":0}`})}, "held by n7"},
		{"multi-holder, one expired", []runtime.Object{ds(map[string]string{key: `{"maxOwners":2,"locks":[` +
			`{"nodeID":"a","created":"2026-12-01T08:00:00Z","TTL":3600000000000},{"nodeID":"b","created":"2026-12-01T09:30:00Z","TTL":3600000000000}]}`})}, "held by b"},
		{"multi-holder, all expired", []runtime.Object{ds(map[string]string{key: `{"maxOwners":2,"locks":[{"nodeID":"a","created":"2026-12-01T08:00:00Z","TTL":3600000000000}]}`})}, ""},
		{"unreadable lock holds", []runtime.Object{ds(map[string]string{key: `{"node":"x"}`})}, "cannot be read"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			client := fake.NewClientset(c.objects...)
			b := KuredBlocker{DaemonSets: client.AppsV1().DaemonSets("kube-system"), Name: "kured", Annotation: key, Clock: func() time.Time { return now }}
			blocks := b.Check(context.Background())
			if c.holds == "" {
				require.Empty(t, blocks)
				return
			}
			require.Len(t, blocks, 1)
			require.Equal(t, BlockKuredLock, blocks[0].Reason)
			require.Contains(t, blocks[0].Detail, c.holds)
		})
	}
}

// appearingNode is a Node cache in which the Node shows up after some looks.
type appearingNode struct{ looks, after int }

func (n *appearingNode) Get(name string) (*corev1.Node, error) {
	n.looks++
	if n.looks <= n.after {
		return nil, apierrors.NewNotFound(corev1.Resource("nodes"), name)
	}
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, nil
}

// TestAgentWaitsForItsNode: a Node being registered again is waited for, not
// a reason to exit (chaos seed 151: the agent exited, and a DaemonSet would
// crash-loop it); only the context ends the wait.
func TestAgentWaitsForItsNode(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	nodes := &appearingNode{after: 2}
	require.NoError(t, waitForNode(context.Background(), nodes, "node-a", log))
	require.Equal(t, 3, nodes.looks)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	require.Error(t, waitForNode(ctx, &appearingNode{after: 1 << 30}, "node-a", log), "the wait outlived its context")
}
