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
	// WindowOpen says whether a reboot may start now; NextWindow is when it next may.
	WindowOpen bool
	NextWindow time.Time
	Limits     Limits
}

// NodeView is the agent's own Node.
type NodeView struct {
	State state.Node
	// Tainted: the node carries nodepatch's taint.
	Tainted bool
	// Ready: the Node's Ready condition is True.
	Ready bool
	// ReportedBootID is status.nodeInfo.bootID: the kubelet sets it when it starts,
	// so it equals the host's boot id once the kubelet has reported from this boot.
	ReportedBootID string
}

// LockView is the lock as the Lease cache sees it.
type LockView struct {
	Held        bool
	PauseReason string
	Holders     string
}

// HostView is what the host says.
type HostView struct {
	RebootRequired bool
	Reasons        []string
	BootID         string
	// RebootIssued: this agent process already asked the host to reboot for the
	// current attempt. After a restart it is false, and the reboot is asked again.
	RebootIssued bool
	// PatchReady: updates are downloaded and wait to be applied under the lock
	// (--patch-under-lock); that needs a cycle as much as a reboot does.
	PatchReady bool
}

// Limits are the operator's timing settings that the decision needs.
type Limits struct {
	RebootTimeout     time.Duration
	MaxRebootAttempts int
}

// Action is what the agent does next.
type Action int

// The actions, in roughly the order a cycle takes them.
const (
	ActNone        Action = iota // nothing to do until something changes
	ActWait                      // a reboot is needed but may not start (or go on) yet
	ActCleanup                   // an idle node still carries nodepatch's taint or cordon
	ActAcquire                   // take a lock slot
	ActReleaseSlot               // give back a slot that no cycle uses
	ActBeginCycle                // record the cycle, taint and cordon
	ActDrain                     // drain, then record the boot id and reboot
	ActAbortCycle                // undo taint and cordon, release the slot
	ActReboot                    // ask the host to reboot (again) for the current attempt
	ActRetryReboot               // the reboot timed out: start another attempt
	ActFailReboot                // the last attempt timed out: halt, keep slot and cordon
	ActHalt                      // Failed: wait for an operator
	ActWaitReady                 // rebooted: wait for the kubelet's report and Ready
	ActFinish                    // back and Ready: untaint, uncordon, release
)

var actionNames = [...]string{"None", "Wait", "Cleanup", "Acquire", "ReleaseSlot", "BeginCycle", "Drain",
	"AbortCycle", "Reboot", "RetryReboot", "FailReboot", "Halt", "WaitReady", "Finish"}

func (a Action) String() string { return actionNames[a] }

// Step is the decision: an action, the phase the node is in for metrics, why, and
// for waits the reasons that block and when to look again.
type Step struct {
	Action  Action
	Phase   string
	Reason  string
	Blocked []string
	Until   time.Time
}

// Decide is the agent's whole protocol: a pure function from what it observes to
// what it does next.
func Decide(o Observation) Step {
	switch o.Node.State.Phase {
	case state.PhaseDraining:
		return decideDraining(o)
	case state.PhaseRebooting:
		return decideRebooting(o)
	case state.PhaseFailed:
		return decideFailed(o)
	default:
		return decideIdle(o)
	}
}

func decideIdle(o Observation) Step {
	if o.Node.Tainted || o.Node.State.CordonedByUs {
		return Step{Action: ActCleanup, Phase: "Idle", Reason: "an idle node still carries nodepatch's taint or cordon"}
	}
	needed := o.cycleNeeded()
	if !needed {
		if o.Lock.Held {
			return Step{Action: ActReleaseSlot, Phase: "Idle", Reason: "holding a slot but no reboot is needed"}
		}
		return Step{Action: ActNone, Phase: "Idle", Reason: "no reboot needed"}
	}
	if blocked, reason, until := o.blocked(); len(blocked) > 0 {
		if o.Lock.Held {
			return Step{Action: ActReleaseSlot, Phase: "Idle", Reason: "holding a slot while blocked: " + reason}
		}
		return Step{Action: ActWait, Phase: "Idle", Reason: reason, Blocked: blocked, Until: until}
	}
	if !o.Lock.Held {
		return Step{Action: ActAcquire, Phase: "WaitingForLock", Reason: "reboot needed: " + o.reasons()}
	}
	return Step{Action: ActBeginCycle, Phase: "Draining", Reason: "lock held, reboot needed: " + o.reasons()}
}

func decideDraining(o Observation) Step {
	switch {
	case !o.Lock.Held:
		return Step{Action: ActAbortCycle, Phase: "Draining", Reason: "the lock slot was lost before the reboot"}
	case o.Node.State.BlockReason != "":
		return Step{Action: ActAbortCycle, Phase: "Draining", Reason: "blocked during the drain: " + o.Node.State.BlockReason}
	case !o.cycleNeeded():
		return Step{Action: ActAbortCycle, Phase: "Draining", Reason: "a reboot is no longer needed"}
	}
	return Step{Action: ActDrain, Phase: "Draining", Reason: "draining before the reboot"}
}

func decideRebooting(o Observation) Step {
	st := o.Node.State
	if o.rebooted() {
		return decideBack(o)
	}
	if !o.Lock.Held {
		return Step{Action: ActAbortCycle, Phase: "Rebooting", Reason: "the lock slot was lost before the host rebooted"}
	}
	if st.RebootRequestedAt.IsZero() {
		return Step{Action: ActRetryReboot, Phase: "Rebooting", Reason: "no record of when the reboot was asked for"}
	}
	deadline := st.RebootRequestedAt.Add(o.Limits.RebootTimeout)
	if o.Now.Before(deadline) {
		if !o.Host.RebootIssued {
			return Step{Action: ActReboot, Phase: "Rebooting", Reason: "asking the host to reboot"}
		}
		return Step{Action: ActWait, Phase: "Rebooting", Reason: "waiting for the host to reboot", Until: deadline}
	}
	if st.RebootAttempts < o.Limits.MaxRebootAttempts {
		return Step{Action: ActRetryReboot, Phase: "Rebooting",
			Reason: fmt.Sprintf("boot id unchanged %s after reboot attempt %d", o.Limits.RebootTimeout, st.RebootAttempts)}
	}
	return Step{Action: ActFailReboot, Phase: "Failed",
		Reason: fmt.Sprintf("boot id unchanged after %d reboot attempts", st.RebootAttempts)}
}

// decideFailed halts, unless the host did reboot after all (a slow boot, or an
// operator's manual reboot): then the cycle finishes as usual.
func decideFailed(o Observation) Step {
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
	return Step{Action: ActFinish, Phase: "Idle", Reason: "rebooted and Ready"}
}

func (o Observation) rebooted() bool {
	return o.Host.BootID != "" && o.Host.BootID != o.Node.State.BootIDBefore
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
	if r := o.Node.State.BlockReason; r != "" {
		add("annotation", fmt.Sprintf("blocked by annotation %s=%q", state.AnnotationBlockReboot, r), time.Time{})
	}
	if r := o.Lock.PauseReason; r != "" {
		add("paused", fmt.Sprintf("rollout paused: %q", r), time.Time{})
	}
	if !o.WindowOpen {
		add("window", "outside the maintenance window until "+o.NextWindow.Format(time.RFC3339), o.NextWindow)
	}
	if o.Now.Before(o.Node.State.RetryAfter) {
		add("backoff", "backing off after a failed drain until "+o.Node.State.RetryAfter.Format(time.RFC3339), o.Node.State.RetryAfter)
	}
	return reasons, text, until
}
