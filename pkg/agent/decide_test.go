package agent

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/state"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// obs builds an observation of an idle, Ready node that needs a reboot and may
// start one; each case changes what it is about.
func obs(change func(*Observation)) Observation {
	o := Observation{
		Now:        t0,
		Node:       NodeView{Ready: true, ReportedBootID: "boot-a"},
		Host:       HostView{RebootRequired: true, Reasons: []string{"sentinel"}, BootID: "boot-a"},
		WindowOpen: true,
		Limits:     Limits{RebootTimeout: 5 * time.Minute, MaxRebootAttempts: 2},
	}
	if change != nil {
		change(&o)
	}
	return o
}

func rebooting(o *Observation) {
	o.Lock.Held = true
	o.Node.Tainted = true
	o.Node.State = state.Node{Phase: state.PhaseRebooting, BootIDBefore: "boot-a", CordonedByUs: true,
		CycleStarted: t0.Add(-time.Minute), RebootRequestedAt: t0.Add(-time.Minute), RebootAttempts: 1}
}

func TestDecide(t *testing.T) {
	cases := []struct {
		name    string
		obs     Observation
		action  Action
		phase   string
		blocked []string
	}{
		{"nothing needed", obs(func(o *Observation) { o.Host.RebootRequired = false }), ActNone, "Idle", nil},
		{"needed: take a slot", obs(nil), ActAcquire, "WaitingForLock", nil},
		{"forced without sentinel", obs(func(o *Observation) {
			o.Host.RebootRequired = false
			o.Node.State.Force = true
		}), ActAcquire, "WaitingForLock", nil},
		{"slot held: begin", obs(func(o *Observation) { o.Lock.Held = true }), ActBeginCycle, "Draining", nil},
		{"blocked by annotation", obs(func(o *Observation) { o.Node.State.BlockReason = "db migration" }), ActWait, "Idle", []string{"annotation"}},
		{"paused", obs(func(o *Observation) { o.Lock.PauseReason = "freeze" }), ActWait, "Idle", []string{"paused"}},
		{"outside window", obs(func(o *Observation) {
			o.WindowOpen = false
			o.NextWindow = t0.Add(time.Hour)
		}), ActWait, "Idle", []string{"window"}},
		{"backing off", obs(func(o *Observation) { o.Node.State.RetryAfter = t0.Add(time.Minute) }), ActWait, "Idle", []string{"backoff"}},
		{"backoff over", obs(func(o *Observation) { o.Node.State.RetryAfter = t0.Add(-time.Second) }), ActAcquire, "WaitingForLock", nil},
		{"every reason at once", obs(func(o *Observation) {
			o.Node.State.BlockReason, o.Lock.PauseReason, o.WindowOpen = "x", "y", false
			o.Node.State.RetryAfter = t0.Add(time.Minute)
		}), ActWait, "Idle", []string{"annotation", "paused", "window", "backoff"}},
		{"blocked while holding a slot: release", obs(func(o *Observation) {
			o.Lock.Held = true
			o.Node.State.BlockReason = "x"
		}), ActReleaseSlot, "Idle", nil},
		{"slot held, nothing needed: release", obs(func(o *Observation) {
			o.Lock.Held = true
			o.Host.RebootRequired = false
		}), ActReleaseSlot, "Idle", nil},
		{"idle but tainted: clean up", obs(func(o *Observation) { o.Node.Tainted = true }), ActCleanup, "Idle", nil},
		{"idle but our cordon left: clean up", obs(func(o *Observation) { o.Node.State.CordonedByUs = true }), ActCleanup, "Idle", nil},
		{"draining: drain", obs(func(o *Observation) {
			o.Lock.Held = true
			o.Node.State.Phase = state.PhaseDraining
		}), ActDrain, "Draining", nil},
		{"draining without the slot: abort", obs(func(o *Observation) { o.Node.State.Phase = state.PhaseDraining }), ActAbortCycle, "Draining", nil},
		{"draining, then blocked: abort", obs(func(o *Observation) {
			o.Lock.Held = true
			o.Node.State.Phase, o.Node.State.BlockReason = state.PhaseDraining, "stop"
		}), ActAbortCycle, "Draining", nil},
		{"draining, no longer needed: abort", obs(func(o *Observation) {
			o.Lock.Held = true
			o.Node.State.Phase, o.Host.RebootRequired = state.PhaseDraining, false
		}), ActAbortCycle, "Draining", nil},
		{"draining continues when paused or out of window", obs(func(o *Observation) {
			o.Lock.Held, o.Lock.PauseReason, o.WindowOpen = true, "freeze", false
			o.Node.State.Phase = state.PhaseDraining
		}), ActDrain, "Draining", nil},
		{"rebooting, not yet asked in this process", obs(rebooting), ActReboot, "Rebooting", nil},
		{"rebooting, asked: wait", obs(func(o *Observation) {
			rebooting(o)
			o.Host.RebootIssued = true
		}), ActWait, "Rebooting", nil},
		{"rebooting without the slot: abort, never reboot", obs(func(o *Observation) {
			rebooting(o)
			o.Lock.Held = false
		}), ActAbortCycle, "Rebooting", nil},
		{"rebooting, no request time: retry", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.RebootRequestedAt = time.Time{}
		}), ActRetryReboot, "Rebooting", nil},
		{"boot id unchanged after timeout: retry", obs(func(o *Observation) {
			rebooting(o)
			o.Host.RebootIssued = true
			o.Node.State.RebootRequestedAt = t0.Add(-6 * time.Minute)
		}), ActRetryReboot, "Rebooting", nil},
		{"boot id unchanged after the last attempt: fail", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.RebootRequestedAt = t0.Add(-6 * time.Minute)
			o.Node.State.RebootAttempts = 2
		}), ActFailReboot, "Failed", nil},
		{"rebooted, kubelet not reported yet", obs(func(o *Observation) {
			rebooting(o)
			o.Host.BootID = "boot-b"
		}), ActWaitReady, "WaitingReady", nil},
		{"rebooted, reported but NotReady", obs(func(o *Observation) {
			rebooting(o)
			o.Host.BootID, o.Node.ReportedBootID, o.Node.Ready = "boot-b", "boot-b", false
		}), ActWaitReady, "WaitingReady", nil},
		{"rebooted and Ready: finish", obs(func(o *Observation) {
			rebooting(o)
			o.Host.BootID, o.Node.ReportedBootID = "boot-b", "boot-b"
		}), ActFinish, "Idle", nil},
		{"rebooted without the slot still finishes", obs(func(o *Observation) {
			rebooting(o)
			o.Lock.Held = false
			o.Host.BootID, o.Node.ReportedBootID = "boot-b", "boot-b"
		}), ActFinish, "Idle", nil},
		{"failed: halt", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.Phase = state.PhaseFailed
		}), ActHalt, "Failed", nil},
		{"failed, but the host rebooted late: finish", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.Phase = state.PhaseFailed
			o.Host.BootID, o.Node.ReportedBootID = "boot-b", "boot-b"
		}), ActFinish, "Idle", nil},
		{"updates waiting for the lock start a cycle", obs(func(o *Observation) {
			o.Host.RebootRequired, o.Host.PatchReady = false, true
		}), ActAcquire, "WaitingForLock", nil},
		{"updates waiting under the lock keep the drain going", obs(func(o *Observation) {
			o.Lock.Held, o.Host.RebootRequired, o.Host.PatchReady = true, false, true
			o.Node.State.Phase = state.PhaseDraining
		}), ActDrain, "Draining", nil},
		{"failed with no recorded boot id: halt", obs(func(o *Observation) {
			o.Node.State.Phase = state.PhaseFailed
			o.Host.BootID = "boot-b"
		}), ActHalt, "Failed", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			step := Decide(c.obs)
			require.Equal(t, c.action, step.Action, "reason: %s", step.Reason)
			require.Equal(t, c.phase, step.Phase)
			require.Equal(t, c.blocked, step.Blocked)
			require.NotEmpty(t, step.Reason)
		})
	}
}

// TestDecideNeverRebootsWithoutTheLock checks the invariant over many states: no
// observation without a held slot leads to a reboot.
func TestDecideNeverRebootsWithoutTheLock(t *testing.T) {
	for _, phase := range []state.Phase{state.PhaseIdle, state.PhaseDraining, state.PhaseRebooting, state.PhaseFailed} {
		for _, issued := range []bool{false, true} {
			for _, age := range []time.Duration{0, time.Minute, time.Hour} {
				o := obs(func(o *Observation) {
					rebooting(o)
					o.Lock.Held = false
					o.Node.State.Phase = phase
					o.Host.RebootIssued = issued
					o.Node.State.RebootRequestedAt = t0.Add(-age)
				})
				step := Decide(o)
				require.NotContains(t, []Action{ActReboot, ActRetryReboot, ActDrain, ActBeginCycle}, step.Action,
					"phase %q issued %t age %s", phase, issued, age)
			}
		}
	}
}

func TestBlockedWaitsUntilTheEarliestEnd(t *testing.T) {
	step := Decide(obs(func(o *Observation) {
		o.WindowOpen, o.NextWindow = false, t0.Add(2*time.Hour)
		o.Node.State.RetryAfter = t0.Add(time.Hour)
	}))
	require.Equal(t, t0.Add(time.Hour), step.Until)
}

func TestPatchDue(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		name string
		obs  Observation
		due  bool
	}{
		{"never patched", obs(nil), true},
		{"patched an hour ago", obs(func(o *Observation) { o.Node.State.LastPatch = t0.Add(-time.Hour) }), false},
		{"patched a day ago", obs(func(o *Observation) { o.Node.State.LastPatch = t0.Add(-day) }), true},
		{"outside the window", obs(func(o *Observation) { o.WindowOpen = false }), false},
		{"blocked", obs(func(o *Observation) { o.Node.State.BlockReason = "x" }), false},
		{"paused", obs(func(o *Observation) { o.Lock.PauseReason = "x" }), false},
		{"in a cycle", obs(rebooting), false},
		{"holding a slot", obs(func(o *Observation) { o.Lock.Held = true }), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { require.Equal(t, c.due, patchDue(c.obs, day)) })
	}
}
