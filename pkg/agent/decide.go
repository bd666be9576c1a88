package agent

import (
	"fmt"
	"time"

	"github.com/nodepatch/nodepatch/pkg/state"
)

// Observation is everything the agent knows when it decides: the Node (from the
// informer), the lock (from the Lease informer), the host and the clock. Decide
// reads nothing else, so the whole protocol is testable as a table.
type Observation struct {
	Now  time.Time
	Node NodeView
	Lock LockView
	Host HostView
	// WindowOpen says whether the maintenance window is open now; NextWindow is
	// when a cycle next may start. WindowTooShort: open, but a cycle of
	// ExpectedCycle started now would not end before it closes (WindowCloses).
	WindowOpen     bool
	NextWindow     time.Time
	WindowTooShort bool
	WindowCloses   time.Time
	ExpectedCycle  time.Duration
	Patch          PatchView
	Limits         Limits
	// Admission: a rollout controller admits nodes; the agent reports its need
	// and takes a slot only once admitted.
	Admission bool
	// Blocks are the holds found outside the node (a firing alert, a query,
	// pods on the node, kured's lock). They are looked up only while a cycle
	// may start, and afresh right before it does.
	Blocks []Block
	// Health is the node's health after its reboot, looked up only while it
	// is Verifying.
	Health HealthView
}

// Block is one hold from outside the node: its reason (a label of
// nodepatch_reboot_blocked) and a sentence that names what holds.
type Block struct {
	Reason string
	Detail string
}

// HealthView is the health gate's answer: every check passes, or the sentence
// naming what does not.
type HealthView struct {
	Healthy bool
	Detail  string
}

// NodeView is the agent's own Node.
type NodeView struct {
	State state.Node
	// Tainted: the node carries nodepatch's taint.
	Tainted bool
	// Ready: the Node's Ready condition is True.
	Ready bool
	// Quarantined: the node carries state.LabelQuarantined.
	Quarantined bool
	// ReportedBootID is status.nodeInfo.bootID: the kubelet sets it when it starts,
	// so it equals the host's boot id once the kubelet has reported from this boot.
	ReportedBootID string
}

// LockView is the lock as the Lease cache sees it.
type LockView struct {
	Held bool
	// PastLimit: the held slot lies past the limit in force (taken under a
	// larger one): finish a cycle in it, never begin one.
	PastLimit   bool
	PauseReason string
	Holders     string
}

// HostView is what the host says.
type HostView struct {
	RebootRequired bool
	Reasons        []string
	BootID         string
	// Busy names a package transaction or nodepatch host command still running on
	// the host ("" when none, or when nobody asked: it is read only while a reboot
	// is about to be requested). BusySince is when this process first saw it busy.
	Busy      string
	BusySince time.Time
	// RebootRefused is the host's refusal of this attempt's reboot request, as
	// this process saw it ("" when none).
	RebootRefused string
	// PatchReady: updates are downloaded and wait to be applied under the lock
	// (--patch-under-lock); that needs a cycle as much as a reboot does.
	PatchReady bool
	// PatchApplied: this cycle applied the updates under the lock, and
	// RebootRequired is the host's answer after that.
	PatchApplied bool
}

// PatchView says whether patching is on and when this process last ran a round.
type PatchView struct {
	Enabled  bool
	Interval time.Duration
	// LastRound is this process's last round, kept even when recording it on the
	// Node failed, so that a lost write never makes two rounds in one interval.
	LastRound time.Time
}

// Limits are the operator's timing settings that the decision needs.
type Limits struct {
	RebootTimeout     time.Duration
	MaxRebootAttempts int
	// MinRebootInterval: after a verified reboot that left the host still asking
	// for one, the next reboot waits this long (unless forced).
	MinRebootInterval time.Duration
	// MaxRepeatedReboots: that many reboots in a row that each left the need in
	// place halt the node until an operator looks.
	MaxRepeatedReboots int
	// BusyTimeout bounds the wait for a package transaction before a reboot.
	BusyTimeout time.Duration
	// HealthGate: after the reboot the node keeps its slot, in service, until
	// it is healthy and Soak has passed since it came back; past HealthTimeout
	// the cycle fails.
	HealthGate    bool
	Soak          time.Duration
	HealthTimeout time.Duration
	// DrainDelay waits after the cordon before the drain; RebootDelay after
	// the drain before the reboot (kured's --drain-delay, --reboot-delay).
	DrainDelay  time.Duration
	RebootDelay time.Duration
	// Gates are the approvals each cycle waits for.
	Gates []Gate
}

// Action is what the agent does next.
type Action int

// The actions, in roughly the order a cycle takes them.
const (
	ActNone            Action = iota // nothing to do until something changes
	ActWait                          // a reboot is needed but may not start (or go on) yet
	ActCleanup                       // an idle node still carries nodepatch's taint or cordon
	ActResetLoop                     // the need went away: forget the repeated reboots
	ActReportNeed                    // tell the rollout controller the node needs a cycle and may start one
	ActWithdrawNeed                  // the need went away, or the node is held: withdraw it and any admission
	ActPatch                         // look for updates and download (and, not under the lock, apply) them
	ActAcquire                       // take a lock slot
	ActReleaseSlot                   // give back a slot that no cycle uses
	ActBeginCycle                    // confirm the slot with the API server; record the cycle, taint and cordon
	ActDrain                         // evict the node's pods, then record that it is drained
	ActApplyPatch                    // drained: apply the downloaded updates, ask the host again
	ActEndPatchedCycle               // patched under the lock and no reboot needed: end the cycle
	ActAbortCycle                    // undo taint and cordon, release the slot
	ActReboot                        // record a reboot attempt, confirm the slot, ask the host to reboot
	ActFailReboot                    // halt, keep slot and cordon
	ActHalt                          // Failed: wait for an operator
	ActWaitReady                     // rebooted: wait for the kubelet's report and Ready
	ActFinish                        // back and Ready: untaint, uncordon, release
	ActBackInService                 // back and Ready: untaint, uncordon, keep the slot for the health gate
	ActFailHealth                    // not healthy in time after the reboot: halt, keep the slot
	ActGateExpired                   // an approval did not come in time: undo the cycle, retry later
	ActFailGate                      // an approval did not come in time: halt, keep the slot
)

var actionNames = [...]string{"None", "Wait", "Cleanup", "ResetLoop", "ReportNeed", "WithdrawNeed", "Patch", "Acquire", "ReleaseSlot", "BeginCycle", "Drain",
	"ApplyPatch", "EndPatchedCycle", "AbortCycle", "Reboot", "FailReboot", "Halt", "WaitReady", "Finish",
	"BackInService", "FailHealth", "GateExpired", "FailGate"}

func (a Action) String() string { return actionNames[a] }

// Step is the decision: an action, the phase the node is in for metrics, why, and
// for waits the reasons that block and when to look again.
type Step struct {
	Action  Action
	Phase   string
	Reason  string
	Blocked []string
	Until   time.Time
	// Gate names the approval gate the step waits at (or that expired).
	Gate string
}

// Block reasons, as in nodepatch_reboot_blocked{reason}.
const (
	BlockAnnotation     = "annotation"
	BlockPaused         = "paused"
	BlockWindow         = "window"
	BlockBackoff        = "backoff"
	BlockRecentReboot   = "recent-reboot"
	BlockRebootLoop     = "reboot-loop"
	BlockBootIDMismatch = "boot-id-mismatch"
	BlockHostBusy       = "host-busy"
	// Holds from outside the node (Observation.Blocks).
	BlockAlert                 = "prometheus-alert"
	BlockQuery                 = "prometheus-query"
	BlockPrometheusUnreachable = "prometheus-unreachable"
	BlockPods                  = "pods"
	BlockKuredLock             = "kured-lock"
	// BlockQuarantined: a drain that timed out put the node aside.
	BlockQuarantined = "quarantined"
	// BlockGate: the cycle waits for an approval (--gate).
	BlockGate = "gate"
)

// healthRecheck is how often a Verifying node looks at its health again.
const healthRecheck = 5 * time.Second

// blockRecheck is how soon a cycle held from outside the node looks again.
const blockRecheck = 30 * time.Second

// busyRecheck is how soon a reboot held by a busy host looks again.
const busyRecheck = 5 * time.Second

// Decide is the agent's whole protocol: a pure function from what it observes to
// what it does next.
func Decide(o Observation) Step {
	if step, mismatch := o.bootIDMismatch(); mismatch {
		return step
	}
	switch o.Node.State.Phase {
	case state.PhaseDraining:
		return decideDraining(o)
	case state.PhaseRebooting:
		return decideRebooting(o)
	case state.PhaseVerifying:
		return decideVerifying(o)
	case state.PhaseFailed:
		return decideFailed(o)
	default:
		return decideIdle(o)
	}
}

// bootIDMismatch refuses to act while the host's boot id is not the one the
// kubelet reports (and the difference is not a kubelet still to report after
// this cycle's reboot): the agent then reads some other kernel's id (a VM
// sandbox, a shared kernel), and every decision about "rebooted" would be wrong.
func (o Observation) bootIDMismatch() (Step, bool) {
	reported, hostID := o.Node.ReportedBootID, o.Host.BootID
	if reported == "" || hostID == "" || reported == hostID {
		return Step{}, false
	}
	if st := o.Node.State; st.Phase != state.PhaseIdle && st.BootIDBefore != "" && reported == st.BootIDBefore {
		return Step{}, false // the host rebooted; the kubelet has not reported from the new boot yet
	}
	return Step{Action: ActWait, Phase: o.phaseName(), Blocked: []string{BlockBootIDMismatch},
		Reason: fmt.Sprintf("the host's boot id %s is not the kubelet's %s; not acting on a boot id the kubelet does not confirm", hostID, reported)}, true
}

func (o Observation) phaseName() string {
	if p := o.Node.State.Phase; p != state.PhaseIdle {
		return string(p)
	}
	return "Idle"
}

func decideIdle(o Observation) Step {
	if o.Node.Tainted || o.Node.State.CordonedByUs {
		return Step{Action: ActCleanup, Phase: "Idle", Reason: "an idle node still carries nodepatch's taint or cordon"}
	}
	if !o.cycleNeeded() && o.Node.State.RepeatedReboots > 0 {
		return Step{Action: ActResetLoop, Phase: "Idle", Reason: "the host no longer asks for a reboot; forgetting the repeated reboots"}
	}
	if o.patchDue() {
		return Step{Action: ActPatch, Phase: "Idle", Reason: "a patch round is due"}
	}
	st := o.Node.State
	reported := !st.NeedSince.IsZero() || !st.Admitted.IsZero()
	if !o.cycleNeeded() {
		switch {
		case o.Lock.Held:
			return Step{Action: ActReleaseSlot, Phase: "Idle", Reason: "holding a slot but no reboot is needed"}
		case reported:
			return Step{Action: ActWithdrawNeed, Phase: "Idle", Reason: "no reboot needed any more"}
		}
		return Step{Action: ActNone, Phase: "Idle", Reason: "no reboot needed"}
	}
	if blocked, reason, until := o.blocked(); len(blocked) > 0 {
		switch {
		case o.Lock.Held:
			return Step{Action: ActReleaseSlot, Phase: "Idle", Reason: "holding a slot while blocked: " + reason}
		case reported:
			return Step{Action: ActWithdrawNeed, Phase: "Idle", Reason: "held back: " + reason}
		}
		return Step{Action: ActWait, Phase: "Idle", Reason: reason, Blocked: blocked, Until: until}
	}
	if !o.Lock.Held && o.Admission {
		switch {
		case st.NeedSince.IsZero():
			return Step{Action: ActReportNeed, Phase: "WaitingForLock", Reason: "reboot needed: " + o.reasons()}
		case st.Admitted.IsZero():
			return Step{Action: ActWait, Phase: "WaitingForLock",
				Reason: "reboot needed; waiting for the rollout controller to admit the node (need reported " + st.NeedSince.Format(time.RFC3339) + ")"}
		}
	}
	if !o.Lock.Held {
		return Step{Action: ActAcquire, Phase: "WaitingForLock", Reason: "reboot needed: " + o.reasons()}
	}
	if o.Lock.PastLimit {
		return Step{Action: ActReleaseSlot, Phase: "WaitingForLock", Reason: "holding a slot past the limit in force (the limit shrank): giving it back before any cycle begins in it"}
	}
	return Step{Action: ActBeginCycle, Phase: "Draining", Reason: "lock held, reboot needed: " + o.reasons()}
}

// patchDue: patching is on, nothing is waiting to be applied, the node is idle
// and free to act (in the window, not blocked or paused), and the interval since
// the last round (on the Node, or in this process) has passed.
func (o Observation) patchDue() bool {
	st := o.Node.State
	if !o.Patch.Enabled || o.Host.PatchReady || o.Lock.Held || !o.WindowOpen || st.BlockReason != "" || o.Lock.PauseReason != "" {
		return false
	}
	for _, last := range []time.Time{st.LastPatch, o.Patch.LastRound} {
		if !last.IsZero() && o.Now.Before(last.Add(o.Patch.Interval)) {
			return false
		}
	}
	return true
}

// decideDraining drains, then takes the step from drained to rebooting as a
// decision of its own on a fresh observation: a block, the loss of the slot or
// an operator's reset during the drain is seen before anything reboots.
func decideDraining(o Observation) Step {
	st := o.Node.State
	switch {
	case !o.Lock.Held:
		return Step{Action: ActAbortCycle, Phase: "Draining", Reason: "the lock slot was lost before the reboot"}
	case st.BlockReason != "":
		return Step{Action: ActAbortCycle, Phase: "Draining", Reason: "blocked during the drain: " + st.BlockReason}
	case !st.Drained:
		if !o.cycleNeeded() {
			return Step{Action: ActAbortCycle, Phase: "Draining", Reason: "a reboot is no longer needed"}
		}
		if step, waiting := o.decideGate(BeforeDrain, st.CycleStarted, "Draining"); waiting {
			return step
		}
		if start := st.CycleStarted.Add(o.Limits.DrainDelay); o.Now.Before(start) {
			return Step{Action: ActWait, Phase: "Draining", Reason: "cordoned; draining at " + start.Format(time.RFC3339) + " (--drain-delay)", Until: start}
		}
		return Step{Action: ActDrain, Phase: "Draining", Reason: "draining before the reboot"}
	case o.Host.PatchReady:
		return Step{Action: ActApplyPatch, Phase: "Draining", Reason: "drained; applying the downloaded updates"}
	case !o.rebootNeeded() && o.Host.PatchApplied:
		return Step{Action: ActEndPatchedCycle, Phase: "Draining", Reason: "updates applied under the lock; the host needs no reboot"}
	case !o.rebootNeeded():
		return Step{Action: ActAbortCycle, Phase: "Draining", Reason: "a reboot is no longer needed"}
	}
	if at := st.DrainedAt.Add(o.Limits.RebootDelay); !st.DrainedAt.IsZero() && o.Now.Before(at) {
		return Step{Action: ActWait, Phase: "Draining", Reason: "drained; rebooting at " + at.Format(time.RFC3339) + " (--reboot-delay)", Until: at}
	}
	if step, waiting := o.decideGate(BeforeReboot, firstSet(st.DrainedAt, st.CycleStarted), "Draining"); waiting {
		return step
	}
	if step, busy := o.hostBusy("Draining"); busy {
		return step
	}
	return Step{Action: ActReboot, Phase: "Rebooting", Reason: "drained; rebooting"}
}

func decideRebooting(o Observation) Step {
	st := o.Node.State
	if st.BootIDBefore == "" {
		// Without the boot id it left, the agent cannot tell a finished reboot
		// from one that never happened: halt rather than guess.
		return Step{Action: ActFailReboot, Phase: "Failed",
			Reason: "phase Rebooting without " + state.AnnotationBootIDBefore + ": cannot tell whether the host rebooted"}
	}
	if o.rebooted() {
		return decideBack(o)
	}
	refused := o.Host.RebootRefused
	if deadline := st.RebootRequestedAt.Add(o.Limits.RebootTimeout); !st.RebootRequestedAt.IsZero() && o.Now.Before(deadline) {
		// Asked already, by this process or one before it: the host may be going
		// down, even when the request came back with an error. Nothing undoes the
		// cycle before the timeout (a block, a lost slot), and nothing asks again,
		// but a refused request may be asked once more while the slot is held.
		if refused == "" || st.RebootAttempts >= o.Limits.MaxRebootAttempts || st.BlockReason != "" || !o.Lock.Held {
			return Step{Action: ActWait, Phase: "Rebooting", Reason: "waiting for the host to reboot", Until: deadline}
		}
	}
	if !o.Lock.Held {
		return Step{Action: ActAbortCycle, Phase: "Rebooting", Reason: "the lock slot was lost before the host rebooted"}
	}
	why := "asking the host to reboot"
	switch {
	case refused != "":
		why = "the host refused the reboot request (" + refused + ")"
	case st.RebootAttempts > 0:
		why = fmt.Sprintf("boot id unchanged %s after reboot attempt %d", o.Limits.RebootTimeout, st.RebootAttempts)
	}
	if st.RebootAttempts >= o.Limits.MaxRebootAttempts {
		failed := fmt.Sprintf("boot id unchanged after %d reboot attempts, %s each", st.RebootAttempts, o.Limits.RebootTimeout)
		if refused != "" {
			failed = fmt.Sprintf("%s; gave up after %d attempts", why, st.RebootAttempts)
		}
		return Step{Action: ActFailReboot, Phase: "Failed", Reason: failed}
	}
	if st.BlockReason != "" {
		return Step{Action: ActAbortCycle, Phase: "Rebooting", Reason: "blocked before the reboot: " + st.BlockReason}
	}
	if step, busy := o.hostBusy("Rebooting"); busy {
		return step
	}
	if st.RebootAttempts > 0 {
		why += "; trying again"
	}
	return Step{Action: ActReboot, Phase: "Rebooting", Reason: why}
}

// hostBusy holds a reboot while a package transaction runs on the host, for at
// most BusyTimeout; past it the node halts: a reboot mid-transaction can leave
// the host unbootable, a halted node only waits for an operator.
func (o Observation) hostBusy(phase string) (Step, bool) {
	if o.Host.Busy == "" {
		return Step{}, false
	}
	if o.Limits.BusyTimeout > 0 && !o.Host.BusySince.IsZero() && !o.Now.Before(o.Host.BusySince.Add(o.Limits.BusyTimeout)) {
		return Step{Action: ActFailReboot, Phase: "Failed",
			Reason: fmt.Sprintf("the host stayed busy for %s (%s); not rebooting in the middle of it", o.Limits.BusyTimeout, o.Host.Busy)}, true
	}
	return Step{Action: ActWait, Phase: phase, Blocked: []string{BlockHostBusy}, Until: o.Now.Add(busyRecheck),
		Reason: "waiting before the reboot: " + o.Host.Busy}, true
}

// decideFailed halts, unless the host did reboot after all (a slow boot, or an
// operator's manual reboot): then the cycle finishes as usual.
func decideFailed(o Observation) Step {
	if st := o.Node.State; !st.BackAt.IsZero() {
		return Step{Action: ActHalt, Phase: "Failed",
			Reason: "the node did not turn healthy after its reboot; it keeps its slot until an operator removes the " + state.AnnotationPhase + " annotation"}
	}
	if o.Node.State.BootIDBefore != "" && o.rebooted() {
		return decideBack(o)
	}
	return Step{Action: ActHalt, Phase: "Failed",
		Reason: "reboot failed; the node keeps its slot and cordon until an operator removes the " + state.AnnotationPhase + " annotation"}
}

// decideBack waits until the kubelet has reported from the new boot and the node is
// Ready. The kubelet's boot id check matters: a Ready condition from before the
// reboot can linger until the node controller notices the kubelet went away.
func decideBack(o Observation) Step {
	if o.Node.ReportedBootID != o.Host.BootID || !o.Node.Ready {
		return Step{Action: ActWaitReady, Phase: "WaitingReady", Reason: "rebooted; waiting for the kubelet to report Ready from the new boot"}
	}
	if o.Limits.HealthGate || o.gateAt(AfterReboot) {
		return Step{Action: ActBackInService, Phase: "Verifying", Reason: "rebooted and Ready; back in service, holding the slot until healthy"}
	}
	return Step{Action: ActFinish, Phase: "Idle", Reason: "rebooted and Ready"}
}

// decideVerifying holds the slot of a node back in service until it is healthy
// at the end of its soak, so that the next node waits for proof that this one
// works. A node not healthy by HealthTimeout fails and keeps the slot: the
// rollout stops rather than take a second node down the same way.
func decideVerifying(o Observation) Step {
	back := o.Node.State.BackAt
	soaked := back.Add(o.Limits.Soak)
	switch {
	case !o.Lock.Held:
		return Step{Action: ActFinish, Phase: "Idle", Reason: "the lock slot was lost while verifying; the node is already back in service"}
	}
	if step, waiting := o.decideGate(AfterReboot, back, "Verifying"); waiting {
		return step
	}
	switch {
	case o.Health.Healthy && !o.Now.Before(soaked):
		return Step{Action: ActFinish, Phase: "Idle", Reason: "healthy after the reboot" + soakNote(o.Limits.Soak)}
	case o.Limits.HealthTimeout > 0 && !o.Now.Before(back.Add(o.Limits.HealthTimeout)):
		return Step{Action: ActFailHealth, Phase: "Failed",
			Reason: fmt.Sprintf("not healthy %s after the reboot: %s", o.Limits.HealthTimeout, o.Health.Detail)}
	case o.Health.Healthy:
		return Step{Action: ActWait, Phase: "Verifying", Reason: "healthy; soaking until " + soaked.Format(time.RFC3339), Until: soaked}
	}
	until := o.Now.Add(healthRecheck)
	if o.Limits.HealthTimeout > 0 {
		until = earliest(until, back.Add(o.Limits.HealthTimeout))
	}
	return Step{Action: ActWait, Phase: "Verifying", Reason: "waiting for the node to turn healthy: " + o.Health.Detail, Until: until}
}

func (o Observation) gateAt(point GatePoint) bool {
	for _, g := range o.Limits.Gates {
		if g.Point == point {
			return true
		}
	}
	return false
}

func firstSet(times ...time.Time) time.Time {
	for _, t := range times {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func timeOrNever(t time.Time) string {
	if t.IsZero() {
		return "never (within 400 days)"
	}
	return t.Format(time.RFC3339)
}

func soakNote(soak time.Duration) string {
	if soak <= 0 {
		return ""
	}
	return " and a soak of " + soak.String()
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func (o Observation) rebooted() bool {
	return o.Host.BootID != "" && o.Node.State.BootIDBefore != "" && o.Host.BootID != o.Node.State.BootIDBefore
}

func (o Observation) rebootNeeded() bool { return o.Host.RebootRequired || o.Node.State.Force }

// cycleNeeded: a reboot, or updates to apply under the lock.
func (o Observation) cycleNeeded() bool { return o.rebootNeeded() || o.Host.PatchReady }

func (o Observation) reasons() string {
	reasons := append([]string(nil), o.Host.Reasons...)
	if o.Host.PatchReady {
		reasons = append(reasons, "package updates to apply under the lock")
	}
	if o.Node.State.Force {
		reasons = append(reasons, state.AnnotationForceReboot)
	}
	return fmt.Sprint(reasons)
}

// blocked lists what keeps a needed reboot from starting, a sentence saying so,
// and when the earliest time-bound reason ends.
func (o Observation) blocked() ([]string, string, time.Time) {
	var reasons []string
	var text string
	var until time.Time
	add := func(reason, why string, end time.Time) {
		reasons = append(reasons, reason)
		if text != "" {
			text += "; "
		}
		text += why
		if !end.IsZero() && (until.IsZero() || end.Before(until)) {
			until = end
		}
	}
	st := o.Node.State
	if r := st.BlockReason; r != "" {
		add(BlockAnnotation, fmt.Sprintf("blocked by annotation %s=%q", state.AnnotationBlockReboot, r), time.Time{})
	}
	if o.Node.Quarantined {
		add(BlockQuarantined, fmt.Sprintf("quarantined after a drain that did not finish: remove label %s to let it go", state.LabelQuarantined), time.Time{})
	}
	if r := o.Lock.PauseReason; r != "" {
		add(BlockPaused, fmt.Sprintf("rollout paused: %q", r), time.Time{})
	}
	switch {
	case !o.WindowOpen:
		add(BlockWindow, "outside the maintenance window until "+timeOrNever(o.NextWindow), o.NextWindow)
	case o.WindowTooShort:
		add(BlockWindow, fmt.Sprintf("a cycle of about %s would not end before the window closes at %s; next start at %s",
			o.ExpectedCycle, timeOrNever(o.WindowCloses), timeOrNever(o.NextWindow)), o.NextWindow)
	}
	if o.Now.Before(st.RetryAfter) {
		add(BlockBackoff, "backing off after a failed drain or an approval that did not come, until "+st.RetryAfter.Format(time.RFC3339), st.RetryAfter)
	}
	if o.Host.RebootRequired && !st.Force && st.RepeatedReboots > 0 {
		o.addLoopHold(add)
	}
	for _, b := range o.Blocks {
		add(b.Reason, b.Detail, o.Now.Add(blockRecheck))
	}
	return reasons, text, until
}

// addLoopHold holds a node whose last verified reboot left the host still asking
// for one: the signal survives reboots (a bootloader that boots the old kernel, a
// sentinel on persistent storage, a command that always says yes). At most one
// reboot per MinRebootInterval, and after MaxRepeatedReboots in a row none until
// an operator looks. A forced reboot is the operator looking.
func (o Observation) addLoopHold(add func(reason, why string, end time.Time)) {
	st := o.Node.State
	if o.Limits.MaxRepeatedReboots > 0 && st.RepeatedReboots >= o.Limits.MaxRepeatedReboots {
		add(BlockRebootLoop, fmt.Sprintf("reboot loop: the host still asked for a reboot after each of the last %d reboots; "+
			"halted until the need goes, the node is forced (%s=true) or %s is removed",
			st.RepeatedReboots, state.AnnotationForceReboot, state.AnnotationRepeatedReboots), time.Time{})
		return
	}
	next := st.LastReboot.Add(o.Limits.MinRebootInterval)
	if o.Now.Before(next) {
		add(BlockRecentReboot, fmt.Sprintf("the host still asks for a reboot after the reboot at %s; at most one reboot per %s, next at %s",
			st.LastReboot.Format(time.RFC3339), o.Limits.MinRebootInterval, next.Format(time.RFC3339)), next)
	}
}

// DrainTimeoutAction is what a drain that ran out of time leads to.
type DrainTimeoutAction string

// The choices of --drain-timeout-action.
const (
	// DrainRetry undoes the cycle and tries again after a back-off.
	DrainRetry DrainTimeoutAction = "retry"
	// DrainQuarantine undoes the cycle and puts the node aside until an
	// operator looks.
	DrainQuarantine DrainTimeoutAction = "quarantine"
	// DrainForce deletes the pods left, past their budgets, with a grace period.
	DrainForce DrainTimeoutAction = "force"
	// DrainReboot reboots anyway (--reboot-after-drain-timeout).
	DrainReboot DrainTimeoutAction = "reboot"
)

// AfterDrainTimeout decides what a timed-out drain leads to: the operator's
// choice, where reboot-after-timeout wins (it was the only choice before), and
// a forced drain that timed out too falls back to retrying.
func AfterDrainTimeout(choice DrainTimeoutAction, rebootAnyway, forcedAlready bool) DrainTimeoutAction {
	switch {
	case rebootAnyway:
		return DrainReboot
	case choice == DrainForce && forcedAlready:
		return DrainRetry
	case choice == DrainQuarantine || choice == DrainForce:
		return choice
	}
	return DrainRetry
}
