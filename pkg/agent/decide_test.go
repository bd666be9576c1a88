package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/metrics"
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
		Limits: Limits{RebootTimeout: 5 * time.Minute, MaxRebootAttempts: 2, MinRebootInterval: time.Hour,
			MaxRepeatedReboots: 3, BusyTimeout: 30 * time.Minute},
	}
	if change != nil {
		change(&o)
	}
	return o
}

func drained(o *Observation) {
	o.Lock.Held = true
	o.Node.Tainted = true
	o.Node.State = state.Node{Phase: state.PhaseDraining, Drained: true, CordonedByUs: true, CycleStarted: t0.Add(-time.Minute)}
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
		{"drained: reboot", obs(drained), ActReboot, "Rebooting", nil},
		{"drained, then blocked: abort before the reboot", obs(func(o *Observation) {
			drained(o)
			o.Node.State.BlockReason = "stop"
		}), ActAbortCycle, "Draining", nil},
		{"drained, slot lost: abort", obs(func(o *Observation) {
			drained(o)
			o.Lock.Held = false
		}), ActAbortCycle, "Draining", nil},
		{"drained, host busy: wait", obs(func(o *Observation) {
			drained(o)
			o.Host.Busy, o.Host.BusySince = "package database locked", t0.Add(-time.Minute)
		}), ActWait, "Draining", []string{BlockHostBusy}},
		{"drained, host busy too long: fail, never reboot mid-transaction", obs(func(o *Observation) {
			drained(o)
			o.Host.Busy, o.Host.BusySince = "package database locked", t0.Add(-time.Hour)
		}), ActFailReboot, "Failed", nil},
		{"drained with updates waiting: apply them", obs(func(o *Observation) {
			drained(o)
			o.Host.PatchReady = true
		}), ActApplyPatch, "Draining", nil},
		{"patched under the lock, no reboot needed: end", obs(func(o *Observation) {
			drained(o)
			o.Host.PatchApplied, o.Host.RebootRequired = true, false
		}), ActEndPatchedCycle, "Draining", nil},
		{"patched under the lock, reboot needed: reboot", obs(func(o *Observation) {
			drained(o)
			o.Host.PatchApplied = true
		}), ActReboot, "Rebooting", nil},
		{"rebooting, asked within the timeout: wait, whatever restarted", obs(rebooting), ActWait, "Rebooting", nil},
		{"rebooting, not asked yet: ask", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.RebootRequestedAt, o.Node.State.RebootAttempts = time.Time{}, 0
		}), ActReboot, "Rebooting", nil},
		{"slot lost after the request: wait out the timeout, the host may be going down", obs(func(o *Observation) {
			rebooting(o)
			o.Lock.Held = false
		}), ActWait, "Rebooting", nil},
		{"slot lost, the timeout passed: abort, never reboot", obs(func(o *Observation) {
			rebooting(o)
			o.Lock.Held = false
			o.Node.State.RebootRequestedAt = t0.Add(-6 * time.Minute)
		}), ActAbortCycle, "Rebooting", nil},
		{"blocked after a request that came back with an error: wait out the timeout", obs(func(o *Observation) {
			rebooting(o)
			o.Host.RebootRefused, o.Node.State.BlockReason = "no reply", "stop"
		}), ActWait, "Rebooting", nil},
		{"boot id unchanged after timeout: try again", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.RebootRequestedAt = t0.Add(-6 * time.Minute)
		}), ActReboot, "Rebooting", nil},
		{"boot id unchanged after timeout, now blocked: abort", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.RebootRequestedAt = t0.Add(-6 * time.Minute)
			o.Node.State.BlockReason = "stop"
		}), ActAbortCycle, "Rebooting", nil},
		{"boot id unchanged after the last attempt: fail", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.RebootRequestedAt = t0.Add(-6 * time.Minute)
			o.Node.State.RebootAttempts = 2
		}), ActFailReboot, "Failed", nil},
		{"the host refused the request: try again at once", obs(func(o *Observation) {
			rebooting(o)
			o.Host.RebootRefused = "access denied"
		}), ActReboot, "Rebooting", nil},
		{"the host refused the last attempt: wait out its timeout", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.RebootAttempts = 2
			o.Host.RebootRefused = "access denied"
		}), ActWait, "Rebooting", nil},
		{"the host refused the last attempt, the timeout passed: fail", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.RebootAttempts = 2
			o.Node.State.RebootRequestedAt = t0.Add(-6 * time.Minute)
			o.Host.RebootRefused = "access denied"
		}), ActFailReboot, "Failed", nil},
		{"rebooting with no recorded boot id: halt, never take it as rebooted", obs(func(o *Observation) {
			rebooting(o)
			o.Node.State.BootIDBefore = ""
			o.Host.BootID, o.Node.ReportedBootID = "boot-b", "boot-b"
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
		{"admission: report the need first", obs(func(o *Observation) { o.Admission = true }), ActReportNeed, "WaitingForLock", nil},
		{"admission: reported, wait for the controller", obs(func(o *Observation) {
			o.Admission, o.Node.State.NeedSince = true, t0.Add(-time.Minute)
		}), ActWait, "WaitingForLock", nil},
		{"admission: admitted, take a slot", obs(func(o *Observation) {
			o.Admission, o.Node.State.NeedSince, o.Node.State.Admitted = true, t0.Add(-time.Minute), t0
		}), ActAcquire, "WaitingForLock", nil},
		{"admission: blocked after reporting: withdraw", obs(func(o *Observation) {
			o.Admission, o.Node.State.NeedSince, o.Node.State.Admitted = true, t0.Add(-time.Minute), t0
			o.Node.State.BlockReason = "db migration"
		}), ActWithdrawNeed, "Idle", nil},
		{"admission: no longer needed: withdraw", obs(func(o *Observation) {
			o.Admission, o.Node.State.NeedSince, o.Host.RebootRequired = true, t0.Add(-time.Minute), false
		}), ActWithdrawNeed, "Idle", nil},
		{"patch round due", obs(func(o *Observation) {
			o.Patch = PatchView{Enabled: true, Interval: 24 * time.Hour}
		}), ActPatch, "Idle", nil},
		{"the host's boot id is not the kubelet's: refuse to act", obs(func(o *Observation) {
			o.Node.ReportedBootID = "boot-k"
		}), ActWait, "Idle", []string{BlockBootIDMismatch}},
		{"mismatch mid-cycle: refuse to act, keep the cordon", obs(func(o *Observation) {
			drained(o)
			o.Node.ReportedBootID = "boot-k"
		}), ActWait, "Draining", []string{BlockBootIDMismatch}},
		{"rebooted, kubelet still reports the old boot: wait, not a mismatch", obs(func(o *Observation) {
			rebooting(o)
			o.Host.BootID = "boot-b"
		}), ActWaitReady, "WaitingReady", nil},
		{"the machine's boot id after a reboot (a shared kernel): mismatch, no reboot loop", obs(func(o *Observation) {
			rebooting(o)
			o.Node.ReportedBootID = "boot-k2"
		}), ActWait, "Rebooting", []string{BlockBootIDMismatch}},
		{"still needed right after a reboot: hold", obs(func(o *Observation) {
			o.Node.State.LastReboot, o.Node.State.RepeatedReboots = t0.Add(-time.Minute), 1
		}), ActWait, "Idle", []string{BlockRecentReboot}},
		{"still needed, the interval passed: go", obs(func(o *Observation) {
			o.Node.State.LastReboot, o.Node.State.RepeatedReboots = t0.Add(-2*time.Hour), 1
		}), ActAcquire, "WaitingForLock", nil},
		{"reboot loop: halt for good", obs(func(o *Observation) {
			o.Node.State.LastReboot, o.Node.State.RepeatedReboots = t0.Add(-2*time.Hour), 3
		}), ActWait, "Idle", []string{BlockRebootLoop}},
		{"reboot loop, forced: go", obs(func(o *Observation) {
			o.Node.State.LastReboot, o.Node.State.RepeatedReboots, o.Node.State.Force = t0.Add(-time.Minute), 3, true
		}), ActAcquire, "WaitingForLock", nil},
		{"reboot loop over, the need went away: forget it", obs(func(o *Observation) {
			o.Node.State.RepeatedReboots, o.Host.RebootRequired = 3, false
		}), ActResetLoop, "Idle", nil},
		{"failed with no recorded boot id: halt", obs(func(o *Observation) {
			o.Node.State.Phase = state.PhaseFailed
			o.Host.BootID, o.Node.ReportedBootID = "boot-b", "boot-b"
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

// TestDecideNeverRebootsWithoutTheLock checks invariants over a grid of states:
// no observation without a held slot leads to a reboot, a drain or a cycle, and
// none with a block leads to a reboot.
func TestDecideNeverRebootsWithoutTheLock(t *testing.T) {
	for _, phase := range []state.Phase{state.PhaseIdle, state.PhaseDraining, state.PhaseRebooting, state.PhaseVerifying, state.PhaseFailed} {
		for _, isDrained := range []bool{false, true} {
			for _, refused := range []string{"", "no"} {
				for _, age := range []time.Duration{0, time.Minute, time.Hour} {
					for _, attempts := range []int{0, 1, 2} {
						o := obs(func(o *Observation) {
							rebooting(o)
							o.Node.State.Phase, o.Node.State.Drained = phase, isDrained
							o.Host.RebootRefused = refused
							o.Node.State.RebootRequestedAt = t0.Add(-age)
							o.Node.State.RebootAttempts = attempts
						})
						where := fmt.Sprintf("phase %q drained %t refused %q age %s attempts %d", phase, isDrained, refused, age, attempts)
						unlocked := o
						unlocked.Lock.Held = false
						require.NotContains(t, []Action{ActReboot, ActDrain, ActBeginCycle, ActApplyPatch}, Decide(unlocked).Action, where)
						blocked := o
						blocked.Node.State.BlockReason = "stop"
						require.NotEqual(t, ActReboot, Decide(blocked).Action, where)
					}
				}
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
	patching := func(change func(*Observation)) Observation {
		return obs(func(o *Observation) {
			o.Patch = PatchView{Enabled: true, Interval: day}
			if change != nil {
				change(o)
			}
		})
	}
	cases := []struct {
		name string
		obs  Observation
		due  bool
	}{
		{"never patched", patching(nil), true},
		{"patching off", obs(nil), false},
		{"patched an hour ago", patching(func(o *Observation) { o.Node.State.LastPatch = t0.Add(-time.Hour) }), false},
		{"patched a day ago", patching(func(o *Observation) { o.Node.State.LastPatch = t0.Add(-day) }), true},
		{"a round an hour ago that could not be recorded", patching(func(o *Observation) { o.Patch.LastRound = t0.Add(-time.Hour) }), false},
		{"outside the window", patching(func(o *Observation) { o.WindowOpen = false }), false},
		{"blocked", patching(func(o *Observation) { o.Node.State.BlockReason = "x" }), false},
		{"paused", patching(func(o *Observation) { o.Lock.PauseReason = "x" }), false},
		{"in a cycle", patching(rebooting), false},
		{"holding a slot", patching(func(o *Observation) { o.Lock.Held = true }), false},
		{"updates already waiting", patching(func(o *Observation) { o.Host.PatchReady = true }), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { require.Equal(t, c.due, c.obs.patchDue()) })
	}
}

// TestBlockReasonsAreMetricLabels: every reason Decide gives has its series.
func TestBlockReasonsAreMetricLabels(t *testing.T) {
	for _, r := range []string{BlockAnnotation, BlockPaused, BlockWindow, BlockBackoff, BlockRecentReboot,
		BlockRebootLoop, BlockBootIDMismatch, BlockHostBusy, BlockAlert, BlockQuery, BlockPrometheusUnreachable, BlockPods, BlockKuredLock, BlockQuarantined, BlockGate} {
		require.Contains(t, metrics.BlockReasons, r)
	}
}

// verifying: back from the reboot a minute ago, in service, holding the slot,
// with a health gate of a 5-minute soak and a 10-minute timeout.
func verifying(o *Observation) {
	o.Lock.Held = true
	o.Host.BootID, o.Node.ReportedBootID, o.Host.RebootRequired = "boot-b", "boot-b", false
	o.Limits.HealthGate, o.Limits.Soak, o.Limits.HealthTimeout = true, 5*time.Minute, 10*time.Minute
	o.Node.State = state.Node{Phase: state.PhaseVerifying, BootIDBefore: "boot-a", CycleStarted: t0.Add(-3 * time.Minute),
		BackAt: t0.Add(-time.Minute)}
	o.Health = HealthView{Healthy: true}
}

// TestDecideChecks: holds from outside the node, and the health gate.
func TestDecideChecks(t *testing.T) {
	podsBlock := []Block{{Reason: BlockPods, Detail: "blocking pods run on the node: db/backup-1"}}
	cases := []struct {
		name    string
		obs     Observation
		action  Action
		phase   string
		blocked []string
		until   time.Time
	}{
		{"pods hold the cycle", obs(func(o *Observation) { o.Blocks = podsBlock }), ActWait, "Idle", []string{BlockPods}, t0.Add(blockRecheck)},
		{"two holds from outside", obs(func(o *Observation) {
			o.Blocks = append(podsBlock, Block{Reason: BlockPrometheusUnreachable, Detail: "connection refused"})
		}), ActWait, "Idle", []string{BlockPods, BlockPrometheusUnreachable}, t0.Add(blockRecheck)},
		{"held from outside with a slot: release it", obs(func(o *Observation) {
			o.Lock.Held, o.Blocks = true, podsBlock
		}), ActReleaseSlot, "Idle", nil, time.Time{}},
		{"held from outside with the need reported: withdraw it", obs(func(o *Observation) {
			o.Admission, o.Node.State.NeedSince, o.Blocks = true, t0.Add(-time.Minute), podsBlock
		}), ActWithdrawNeed, "Idle", nil, time.Time{}},
		{"back and Ready with a health gate: back in service, keep the slot", obs(func(o *Observation) {
			rebooting(o)
			o.Host.BootID, o.Node.ReportedBootID, o.Limits.HealthGate = "boot-b", "boot-b", true
		}), ActBackInService, "Verifying", nil, time.Time{}},
		{"back and Ready without a health gate: finish", obs(func(o *Observation) {
			rebooting(o)
			o.Host.BootID, o.Node.ReportedBootID = "boot-b", "boot-b"
		}), ActFinish, "Idle", nil, time.Time{}},
		{"healthy, soaking", obs(verifying), ActWait, "Verifying", nil, t0.Add(4 * time.Minute)},
		{"healthy at the end of the soak: finish", obs(func(o *Observation) {
			verifying(o)
			o.Now = t0.Add(4 * time.Minute)
		}), ActFinish, "Idle", nil, time.Time{}},
		{"not healthy yet: look again soon", obs(func(o *Observation) {
			verifying(o)
			o.Health = HealthView{Detail: "pods not Ready: kube-system/cni-x"}
		}), ActWait, "Verifying", nil, t0.Add(healthRecheck)},
		{"not healthy at the timeout: fail, keep the slot", obs(func(o *Observation) {
			verifying(o)
			o.Now, o.Health = t0.Add(9*time.Minute), HealthView{Detail: "pods not Ready: kube-system/cni-x"}
		}), ActFailHealth, "Failed", nil, time.Time{}},
		{"healthy after the timeout but soaked: finish", obs(func(o *Observation) {
			verifying(o)
			o.Now = t0.Add(20 * time.Minute)
		}), ActFinish, "Idle", nil, time.Time{}},
		{"slot lost while verifying: finish", obs(func(o *Observation) {
			verifying(o)
			o.Lock.Held, o.Health = false, HealthView{Detail: "x"}
		}), ActFinish, "Idle", nil, time.Time{}},
		{"failed its health gate, rebooted: halt, not back to verifying", obs(func(o *Observation) {
			verifying(o)
			o.Node.State.Phase = state.PhaseFailed
		}), ActHalt, "Failed", nil, time.Time{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			step := Decide(c.obs)
			require.Equal(t, c.action, step.Action, "reason: %s", step.Reason)
			require.Equal(t, c.phase, step.Phase)
			require.Equal(t, c.blocked, step.Blocked)
			require.Equal(t, c.until, step.Until)
			require.NotEmpty(t, step.Reason)
		})
	}
}

// TestWindowTooShortHolds: an open window a cycle would overrun holds it until
// the next start that fits.
func TestWindowTooShortHolds(t *testing.T) {
	closes, next := t0.Add(10*time.Minute), t0.Add(24*time.Hour)
	step := Decide(obs(func(o *Observation) {
		o.WindowTooShort, o.WindowCloses, o.NextWindow, o.ExpectedCycle = true, closes, next, 25*time.Minute
	}))
	require.Equal(t, ActWait, step.Action)
	require.Equal(t, []string{BlockWindow}, step.Blocked)
	require.Equal(t, next, step.Until)
	require.Contains(t, step.Reason, "a cycle of about 25m0s would not end before the window closes at "+closes.Format(time.RFC3339))
}

// TestSlotPastTheLimitIsGivenBack: a slot taken under a larger limit is not
// where a new cycle begins (chaos seed 147: an idle holder of slot 1 began its
// cycle after the limit shrank to 1, two holders at limit 1); a cycle under
// way in it finishes.
func TestSlotPastTheLimitIsGivenBack(t *testing.T) {
	step := Decide(obs(func(o *Observation) { o.Lock.Held, o.Lock.PastLimit = true, true }))
	require.Equal(t, ActReleaseSlot, step.Action, step.Reason)
	step = Decide(obs(func(o *Observation) {
		drained(o)
		o.Lock.PastLimit = true
	}))
	require.Equal(t, ActReboot, step.Action, "a cycle under way in a slot past the limit must finish: %s", step.Reason)
}
