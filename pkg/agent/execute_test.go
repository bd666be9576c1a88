package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/record"

	dto "github.com/prometheus/client_model/go"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/metrics"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// world is one node on the fake clientset, with the real node writer and the
// real lock over it, and a scripted host. Reads come straight from the fake
// API, so the agent's read-your-writes waits end at once.
type world struct {
	t        *testing.T
	client   *fake.Clientset
	host     *fakeHost
	rebooter *countingRebooter
	events   *record.FakeRecorder
	metrics  *metrics.Metrics
	now      time.Time
	// drain replaces the real drain when set (to act as an operator meanwhile).
	drain func(ctx context.Context) error
	// drains records the options of every drain asked for.
	drains []nodeops.DrainOptions
	// lock replaces the real lock when set.
	lock    Lock
	flushed int
	cfg     func(*Config)
}

const (
	testNode = "node-a"
	testNS   = "nodepatch"
)

func newWorld(t *testing.T, st state.Node) *world {
	t.Helper()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: testNode}}
	nodeops.SetAgentState(node, st)
	if st.Phase != state.PhaseIdle {
		node.Spec.Unschedulable = true
		nodeops.AddTaint(node, time.Now())
	}
	node.Status.NodeInfo.BootID = "boot-a"
	node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	w := &world{
		t: t, client: fake.NewClientset(node), host: &fakeHost{required: true, bootID: "boot-a"},
		rebooter: &countingRebooter{}, events: record.NewFakeRecorder(100), now: time.Now(),
	}
	return w
}

// holdSlot gives the node a slot on the fake API server.
func (w *world) holdSlot() {
	w.t.Helper()
	id := testNode
	_, err := w.client.CoordinationV1().Leases(testNS).Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "nodepatch-lock-0", Namespace: testNS, Labels: map[string]string{lock.LabelLock: "nodepatch-lock"}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &id},
	}, metav1.CreateOptions{})
	require.NoError(w.t, err)
}

// agent starts a new agent process on the world (a restart, when called again).
func (w *world) agent() *Agent {
	w.t.Helper()
	w.metrics = metrics.New(testNode, "test")
	sem := w.lock
	if sem == nil {
		real, err := lock.New(lock.Config{Name: "nodepatch-lock", Namespace: testNS, Slots: 1, Identity: testNode},
			w.client.CoordinationV1().Leases(testNS), lock.APILister{Leases: w.client.CoordinationV1().Leases(testNS)}, w.clock)
		require.NoError(w.t, err)
		sem = real
	}
	cfg := Config{
		NodeName: testNode,
		Limits: Limits{RebootTimeout: time.Minute, MaxRebootAttempts: 2, MinRebootInterval: time.Hour,
			MaxRepeatedReboots: 3, BusyTimeout: time.Hour},
		Period: time.Hour, Clock: w.clock, DrainRetryBackoff: time.Minute,
		Node: liveNode{w}, Nodes: &worldWriter{w: w, real: &nodeops.Node{Client: w.client, Name: testNode}},
		Lock: sem, Detector: w.host, BootID: w.host, Rebooter: w.rebooter, HostBusy: w.host,
		FlushEvents: func(context.Context) error { w.flushed++; return nil },
		Events:      w.events, Metrics: w.metrics, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if w.cfg != nil {
		w.cfg(&cfg)
	}
	a, err := New(cfg)
	require.NoError(w.t, err)
	return a
}

func (w *world) clock() time.Time { return w.now }

// bootedInto: the host rebooted into bootID, needs no reboot now, and its
// kubelet has reported from the new boot.
func (w *world) bootedInto(bootID string) {
	w.t.Helper()
	w.host.bootID, w.host.required = bootID, false
	n := w.node()
	n.Status.NodeInfo.BootID = bootID
	_, err := w.client.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{})
	require.NoError(w.t, err)
}

func (w *world) node() *corev1.Node {
	w.t.Helper()
	n, err := w.client.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
	require.NoError(w.t, err)
	return n
}

func (w *world) state() state.Node {
	st, err := state.Parse(w.node().Annotations)
	require.NoError(w.t, err)
	return st
}

// annotate changes the node as an operator would, behind the agent's back.
func (w *world) annotate(key string, value *string) {
	w.t.Helper()
	n := w.node()
	if value == nil {
		delete(n.Annotations, key)
	} else {
		n.Annotations[key] = *value
	}
	_, err := w.client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
	require.NoError(w.t, err)
}

func (w *world) slotHeld() bool {
	w.t.Helper()
	list, err := w.client.CoordinationV1().Leases(testNS).List(context.Background(), metav1.ListOptions{})
	require.NoError(w.t, err)
	for _, l := range list.Items {
		if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == testNode {
			return true
		}
	}
	return false
}

// requireClean: no taint, no cordon of nodepatch's, no phase, no slot.
func (w *world) requireClean() {
	w.t.Helper()
	n := w.node()
	require.False(w.t, nodeops.HasTaint(n), "left tainted")
	require.False(w.t, n.Spec.Unschedulable, "left cordoned")
	require.Empty(w.t, n.Annotations[state.AnnotationPhase], "left in a phase")
	require.False(w.t, w.slotHeld(), "left holding a slot")
}

func (w *world) blocked(reason string) float64 {
	var m dto.Metric
	require.NoError(w.t, w.metrics.RebootBlocked.WithLabelValues(reason).Write(&m))
	return m.GetGauge().GetValue()
}

type liveNode struct{ w *world }

func (n liveNode) Get() (*corev1.Node, error) {
	return n.w.client.CoreV1().Nodes().Get(context.Background(), testNode, metav1.GetOptions{})
}

type worldWriter struct {
	w    *world
	real *nodeops.Node
}

func (ww *worldWriter) Update(ctx context.Context, mutate func(*corev1.Node) error) (*corev1.Node, error) {
	return ww.real.Update(ctx, mutate)
}

func (ww *worldWriter) Drain(ctx context.Context, opts nodeops.DrainOptions) error {
	ww.w.drains = append(ww.w.drains, opts)
	if ww.w.drain != nil {
		return ww.w.drain(ctx)
	}
	return ww.real.Drain(ctx, opts)
}

func (ww *worldWriter) PodsToEvict(ctx context.Context, opts nodeops.DrainOptions) ([]string, error) {
	return ww.real.PodsToEvict(ctx, opts)
}

func (ww *worldWriter) DrainBlockers(ctx context.Context, opts nodeops.DrainOptions) ([]string, error) {
	return ww.real.DrainBlockers(ctx, opts)
}

type fakeHost struct {
	required  bool
	bootID    string
	busy      string
	busyAsked int
}

func (h *fakeHost) RebootRequired(context.Context) (host.RebootCheck, error) {
	return host.RebootCheck{Required: h.required, Reasons: []string{"sentinel"}}, nil
}
func (h *fakeHost) BootID(context.Context) (string, error) { return h.bootID, nil }
func (h *fakeHost) Busy(context.Context) (string, error)   { h.busyAsked++; return h.busy, nil }

type countingRebooter struct {
	calls  int
	refuse error
	before func() // runs at each request, to check what was done first
}

func (r *countingRebooter) Reboot(context.Context) error {
	r.calls++
	if r.before != nil {
		r.before()
	}
	return r.refuse
}

// staleLock: the cache says this node holds a slot; the API server may disagree.
type staleLock struct{ heldOnServer bool }

func (staleLock) Snapshot() (lock.Snapshot, error) {
	return lock.Snapshot{Holders: []lock.Holder{{Slot: "nodepatch-lock-0", Identity: testNode}}, Limit: 1}, nil
}
func (staleLock) TryAcquire(context.Context) (string, bool, error) { return "", false, nil }
func (staleLock) Release(context.Context) error                    { return nil }
func (staleLock) Renew(context.Context) error                      { return nil }
func (l staleLock) HoldsNow(context.Context) (bool, error)         { return l.heldOnServer, nil }
func (staleLock) Fenced(context.Context) bool                      { return false }

func allEvents(events *record.FakeRecorder) string {
	var all []string
	for {
		select {
		case e := <-events.Events:
			all = append(all, e)
		default:
			return strings.Join(all, "\n")
		}
	}
}

func drainedState() state.Node {
	return state.Node{Phase: state.PhaseDraining, Drained: true, CordonedByUs: true, CycleStarted: time.Now().Add(-time.Minute)}
}

// TestBeginCycleConfirmsTheSlotWithTheAPIServer: a cache that says the slot is
// held is not enough to taint and cordon.
func TestBeginCycleConfirmsTheSlotWithTheAPIServer(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.lock = staleLock{heldOnServer: false}
	w.agent().reconcile(context.Background())
	n := w.node()
	require.False(t, nodeops.HasTaint(n), "tainted on the cache's word alone")
	require.False(t, n.Spec.Unschedulable, "cordoned on the cache's word alone")

	w.lock = staleLock{heldOnServer: true}
	w.agent().reconcile(context.Background())
	require.True(t, nodeops.HasTaint(w.node()), "the API server confirms the slot: the cycle should start")
}

// TestRebootAsksTheAPIServerForTheLock: likewise for the reboot.
func TestRebootAsksTheAPIServerForTheLock(t *testing.T) {
	w := newWorld(t, drainedState())
	w.lock = staleLock{heldOnServer: false}
	w.agent().reconcile(context.Background())
	require.Zero(t, w.rebooter.calls, "rebooted although the API server says the slot is not held")
	require.Contains(t, allEvents(w.events), "not rebooting")

	w = newWorld(t, drainedState())
	w.lock = staleLock{heldOnServer: true}
	w.agent().reconcile(context.Background())
	require.Equal(t, 1, w.rebooter.calls, "the lock is held: the reboot should have been asked for once")
	st := w.state()
	require.Equal(t, state.PhaseRebooting, st.Phase)
	require.Equal(t, "boot-a", st.BootIDBefore)
	require.Equal(t, 1, st.RebootAttempts)
}

// TestBlockDuringDrainStopsTheReboot: an operator's block set while the drain
// runs ends the cycle before any reboot, and leaves the node clean.
func TestBlockDuringDrainStopsTheReboot(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.holdSlot()
	w.drain = func(context.Context) error {
		reason := "db migration"
		w.annotate(state.AnnotationBlockReboot, &reason)
		return nil
	}
	w.agent().reconcile(context.Background())
	require.Zero(t, w.rebooter.calls, "a block set during the drain did not stop the reboot")
	w.requireClean()
	require.Contains(t, allEvents(w.events), "blocked during the drain")
}

// TestResetDuringDrainIsNotOverwritten: an operator's removal of the phase
// during the drain is not written over by the step to Rebooting.
func TestResetDuringDrainIsNotOverwritten(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.holdSlot()
	w.drain = func(context.Context) error {
		w.annotate(state.AnnotationPhase, nil)
		return nil
	}
	w.agent().reconcile(context.Background())
	require.Zero(t, w.rebooter.calls, "rebooted after the operator reset the phase during the drain")
	require.NotEqual(t, state.PhaseRebooting, w.state().Phase)
}

// TestRestartedAgentNeverAsksTwice: a reboot asked for by an earlier process
// is not asked for again before the reboot timeout, and every request counts.
func TestRestartedAgentNeverAsksTwice(t *testing.T) {
	asked := time.Now().Add(-10 * time.Second)
	w := newWorld(t, state.Node{Phase: state.PhaseRebooting, BootIDBefore: "boot-a", CordonedByUs: true,
		CycleStarted: asked, RebootRequestedAt: asked, RebootAttempts: 1})
	w.holdSlot()
	for range 3 {
		w.agent().reconcile(context.Background()) // restarts, boot id still unchanged
	}
	require.Zero(t, w.rebooter.calls, "asked again within the reboot timeout")

	w.now = asked.Add(2 * time.Minute)
	w.agent().reconcile(context.Background())
	require.Equal(t, 1, w.rebooter.calls)
	require.Equal(t, 2, w.state().RebootAttempts, "the second request is the second attempt")

	w.now = w.now.Add(2 * time.Minute)
	w.agent().reconcile(context.Background())
	require.Equal(t, 1, w.rebooter.calls, "asked a third time")
	require.Equal(t, state.PhaseFailed, w.state().Phase)
	require.True(t, w.slotHeld(), "a failed node keeps its slot")
	require.True(t, w.node().Spec.Unschedulable, "a failed node keeps its cordon")
}

// TestStaleViewDoesNotHalt: a halt decided on a view that lags behind the API
// server (an attempt recorded since) is not written: the reboot under way goes
// on, and no RebootFailed Event or metric says otherwise.
func TestStaleViewDoesNotHalt(t *testing.T) {
	asked := time.Now().Add(-10 * time.Minute)
	w := newWorld(t, state.Node{Phase: state.PhaseRebooting, BootIDBefore: "boot-a", CordonedByUs: true,
		CycleStarted: asked, RebootRequestedAt: asked, RebootAttempts: 2})
	w.holdSlot()
	a := w.agent()
	obs, err := a.observe(context.Background())
	require.NoError(t, err)
	step := Decide(obs)
	require.Equal(t, ActFailReboot, step.Action, step.Reason)

	w.annotate(state.AnnotationRebootRequestedAt, ptr(w.now.UTC().Format(time.RFC3339Nano)))
	progressed, err := a.execute(context.Background(), obs, step)
	require.NoError(t, err)
	require.True(t, progressed, "the agent should look again at once")
	require.Equal(t, state.PhaseRebooting, w.state().Phase, "halted on a stale view")
	require.NotContains(t, allEvents(w.events), "RebootFailed")
	require.Zero(t, counterValue(t, w.metrics.Reboots.WithLabelValues("failed")))
}

// TestAttemptCommittedWithoutAnAnswerIsAsked: the write that records the
// attempt is committed but its answer is lost (a 500 after the write, a
// timeout): the agent finds its attempt on the API server and asks the host
// at once, instead of spending the attempt on a request never made.
func TestAttemptCommittedWithoutAnAnswerIsAsked(t *testing.T) {
	w := newWorld(t, drainedState())
	w.holdSlot()
	lost := 1
	w.client.PrependReactor("update", "nodes", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if lost == 0 {
			return false, nil, nil
		}
		lost--
		obj := action.(k8stesting.UpdateAction).GetObject()
		if err := w.client.Tracker().Update(action.GetResource(), obj, ""); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewInternalError(errors.New("the answer was lost"))
	})
	w.agent().reconcile(context.Background())
	require.Equal(t, 1, w.rebooter.calls, "the recorded attempt was not asked for")
	st := w.state()
	require.Equal(t, state.PhaseRebooting, st.Phase)
	require.Equal(t, 1, st.RebootAttempts, "one request, one attempt")
}

// TestRefusedRebootIsAnAttempt: a refused request is decided on: one more
// attempt, then Failed.
func TestRefusedRebootIsAnAttempt(t *testing.T) {
	w := newWorld(t, drainedState())
	w.holdSlot()
	w.rebooter.refuse = errors.New("access denied")
	a := w.agent()
	a.reconcile(context.Background())
	require.Equal(t, 2, w.rebooter.calls, "want the first request and one retry")
	require.Equal(t, state.PhaseRebooting, w.state().Phase, "the host may go down after all: wait out the timeout")
	w.now = w.now.Add(2 * time.Minute)
	a.reconcile(context.Background())
	require.Equal(t, 2, w.rebooter.calls)
	st := w.state()
	require.Equal(t, state.PhaseFailed, st.Phase)
	require.Equal(t, 2, st.RebootAttempts)
	require.Contains(t, allEvents(w.events), "access denied")
}

// TestRebootLoopIsHeld: a host that still asks for a reboot right after a
// verified one is not rebooted again at once; the pattern halts it.
func TestRebootLoopIsHeld(t *testing.T) {
	w := newWorld(t, state.Node{Phase: state.PhaseRebooting, BootIDBefore: "boot-old", CordonedByUs: true,
		CycleStarted: time.Now().Add(-time.Minute), RebootRequestedAt: time.Now().Add(-time.Minute), RebootAttempts: 1})
	w.holdSlot()
	w.agent().reconcile(context.Background()) // back on boot-a, the sentinel still there
	st := w.state()
	require.Equal(t, state.PhaseIdle, st.Phase, "the verified reboot should finish")
	require.Equal(t, 1, st.RepeatedReboots)
	w.requireClean()

	w.agent().reconcile(context.Background())
	require.Zero(t, w.rebooter.calls, "rebooted again right after a reboot that did not clear the need")
	require.False(t, nodeops.HasTaint(w.node()))
	require.Equal(t, 1.0, w.blocked(BlockRecentReboot))
	require.Contains(t, allEvents(w.events), "RebootLoop")

	w.annotate(state.AnnotationRepeatedReboots, ptr("3"))
	w.now = w.now.Add(2 * time.Hour)
	w.agent().reconcile(context.Background())
	require.Zero(t, w.rebooter.calls, "a reboot loop went on")
	require.Equal(t, 1.0, w.blocked(BlockRebootLoop))
}

func ptr(s string) *string { return &s }

// TestRebootingWithoutBootIDHalts: with the boot id it left edited away, the
// agent cannot tell whether the host rebooted: it halts, never finishes.
func TestRebootingWithoutBootIDHalts(t *testing.T) {
	w := newWorld(t, state.Node{Phase: state.PhaseRebooting, CordonedByUs: true, CycleStarted: time.Now(),
		RebootRequestedAt: time.Now(), RebootAttempts: 1})
	w.holdSlot()
	w.agent().reconcile(context.Background())
	require.Equal(t, state.PhaseFailed, w.state().Phase)
	require.True(t, w.node().Spec.Unschedulable, "uncordoned without knowing whether the host rebooted")
	require.Zero(t, w.rebooter.calls)
}

// TestNoRebootWhileHostBusy: a package transaction on the host holds the
// reboot; when it ends, the reboot goes ahead.
func TestNoRebootWhileHostBusy(t *testing.T) {
	w := newWorld(t, drainedState())
	w.holdSlot()
	w.host.busy = "package database locked: /var/lib/dpkg/lock"
	a := w.agent()
	a.reconcile(context.Background())
	require.Zero(t, w.rebooter.calls, "rebooted during a package transaction")
	require.Equal(t, 1.0, w.blocked(BlockHostBusy))
	require.Contains(t, allEvents(w.events), "HostBusy")

	w.host.busy = ""
	a.reconcile(context.Background())
	require.Equal(t, 1, w.rebooter.calls)
}

// TestRebootFlushesEventsFirst: the Events reach the API server before the
// host is asked to go down.
func TestRebootFlushesEventsFirst(t *testing.T) {
	w := newWorld(t, drainedState())
	w.holdSlot()
	w.rebooter.before = func() { require.Equal(t, 1, w.flushed, "asked for the reboot before flushing the Events") }
	w.agent().reconcile(context.Background())
	require.Equal(t, 1, w.rebooter.calls)
}

// TestDrainTimeoutRebootsOnlyWhenConfigured: the typed timeout, whatever
// kubectl's words, decides between rebooting anyway and backing off.
func TestDrainTimeoutRebootsOnlyWhenConfigured(t *testing.T) {
	for _, rebootAnyway := range []bool{false, true} {
		t.Run(fmt.Sprint(rebootAnyway), func(t *testing.T) {
			w := newWorld(t, state.Node{})
			w.holdSlot()
			w.drain = func(context.Context) error {
				return fmt.Errorf("draining node %s: %w after 1s: pods still terminating", testNode, nodeops.ErrDrainTimeout)
			}
			w.cfg = func(c *Config) { c.RebootAfterDrainTimeout = rebootAnyway }
			w.agent().reconcile(context.Background())
			if rebootAnyway {
				require.Equal(t, 1, w.rebooter.calls)
				return
			}
			require.Zero(t, w.rebooter.calls)
			w.requireClean()
			require.Equal(t, 1, w.state().DrainFailures)
		})
	}
}

// TestDryRunIsTheSameExecutor: a dry run walks a whole cycle through the
// executor and changes nothing on the Node or the lock.
func TestDryRunIsTheSameExecutor(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.cfg = func(c *Config) { c.DryRun = true }
	before := w.node()
	w.agent().reconcile(context.Background())
	require.Zero(t, w.rebooter.calls, "a dry run rebooted")
	require.Equal(t, before.Annotations, w.node().Annotations, "a dry run wrote annotations")
	require.False(t, w.node().Spec.Unschedulable, "a dry run cordoned")
	require.False(t, w.slotHeld(), "a dry run took a slot")
	msgs := allEvents(w.events)
	for _, want := range []string{"would take a lock slot", "would taint", "would evict 0 pods", "would reboot the host now"} {
		require.Contains(t, msgs, want)
	}
}

// TestFinishLeavesTheNodeClean: a verified reboot untaints, uncordons,
// releases and records the reboot.
func TestFinishLeavesTheNodeClean(t *testing.T) {
	w := newWorld(t, state.Node{Phase: state.PhaseRebooting, BootIDBefore: "boot-old", CordonedByUs: true,
		CycleStarted: time.Now().Add(-time.Minute), RebootRequestedAt: time.Now().Add(-time.Minute), RebootAttempts: 1})
	w.holdSlot()
	w.host.required = false
	w.agent().reconcile(context.Background())
	w.requireClean()
	st := w.state()
	require.False(t, st.LastReboot.IsZero())
	require.Zero(t, st.RepeatedReboots)
	require.Contains(t, allEvents(w.events), "RebootSucceeded")
}

// TestOperatorCordonSurvivesTheCycle: a node the operator cordoned stays so.
func TestOperatorCordonSurvivesTheCycle(t *testing.T) {
	w := newWorld(t, state.Node{})
	n := w.node()
	n.Spec.Unschedulable = true
	_, err := w.client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
	require.NoError(t, err)
	w.holdSlot()
	w.drain = func(context.Context) error { return errors.New("a pod would not go") }
	w.agent().reconcile(context.Background())
	require.True(t, w.node().Spec.Unschedulable, "nodepatch lifted an operator's cordon")
	require.False(t, nodeops.HasTaint(w.node()))
}

// TestHostAskedWhetherBusyOnlyBeforeAReboot: the busy check runs a command on
// the host, so it is made only when the next step may be the reboot.
func TestHostAskedWhetherBusyOnlyBeforeAReboot(t *testing.T) {
	asked := time.Now().Add(-10 * time.Second)
	w := newWorld(t, state.Node{Phase: state.PhaseRebooting, BootIDBefore: "boot-a", CordonedByUs: true,
		CycleStarted: asked, RebootRequestedAt: asked, RebootAttempts: 1})
	w.holdSlot()
	w.agent().reconcile(context.Background())
	require.Zero(t, w.host.busyAsked, "asked while waiting for a reboot already requested")

	w = newWorld(t, state.Node{})
	w.host.required = false
	w.agent().reconcile(context.Background())
	require.Zero(t, w.host.busyAsked, "asked on an idle node")

	w = newWorld(t, drainedState())
	w.holdSlot()
	w.agent().reconcile(context.Background())
	require.Equal(t, 1, w.host.busyAsked)
}

// TestHostChangeIsSeenBeforeThePeriod: a watch's word that the sentinel
// changed makes the agent ask the host at once, not a period later.
func TestHostChangeIsSeenBeforeThePeriod(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.host.required = false
	a := w.agent()
	a.reconcile(context.Background())
	w.host.required = true
	a.reconcile(context.Background())
	require.False(t, w.slotHeld(), "asked the host again before the period without being told")

	a.HostChanged()
	a.reconcile(context.Background())
	require.True(t, nodeops.HasTaint(w.node()), "the change was not looked at")
}

// TestAdmissionProtocol: with a rollout controller, the agent reports its need,
// takes no slot until admitted, and clears both when its cycle ends.
func TestAdmissionProtocol(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.cfg = func(c *Config) { c.Admission = true }
	a := w.agent()
	a.reconcile(context.Background())
	require.False(t, w.state().NeedSince.IsZero(), "the need was not reported")
	require.False(t, w.slotHeld(), "took a slot without an admission")
	require.Zero(t, w.rebooter.calls)

	w.annotate(state.AnnotationAdmitted, ptr(time.Now().UTC().Format(time.RFC3339)))
	a.reconcile(context.Background())
	require.True(t, w.slotHeld(), "admitted, but took no slot")
	require.Equal(t, 1, w.rebooter.calls)

	w.host.bootID = "boot-b" // the host rebooted
	n := w.node()
	n.Status.NodeInfo.BootID = "boot-b"
	_, err := w.client.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{})
	require.NoError(t, err)
	w.host.required = false
	w.agent().reconcile(context.Background())
	w.requireClean()
	after := w.node().Annotations
	require.NotContains(t, after, state.AnnotationNeedSince)
	require.NotContains(t, after, state.AnnotationAdmitted, "the admission outlived its cycle")
}

// confirmingLock is the real lock, recording for each confirmation with the
// API server (HoldsNow) whether the node was tainted yet.
type confirmingLock struct {
	Lock
	w        *world
	confirms []string
}

func (l *confirmingLock) HoldsNow(ctx context.Context) (bool, error) {
	l.confirms = append(l.confirms, map[bool]string{false: "before taint", true: "after taint"}[nodeops.HasTaint(l.w.node())])
	return l.Lock.HoldsNow(ctx)
}

// TestSlotIsConfirmedBeforeTaintUnlessJustWon: the taint waits for the API
// server's word that the slot is held; the answer to this process's own
// winning take, in the step just before, is that word. A process that finds
// the slot already held (a restart) asks. The reboot always asks.
func TestSlotIsConfirmedBeforeTaintUnlessJustWon(t *testing.T) {
	for _, tc := range []struct {
		name     string
		heldOnce bool // the slot was taken by an earlier run of the agent
		want     []string
	}{
		{"slot won in the step before the taint", false, []string{"after taint"}},
		{"slot held from an earlier run", true, []string{"before taint", "after taint"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, state.Node{})
			if tc.heldOnce {
				w.holdSlot()
			}
			real, err := lock.New(lock.Config{Name: "nodepatch-lock", Namespace: testNS, Slots: 1, Identity: testNode},
				w.client.CoordinationV1().Leases(testNS), lock.APILister{Leases: w.client.CoordinationV1().Leases(testNS)}, w.clock)
			require.NoError(t, err)
			confirming := &confirmingLock{Lock: real, w: w}
			w.lock = confirming
			w.agent().reconcile(context.Background())
			require.Equal(t, 1, w.rebooter.calls, "the cycle should reach its reboot")
			require.Equal(t, tc.want, confirming.confirms)
		})
	}
}
