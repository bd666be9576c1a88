// Package agent is the per-node reboot cycle: it observes its Node, the lock and
// the host, asks Decide for the next step, and carries that step out through small
// interfaces. All state that must survive a restart is on the Node and the Lease;
// what the agent keeps in memory is only a cache of what it can read again.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/metrics"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/schedule"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// NodeReader reads the agent's own Node, from an informer's cache.
type NodeReader interface {
	Get() (*corev1.Node, error)
}

// NodeWriter changes the agent's own Node.
type NodeWriter interface {
	Update(ctx context.Context, mutate func(*corev1.Node) error) (*corev1.Node, error)
	Drain(ctx context.Context, opts nodeops.DrainOptions) error
	PodsToEvict(ctx context.Context, opts nodeops.DrainOptions) ([]string, error)
	// DrainBlockers names the pods a drain could not move, and their budgets.
	DrainBlockers(ctx context.Context, opts nodeops.DrainOptions) ([]string, error)
}

// Lock is the cluster-wide semaphore.
type Lock interface {
	Snapshot() (lock.Snapshot, error)
	TryAcquire(ctx context.Context) (string, bool, error)
	Release(ctx context.Context) error
	Renew(ctx context.Context) error
	HoldsNow(ctx context.Context) (bool, error)
	// Fenced: with a TTL, the slot may no longer be counted on (not renewed in time).
	Fenced(ctx context.Context) bool
}

// RebootDetector tells whether the host needs a reboot.
type RebootDetector interface {
	RebootRequired(ctx context.Context) (host.RebootCheck, error)
}

// BootIDReader reads the host's current boot id.
type BootIDReader interface {
	BootID(ctx context.Context) (string, error)
}

// Rebooter asks the host to reboot.
type Rebooter interface {
	Reboot(ctx context.Context) error
}

// HostBusyChecker tells what, if anything, must finish on the host before it may
// reboot: a package transaction, a nodepatch host command still running.
type HostBusyChecker interface {
	Busy(ctx context.Context) (string, error)
}

// NodeLabels are set on the node around its cycle: Pre when it begins, Post
// when it ends, and ExcludeFromLB (state.LabelExcludeFromLB) for its length.
type NodeLabels struct {
	Pre, Post     map[string]string
	ExcludeFromLB bool
}

// Blocker looks outside the node for what must hold a cycle back: a firing
// alert, pods on the node, kured's lock. It fails safe: a blocker that cannot
// tell returns a Block saying so.
type Blocker interface {
	Check(ctx context.Context) []Block
}

// HealthChecker says whether the node is healthy after its reboot, and if not,
// what is not.
type HealthChecker interface {
	Healthy(ctx context.Context) HealthView
}

// Config is everything the agent needs, effects included.
type Config struct {
	NodeName string
	Limits   Limits
	Drain    nodeops.DrainOptions
	// DrainRetryBackoff is the wait after the first failed drain; it doubles with
	// each further failure, up to MaxDrainRetryBackoff.
	DrainRetryBackoff    time.Duration
	MaxDrainRetryBackoff time.Duration
	// RebootAfterDrainTimeout reboots even when the drain timed out.
	RebootAfterDrainTimeout bool
	// DrainTimeoutAction is what a drain that timed out leads to otherwise;
	// ForceDrainGrace is the grace period (seconds) of a forced one.
	DrainTimeoutAction DrainTimeoutAction
	ForceDrainGrace    int
	// Labels are the node labels of a cycle.
	Labels NodeLabels
	// Period is how often the host is asked whether it needs a reboot (jittered).
	Period time.Duration
	// Admission: wait for the rollout controller's admission before taking a slot.
	Admission bool
	Schedule  schedule.Schedule
	// CycleFallback is the expected length of a cycle for a node with none on
	// record: whether one fits before the window closes.
	CycleFallback time.Duration
	DryRun        bool
	Clock         func() time.Time

	Node NodeReader
	// NodeChanged, when set, returns a channel closed at the Node cache's next
	// change: the agent waits on it for its own writes to show (nil: it
	// looks every few milliseconds).
	NodeChanged func() <-chan struct{}
	Nodes       NodeWriter
	Lock        Lock
	Detector    RebootDetector
	BootID      BootIDReader
	Rebooter    Rebooter
	HostBusy    HostBusyChecker // nil: never busy
	Blockers    []Blocker
	Health      HealthChecker // nil: healthy once Ready (Limits.HealthGate then only soaks)
	Notifier    Notifier      // nil: no notifications
	// BlockedLongAfter: a needed cycle held this long is notified (0: never).
	BlockedLongAfter time.Duration
	Patcher          Patcher // nil: no patching
	Patch            PatchSettings
	Events           record.EventRecorder
	// FlushEvents waits until the Events recorded so far reached the API server
	// (nil: Events are not waited for).
	FlushEvents func(ctx context.Context) error
	Metrics     *metrics.Metrics
	Log         *slog.Logger
}

// Agent runs the cycle for one node.
type Agent struct {
	cfg     Config
	trigger chan struct{}
	// hostChanged: a watch saw the host's reboot signal change; ask it now
	// rather than at the next period.
	hostChanged atomic.Bool

	host          HostView
	nextHostCheck time.Time
	// bootID is the host's boot id, read once: no process outlives a reboot.
	bootID string
	// refusal is the host's refusal of a reboot request, for the attempt it names.
	refusal refusal
	// busy is what last kept the host from rebooting, and since when.
	busy      string
	busySince time.Time
	// blockedSince is when the current hold began (in this process), and
	// blockedTold whether it was notified as long.
	blockedSince time.Time
	blockedTold  bool
	// blocks is what the blockers last found, and when they looked.
	blocks        []Block
	blocksChecked time.Time
	// told holds the last message of each once-only Event reason.
	told map[string]string
	// slotJustTaken: the step just executed won a slot from the API server,
	// whose answer confirms the slot for the taint, if that comes next.
	slotJustTaken bool
	// lockWait is when this process first lost a try for a slot under the
	// admission of that time stamp.
	lockWait struct{ admitted, since time.Time }
	// drained is the Drained Event's message, left for the next step.
	drained string
	dry     *dryRun
	patch   patchState
}

type refusal struct {
	attempt string // attemptKey of the refused attempt
	msg     string
}

// New checks cfg and returns an agent.
func New(cfg Config) (*Agent, error) {
	if cfg.NodeName == "" || cfg.Node == nil || cfg.Nodes == nil || cfg.Lock == nil || cfg.Detector == nil ||
		cfg.BootID == nil || cfg.Rebooter == nil || cfg.Events == nil || cfg.Metrics == nil || cfg.Log == nil {
		return nil, errors.New("agent: node name and every effect (node, lock, detector, boot id, rebooter, events, metrics, log) must be set")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Limits.MaxRebootAttempts < 1 {
		cfg.Limits.MaxRebootAttempts = 2
	}
	a := &Agent{cfg: cfg, trigger: make(chan struct{}, 1)}
	if cfg.DryRun {
		a.dry = newDryRun(a)
	}
	return a, nil
}

// Trigger asks the agent to look again soon; informer handlers call it. It never blocks.
func (a *Agent) Trigger() {
	select {
	case a.trigger <- struct{}{}:
	default:
	}
}

// HostChanged asks the agent to ask the host again at once (a watch of the
// sentinel saw it change). It never blocks.
func (a *Agent) HostChanged() {
	a.hostChanged.Store(true)
	a.Trigger()
}

// Run reconciles until ctx ends: on every trigger, when the step's deadline comes,
// and every period.
func (a *Agent) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		until := a.reconcile(ctx)
		timer.Reset(a.sleepFor(until))
		select {
		case <-ctx.Done():
			return nil
		case <-a.trigger:
		case <-timer.C:
		}
	}
}

// sleepFor is the time to the step's deadline, or to the next host check.
func (a *Agent) sleepFor(until time.Time) time.Duration {
	next := a.nextHostCheck
	if !until.IsZero() && until.Before(next) {
		next = until
	}
	return max(next.Sub(a.cfg.Clock()), 10*time.Millisecond)
}

// reconcile takes steps until one has to wait, and returns when to look again.
func (a *Agent) reconcile(ctx context.Context) time.Time {
	const maxSteps = 16 // a full cycle is fewer; this only bounds a bug
	for range maxSteps {
		if ctx.Err() != nil {
			return time.Time{}
		}
		step, progressed, err := a.ReconcileOnce(ctx)
		switch {
		case errors.Is(err, errObserve):
			return a.cfg.Clock().Add(time.Second)
		case err != nil:
			return a.cfg.Clock().Add(2 * time.Second)
		case !progressed:
			return step.Until
		}
	}
	return a.cfg.Clock().Add(time.Second)
}

// errObserve marks a failure to read the node, the lock or the host.
var errObserve = errors.New("cannot observe")

// ReconcileOnce observes once, decides once and carries out that one step. It
// reports the step and whether it changed anything (then the caller should look
// again at once). Run calls it in a loop; a model checker calls it to
// interleave agents one step at a time.
func (a *Agent) ReconcileOnce(ctx context.Context) (Step, bool, error) {
	if a.dry != nil && a.cfg.Clock().Before(a.dry.restUntil) {
		return Step{Action: ActWait, Phase: "Idle", Reason: "dry run resting", Until: a.dry.restUntil}, false, nil
	}
	obs, err := a.observe(ctx)
	if err != nil {
		a.cfg.Log.Error("cannot observe the node; will retry", "err", err)
		return Step{}, false, fmt.Errorf("%w: %w", errObserve, err)
	}
	step := Decide(obs)
	a.record(obs, step)
	progressed, err := a.execute(ctx, obs, step)
	if err == nil && !progressed {
		err = a.showHold(ctx, obs, step)
	}
	if err != nil {
		a.cfg.Log.Error("step failed; will retry", "action", step.Action.String(), "err", err)
		a.warnOnce("StepFailed", "%s failed: %v", step.Action, err)
		return step, false, err
	}
	if progressed {
		a.forgetEvents()
	}
	return step, progressed, nil
}

// showHold writes on the Node why its cycle waits, and at which gate, when that
// changed: for `nodepatch status`, and for the approver watching for a gate.
func (a *Agent) showHold(ctx context.Context, obs Observation, step Step) error {
	held := ""
	if len(step.Blocked) > 0 {
		held = step.Reason
	}
	gate := ""
	if step.Action == ActWait {
		gate = step.Gate
	}
	st := obs.Node.State
	if st.Held == held && st.WaitingForGate == gate {
		return nil
	}
	if gate != "" && st.WaitingForGate != gate {
		a.normal("WaitingForApproval", "%s; approve with: nodepatch approve %s %s", step.Reason, a.cfg.NodeName, gate)
	}
	if err := a.updateState(ctx, func(_ *corev1.Node, st *state.Node) { st.Held, st.WaitingForGate = held, gate }); err != nil {
		return fmt.Errorf("recording why the node waits: %w", err)
	}
	return nil
}

// observe gathers an Observation from the caches and the host.
func (a *Agent) observe(ctx context.Context) (Observation, error) {
	now := a.cfg.Clock()
	node, err := a.cfg.Node.Get()
	if err != nil {
		return Observation{}, fmt.Errorf("reading node %s from the cache: %w", a.cfg.NodeName, err)
	}
	st, parseErr := state.Parse(node.Annotations)
	if parseErr != nil {
		a.cfg.Metrics.AnnotationErrors.Inc()
		a.warnOnce("InvalidAnnotation", "ignoring malformed annotation value: %v", parseErr)
	}
	snap, err := a.cfg.Lock.Snapshot()
	if err != nil {
		return Observation{}, err
	}
	if err := a.refreshHost(ctx, now); err != nil {
		return Observation{}, err
	}
	obs := Observation{
		Now:       now,
		Node:      nodeView(node, st),
		Lock:      LockView{PauseReason: snap.PauseReason, Holders: snap.Describe()},
		Host:      a.host,
		Patch:     PatchView{Enabled: a.cfg.Patcher != nil, Interval: a.cfg.Patch.Interval, LastRound: a.patch.lastRound},
		Limits:    a.cfg.Limits,
		Admission: a.cfg.Admission,
	}
	a.observeWindow(&obs)
	holder, held := snap.Held(a.cfg.NodeName)
	// A holder that cannot keep its slot alive acts as if it had none: it
	// stops before the reboot, and Decide undoes the cycle.
	obs.Lock.Held = held && !a.cfg.Lock.Fenced(ctx)
	obs.Lock.PastLimit = held && snap.PastLimit(holder)
	if a.refusal.attempt != "" && a.refusal.attempt == attemptKey(st.BootIDBefore, st.RebootAttempts) {
		obs.Host.RebootRefused = a.refusal.msg
	}
	obs.Host.PatchReady, obs.Host.PatchApplied = a.patch.ready, a.patch.applied
	if aboutToReboot(obs) {
		a.refreshBusy(ctx, now)
		obs.Host.Busy, obs.Host.BusySince = a.busy, a.busySince
	}
	if mayStartCycle(obs) {
		obs.Blocks = a.refreshBlocks(ctx, now, obs.Lock.Held)
	}
	if obs.Node.State.Phase == state.PhaseVerifying {
		obs.Health = a.health(ctx)
	}
	a.recordBootIDs(obs)
	return obs, nil
}

// aboutToReboot: the next decision may ask the host to reboot, so it needs to
// know whether the host is busy. Only then is the host asked, since asking runs
// a command there.
func aboutToReboot(o Observation) bool {
	st := o.Node.State
	switch st.Phase {
	case state.PhaseDraining:
		return st.Drained
	case state.PhaseRebooting:
		waiting := !st.RebootRequestedAt.IsZero() && o.Now.Before(st.RebootRequestedAt.Add(o.Limits.RebootTimeout))
		return !o.rebooted() && (!waiting || o.Host.RebootRefused != "")
	}
	return false
}

// observeWindow says whether the window is open, and whether a cycle as long
// as this node's recent ones would end before it closes.
func (a *Agent) observeWindow(o *Observation) {
	sched, now := a.cfg.Schedule, o.Now
	o.ExpectedCycle = schedule.ExpectedCycle(o.Node.State.CycleDurations, a.cfg.CycleFallback)
	o.WindowOpen = sched.Open(now)
	o.WindowTooShort = o.WindowOpen && !sched.Fits(now, o.ExpectedCycle)
	o.NextWindow = now
	if !o.WindowOpen || o.WindowTooShort {
		o.WindowCloses = sched.CloseAfter(now)
		if o.NextWindow = sched.NextFit(now, o.ExpectedCycle); o.NextWindow.IsZero() {
			o.NextWindow = sched.Next(now)
		}
	}
}

// mayStartCycle: an idle node that needs a cycle, the only time the blockers
// outside the node are asked (asking costs a query or a LIST).
func mayStartCycle(o Observation) bool {
	return o.Node.State.Phase == state.PhaseIdle && o.cycleNeeded()
}

// blocksMaxAge is how long the blockers' answer serves a node that waits for a
// slot or an admission; taking the step into the cycle always asks afresh.
const blocksMaxAge = 15 * time.Second

// refreshBlocks asks every blocker when the last answer is too old, or fresh
// is set (the slot is held, so the next step may begin the cycle).
func (a *Agent) refreshBlocks(ctx context.Context, now time.Time, fresh bool) []Block {
	if !fresh && !a.blocksChecked.IsZero() && now.Sub(a.blocksChecked) < blocksMaxAge {
		return a.blocks
	}
	var blocks []Block
	for _, b := range a.cfg.Blockers {
		blocks = append(blocks, b.Check(ctx)...)
	}
	a.blocks, a.blocksChecked = blocks, now
	return blocks
}

func (a *Agent) health(ctx context.Context) HealthView {
	if a.cfg.Health == nil {
		return HealthView{Healthy: true}
	}
	return a.cfg.Health.Healthy(ctx)
}

// refreshBusy asks the host whether a package transaction or a nodepatch
// command still runs. An unanswered question counts as busy: never reboot on a
// guess.
func (a *Agent) refreshBusy(ctx context.Context, now time.Time) {
	what := ""
	if a.cfg.HostBusy != nil {
		var err error
		if what, err = a.cfg.HostBusy.Busy(ctx); err != nil {
			what = "cannot tell whether a package transaction runs: " + err.Error()
		}
	}
	switch {
	case what == "":
		a.busy, a.busySince = "", time.Time{}
	case a.busy == "":
		a.busy, a.busySince = what, now
		a.warn("HostBusy", "not rebooting yet: %s", what)
	default:
		a.busy = what
	}
}

// recordBootIDs shows the host's and the kubelet's boot ids in a metric while
// they disagree.
func (a *Agent) recordBootIDs(o Observation) {
	_, mismatch := o.bootIDMismatch()
	a.cfg.Metrics.SetBootIDMismatch(mismatch, o.Host.BootID, o.Node.ReportedBootID)
}

func nodeView(node *corev1.Node, st state.Node) NodeView {
	_, quarantined := node.Labels[state.LabelQuarantined]
	v := NodeView{State: st, Tainted: nodeops.HasTaint(node), Quarantined: quarantined, ReportedBootID: node.Status.NodeInfo.BootID}
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			v.Ready = c.Status == corev1.ConditionTrue
		}
	}
	return v
}

// attemptKey names one reboot attempt: the boot it leaves and its number.
func attemptKey(bootID string, attempt int) string {
	return fmt.Sprintf("%s/%d", bootID, attempt)
}

// refreshHost reads the host's boot id once (a reboot ends every process, so it
// cannot change under a running agent) and asks whether a reboot is needed once
// a period.
func (a *Agent) refreshHost(ctx context.Context, now time.Time) error {
	if a.bootID == "" {
		bootID, err := a.cfg.BootID.BootID(ctx)
		if err != nil {
			return fmt.Errorf("reading the host's boot id: %w", err)
		}
		a.bootID = bootID
	}
	a.host.BootID = a.bootID
	if now.Before(a.nextHostCheck) && !a.hostChanged.Swap(false) {
		return nil
	}
	a.nextHostCheck = now.Add(jitter(a.cfg.Period))
	check, err := a.cfg.Detector.RebootRequired(ctx)
	if err != nil {
		// Keep the last answer: a flaky check must not start or cancel a cycle.
		a.warnOnce("RebootCheckFailed", "cannot tell whether the host needs a reboot: %v", err)
		return nil
	}
	if check.Required && !a.host.RebootRequired {
		a.normal("RebootRequired", "the host needs a reboot: %v %v", check.Reasons, check.Packages)
	}
	a.host.RebootRequired, a.host.Reasons = check.Required, append(check.Reasons, check.Packages...)
	return nil
}

// forgetHost makes the next observation ask the host again, after a cycle.
func (a *Agent) forgetHost() {
	a.nextHostCheck = time.Time{}
	a.host.RebootRequired = false
}

// jitter spreads checks over ±10% of the period, so that agents started together
// do not ask at the same moment.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return time.Minute
	}
	spread := int64(d) / 5
	if spread == 0 {
		return d
	}
	return d - time.Duration(spread/2) + time.Duration(rand.Int64N(spread))
}

// record updates the metrics that follow from a decision.
func (a *Agent) record(obs Observation, step Step) {
	m := a.cfg.Metrics
	m.RebootRequired.Set(boolGauge(obs.rebootNeeded()))
	m.LockHeld.Set(boolGauge(obs.Lock.Held))
	m.SetPhase(step.Phase)
	m.SetBlocked(step.Blocked)
	m.SetCycleStart(obs.Node.State.CycleStarted)
	m.SetNextWindow(obs.NextWindow)
	m.SetLastReboot(obs.Node.State.LastReboot)
	a.noteBlocked(obs, step)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
