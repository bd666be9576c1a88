package agent

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/notify"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// execute carries out one step. It reports whether the step changed anything, in
// which case the agent observes and decides again at once. A dry run is this
// same executor over effects that record instead of act (see dryrun.go).
func (a *Agent) execute(ctx context.Context, obs Observation, step Step) (bool, error) {
	if step.Action != ActReboot {
		a.tellDrained()
	}
	slotJustTaken := a.slotJustTaken
	a.slotJustTaken = false
	switch step.Action {
	case ActNone, ActWaitReady:
		return false, nil
	case ActWait:
		a.announceWait(step)
		return false, nil
	case ActHalt:
		a.warnOnce("RebootFailed", "%s", step.Reason)
		return false, nil
	case ActPatch:
		a.runPatchRound(ctx, obs)
		return true, nil
	case ActAcquire:
		return a.acquire(ctx, obs)
	case ActReleaseSlot:
		return true, a.release(ctx, step.Reason)
	case ActCleanup:
		return true, a.endCycle(ctx, step.Reason, endOptions{})
	case ActResetLoop:
		return true, a.updateState(ctx, func(_ *corev1.Node, st *state.Node) { st.RepeatedReboots = 0 })
	case ActReportNeed:
		now := a.cfg.Clock()
		a.normal("WaitingForAdmission", "%s; waiting for the rollout controller", step.Reason)
		return true, a.updateState(ctx, func(_ *corev1.Node, st *state.Node) { st.NeedSince = now })
	case ActWithdrawNeed:
		return true, a.updateState(ctx, func(node *corev1.Node, st *state.Node) {
			st.NeedSince = time.Time{}
			delete(node.Annotations, state.AnnotationAdmitted)
			delete(node.Annotations, state.AnnotationAdmittedSlot)
		})
	case ActBeginCycle:
		return true, a.beginCycle(ctx, obs, slotJustTaken)
	case ActDrain:
		return true, a.drain(ctx, obs)
	case ActApplyPatch:
		a.applyUnderLock(ctx)
		return true, nil
	case ActEndPatchedCycle:
		a.normal("PatchedUnderLock", "%s", step.Reason)
		return true, a.endCycle(ctx, "patched without a reboot", endOptions{release: true})
	case ActAbortCycle:
		a.warn("CycleAborted", "%s; undoing taint and cordon", step.Reason)
		return true, a.endCycle(ctx, step.Reason, endOptions{release: true})
	case ActReboot:
		return a.reboot(ctx, obs, step.Reason)
	case ActFailReboot:
		return true, a.failReboot(ctx, obs, step.Reason)
	case ActFinish:
		if obs.Node.State.Phase == state.PhaseVerifying {
			return true, a.endVerify(ctx, obs, step.Reason)
		}
		return true, a.finish(ctx, obs, false)
	case ActBackInService:
		return true, a.finish(ctx, obs, true)
	case ActFailHealth:
		return true, a.failHealth(ctx, obs, step.Reason)
	case ActGateExpired:
		return true, a.gateExpired(ctx, step)
	case ActFailGate:
		a.notify(notify.Failed, obs.Node.State.CycleStarted, step.Reason)
		a.warn("ApprovalTimedOut", "%s; keeping the lock slot until an operator looks (remove annotation %s to release it)", step.Reason, state.AnnotationPhase)
		return true, a.updateState(ctx, func(_ *corev1.Node, st *state.Node) { st.Phase, st.WaitingForGate = state.PhaseFailed, "" })
	}
	return false, fmt.Errorf("unknown action %d", step.Action)
}

// announceWait tells, once per distinct reason, why a needed reboot waits.
func (a *Agent) announceWait(step Step) {
	switch {
	case slices.Contains(step.Blocked, BlockBootIDMismatch):
		a.warnOnce("BootIDMismatch", "%s", step.Reason)
	case slices.Contains(step.Blocked, BlockRebootLoop) || slices.Contains(step.Blocked, BlockRecentReboot):
		if a.firstTime("RebootLoop", step.Reason) {
			a.warn("RebootLoop", "%s", step.Reason)
			a.notify(notify.LoopDetected, time.Time{}, step.Reason)
		}
	case len(step.Blocked) > 0:
		a.normalOnce("RebootBlocked", "reboot needed but not started: %s", step.Reason)
	}
}

func (a *Agent) acquire(ctx context.Context, obs Observation) (bool, error) {
	slot, won, err := a.cfg.Lock.TryAcquire(ctx)
	if err != nil {
		return false, fmt.Errorf("taking a lock slot: %w", err)
	}
	if !won {
		a.announceLockWait(obs)
		return false, nil
	}
	a.slotJustTaken = true
	// No Event of its own: CycleStarted, which follows at once, names the
	// holders (an Event is a request, and one per step adds up at scale).
	a.cfg.Log.Info("took lock slot "+slot, "reason", "LockAcquired")
	return true, nil
}

// admittedLockWait is how long an admitted node waits for its slot before
// the wait is worth an Event: the controller admits a node as the previous
// holder's cycle ends, and its slot is released a moment later.
const admittedLockWait = 10 * time.Second

// announceLockWait tells once that the node waits for a lock slot: at once
// when it raced for one, after admittedLockWait when it was admitted.
// The wait is timed on this agent's clock from its first lost try under this
// admission, not from the controller's time stamp (clocks differ).
func (a *Agent) announceLockWait(obs Observation) {
	admitted := obs.Node.State.Admitted
	if a.cfg.Admission && !admitted.IsZero() {
		if !a.lockWait.admitted.Equal(admitted) {
			a.lockWait.admitted, a.lockWait.since = admitted, a.cfg.Clock()
		}
		if a.cfg.Clock().Sub(a.lockWait.since) < admittedLockWait {
			a.cfg.Log.Info("admitted; waiting for a lock slot to be released", "holders", obs.Lock.Holders)
			return
		}
	}
	a.normalOnce("WaitingForLock", "reboot needed; waiting for a lock slot (%s)", obs.Lock.Holders)
}

func (a *Agent) release(ctx context.Context, why string) error {
	return a.releaseSlot(ctx, why, true)
}

// releaseSlot gives the slot back; announce sends a LockReleased Event, which
// a caller whose own Event says the slot went does without.
func (a *Agent) releaseSlot(ctx context.Context, why string, announce bool) error {
	if err := a.cfg.Lock.Release(ctx); err != nil {
		return fmt.Errorf("releasing the lock slot: %w", err)
	}
	if announce {
		a.normal("LockReleased", "released the lock slot: %s", why)
	} else {
		a.cfg.Log.Info("released the lock slot: "+why, "reason", "LockReleased")
	}
	return nil
}

// updateState changes the node's nodepatch state and, through mutate, anything else
// on it, in one conflict-checked update. It parses the state afresh from what it
// read, so a retry after a conflict never works from a stale copy.
func (a *Agent) updateState(ctx context.Context, mutate func(*corev1.Node, *state.Node)) error {
	return a.updateStateIf(ctx, func(node *corev1.Node, st *state.Node) error {
		mutate(node, st)
		return nil
	})
}

// updateStateIf is updateState with a mutate that may refuse (errStateChanged)
// after looking at the API server's copy: then nothing is written.
func (a *Agent) updateStateIf(ctx context.Context, mutate func(*corev1.Node, *state.Node) error) error {
	written, err := a.cfg.Nodes.Update(ctx, func(node *corev1.Node) error {
		st, _ := state.Parse(node.Annotations)
		if err := mutate(node, &st); err != nil {
			return err
		}
		nodeops.SetAgentState(node, st)
		return nil
	})
	if err != nil {
		return err
	}
	start := time.Now()
	a.awaitNodeCache(ctx, written)
	if waited := time.Since(start); waited > 100*time.Millisecond {
		a.cfg.Log.Info("the node cache was slow to show the agent's own write", "waited", waited)
	}
	return nil
}

// cacheLag bounds the wait for the informer to show the agent's own write.
const cacheLag = 5 * time.Second

// awaitNodeCache waits until the Node cache shows what the agent just wrote (its
// annotations, taint and cordon): read-your-writes, so that the next decision
// does not act on the state before the write and, say, finish a cycle twice.
// Other writers (the kubelet's status) do not matter to the comparison.
func (a *Agent) awaitNodeCache(ctx context.Context, written *corev1.Node) {
	want := agentView(written)
	timeout := time.NewTimer(cacheLag)
	defer timeout.Stop()
	for {
		changed := a.nodeChanged()
		if cached, err := a.cfg.Node.Get(); err == nil && agentView(cached) == want {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-timeout.C:
			a.cfg.Log.Warn("the node cache did not show the agent's own write in time; going on", "wait", cacheLag)
			return
		}
	}
}

// nodeChanged is a channel closed at the Node cache's next change, or in a
// few milliseconds without Config.NodeChanged.
func (a *Agent) nodeChanged() <-chan struct{} {
	if a.cfg.NodeChanged != nil {
		return a.cfg.NodeChanged()
	}
	soon := make(chan struct{})
	time.AfterFunc(5*time.Millisecond, func() { close(soon) })
	return soon
}

// agentView is the part of a Node the agent writes, as one comparable string.
func agentView(node *corev1.Node) string {
	var b strings.Builder
	for _, key := range slices.Sorted(maps.Keys(state.Node{}.AgentAnnotations())) {
		b.WriteString(key + "=" + node.Annotations[key] + ";")
	}
	fmt.Fprintf(&b, "taint=%t;unschedulable=%t;force=%s;admitted=%s", nodeops.HasTaint(node), node.Spec.Unschedulable,
		node.Annotations[state.AnnotationForceReboot], node.Annotations[state.AnnotationAdmitted])
	return b.String()
}

// errStateChanged: the Node as the API server has it is no longer in the state
// the decision saw (an operator's block or reset came in between); nothing was
// written, and the agent decides again.
var errStateChanged = errors.New("the node changed since it was observed")

// confirmSlot asks the API server, not the cache, whether this node holds a slot.
func (a *Agent) confirmSlot(ctx context.Context, before string) error {
	held, err := a.cfg.Lock.HoldsNow(ctx)
	if err != nil {
		return fmt.Errorf("confirming the lock slot before %s: %w", before, err)
	}
	if !held {
		return fmt.Errorf("%w: not %s", lock.ErrNotHeld, before)
	}
	return nil
}

// beginCycle confirms the slot with the API server, then records the cycle,
// taints and cordons in one update. Whether the node was already cordoned is
// read in that same update, so nodepatch only ever lifts a cordon it made.
// slotJustTaken: this process won the slot from the API server in the step
// just before, and that write's answer is the confirmation. The reboot is
// always confirmed anew.
func (a *Agent) beginCycle(ctx context.Context, obs Observation, slotJustTaken bool) error {
	if !slotJustTaken {
		if err := a.confirmSlot(ctx, "tainting and cordoning"); err != nil {
			return err
		}
	}
	now := a.cfg.Clock()
	err := a.updateStateIf(ctx, func(node *corev1.Node, st *state.Node) error {
		if st.Phase != state.PhaseIdle || st.BlockReason != "" {
			return errStateChanged
		}
		st.Phase = state.PhaseDraining
		// A cordon this agent recorded as its own stays its own: a begin whose
		// answer was lost already cordoned the node (found by test/model).
		st.CordonedByUs = st.CordonedByUs || !node.Spec.Unschedulable
		st.CycleStarted = now
		st.Drained, st.DrainedAt, st.BootIDBefore, st.RebootRequestedAt, st.RebootAttempts = false, time.Time{}, "", time.Time{}, 0
		nodeops.AddTaint(node, now)
		node.Spec.Unschedulable = true
		a.beginLabels(node, st)
		return nil
	})
	if err != nil {
		return fmt.Errorf("tainting and cordoning: %w", err)
	}
	a.cfg.Metrics.SetCycleStart(now)
	a.notify(notify.CycleStarted, now, obs.reasons())
	a.normal("CycleStarted", "tainted %s and cordoned; draining (%s)", state.TaintKey, strings.TrimPrefix(obs.Lock.Holders, "held by "))
	return nil
}

// drain evicts the node's pods and records that it is drained. What comes next
// (reboot, apply updates, abort) is decided on a fresh observation; what a
// timed-out drain leads to is AfterDrainTimeout's decision.
func (a *Agent) drain(ctx context.Context, obs Observation) error {
	start := a.cfg.Clock()
	err := a.cfg.Nodes.Drain(ctx, a.cfg.Drain)
	if err != nil && ctx.Err() != nil {
		return err
	}
	if errors.Is(err, nodeops.ErrDrainTimeout) {
		err = a.drainTimedOut(ctx, err)
	}
	if err != nil {
		return a.drainFailed(ctx, err)
	}
	a.cfg.Metrics.DrainDuration.Observe(a.cfg.Clock().Sub(start).Seconds())
	if err := a.markDrained(ctx); err != nil {
		return err
	}
	// The Drained Event waits for the next step: a reboot that follows at
	// once says it in its own Event (one request fewer per cycle); any other
	// step sends it first (see tellDrained).
	a.drained = fmt.Sprintf("drained in %s", a.cfg.Clock().Sub(start).Round(time.Millisecond))
	a.cfg.Log.Info(a.drained, "reason", "Drained")
	a.notify(notify.Drained, obs.Node.State.CycleStarted, "")
	return nil
}

// tellDrained sends the Drained Event that a drain left for its next step,
// when that step is not the reboot.
func (a *Agent) tellDrained() {
	if a.drained == "" {
		return
	}
	a.cfg.Events.Event(a.nodeRef(), corev1.EventTypeNormal, "Drained", a.drained)
	a.drained = ""
}

// errQuarantine: the drain timed out and the node is to be put aside.
var errQuarantine = errors.New("quarantined")

// drainTimedOut carries out AfterDrainTimeout's choice. It returns nil when
// the node may go on to its reboot.
func (a *Agent) drainTimedOut(ctx context.Context, cause error) error {
	blockers, listErr := a.cfg.Nodes.DrainBlockers(ctx, a.cfg.Drain)
	what := strings.Join(blockers, ", ")
	if listErr != nil {
		what = "cannot tell which pods: " + listErr.Error()
	}
	a.warn("DrainTimedOut", "the drain did not finish in %s; left: %s", a.cfg.Drain.Timeout, what)
	switch AfterDrainTimeout(a.cfg.DrainTimeoutAction, a.cfg.RebootAfterDrainTimeout, false) {
	case DrainReboot:
		a.warn("DrainTimedOut", "rebooting anyway as configured (--reboot-after-drain-timeout)")
		return nil
	case DrainQuarantine:
		return fmt.Errorf("%w: %w", errQuarantine, cause)
	case DrainForce:
		forced := a.cfg.Drain
		forced.DisableEviction, forced.GracePeriod = true, a.cfg.ForceDrainGrace
		a.warn("DrainForced", "deleting the pods left past their disruption budgets, with a grace period of %ds: %s", a.cfg.ForceDrainGrace, what)
		if err := a.cfg.Nodes.Drain(ctx, forced); err != nil {
			return fmt.Errorf("the forced drain failed too: %w", err)
		}
		return nil
	}
	return cause
}

func (a *Agent) markDrained(ctx context.Context) error {
	now := a.cfg.Clock()
	return a.updateStateIf(ctx, func(_ *corev1.Node, st *state.Node) error {
		if st.Phase != state.PhaseDraining {
			return errStateChanged
		}
		st.Drained, st.DrainedAt = true, now
		return nil
	})
}

// applyUnderLock applies the downloaded updates on the drained node and asks the
// host again at once. When the answer is unclear it says yes: a needless reboot
// under the lock is safe, a missed one is not.
func (a *Agent) applyUnderLock(ctx context.Context) {
	a.applyPatch(ctx)
	a.patch.applied = true
	check, err := a.cfg.Detector.RebootRequired(ctx)
	if err != nil {
		a.warn("RebootCheckFailed", "cannot tell whether the host needs a reboot after the updates; rebooting to be safe: %v", err)
	}
	a.host.RebootRequired = err != nil || check.Required
	a.nextHostCheck = a.cfg.Clock().Add(jitter(a.cfg.Period))
}

// drainFailed undoes the cycle after a failed drain: with a back-off before
// the next try, or, for a quarantine, with the node put aside.
func (a *Agent) drainFailed(ctx context.Context, cause error) error {
	a.cfg.Metrics.DrainFailures.Inc()
	quarantine := errors.Is(cause, errQuarantine)
	failures := 0
	err := a.endCycleWith(ctx, endOptions{release: true, quarantine: quarantine}, func(st *state.Node) {
		st.DrainFailures++
		failures = st.DrainFailures
		st.RetryAfter = a.cfg.Clock().Add(a.backoff(st.DrainFailures))
	})
	if err != nil {
		return err
	}
	if quarantine {
		a.warn("Quarantined", "drain failed; uncordoned, released the lock and labelled the node %s: no cycle starts until an operator removes the label: %v",
			state.LabelQuarantined, cause)
		return nil
	}
	a.warn("DrainFailed", "drain failed (failure %d); uncordoned, released the lock, retrying after %s: %v",
		failures, a.backoff(failures), cause)
	return nil
}

func (a *Agent) backoff(failures int) time.Duration {
	d := a.cfg.DrainRetryBackoff
	for i := 1; i < failures && d < a.cfg.MaxDrainRetryBackoff; i++ {
		d *= 2
	}
	if a.cfg.MaxDrainRetryBackoff > 0 {
		d = min(d, a.cfg.MaxDrainRetryBackoff)
	}
	return d
}

// eventFlushTimeout bounds the wait for the Rebooting Event to reach the API
// server: the host going down takes unsent Events with it.
const eventFlushTimeout = 2 * time.Second

// reboot records the attempt on the Node (from Draining: the phase and the boot
// id it leaves, too) in an update that first checks, on the API server's copy,
// that the node is still in the state decided on and not blocked. Then it
// confirms the slot with the API server, flushes the Events and asks the host.
// The attempt is on record before the request: an agent restarted in between
// waits out the reboot timeout rather than asking twice.
func (a *Agent) reboot(ctx context.Context, obs Observation, why string) (bool, error) {
	now := a.cfg.Clock()
	from := obs.Node.State
	attempt := 0
	err := a.updateStateIf(ctx, func(_ *corev1.Node, st *state.Node) error {
		if st.Phase != from.Phase || st.BlockReason != "" || st.RebootAttempts != from.RebootAttempts ||
			(from.Phase == state.PhaseDraining && !st.Drained) {
			return errStateChanged
		}
		if st.Phase == state.PhaseDraining {
			st.Phase, st.BootIDBefore = state.PhaseRebooting, obs.Host.BootID
		}
		st.RebootAttempts++
		st.RebootRequestedAt = now
		attempt = st.RebootAttempts
		return nil
	})
	if errors.Is(err, errStateChanged) {
		return false, err
	}
	if err != nil && !a.attemptLanded(ctx, attempt, now) {
		return false, fmt.Errorf("recording the reboot attempt: %w", err)
	}
	if err != nil {
		// Committed although its answer was lost (a timeout, a 500 after the
		// write, the API server going down): not asking now would spend the
		// attempt on a request never made.
		a.cfg.Log.Warn("the reboot attempt was recorded although its write reported an error", "attempt", attempt, "err", err)
	}
	if err := a.confirmSlot(ctx, "rebooting"); err != nil {
		return true, err
	}
	drained := ""
	if a.drained != "" {
		drained, a.drained = a.drained+"; ", ""
	}
	a.normal("Rebooting", "%srebooting (attempt %d, boot id %s): %s", drained, attempt, obs.Host.BootID, why)
	if attempt == 1 {
		a.notify(notify.Rebooting, from.CycleStarted, why)
		a.flushNotifications(ctx)
	}
	a.flushEvents(ctx)
	a.refusal = refusal{}
	if err := a.cfg.Rebooter.Reboot(ctx); err != nil {
		// Decide takes it from here: another attempt, or Failed after the last.
		a.refusal = refusal{attempt: attemptKey(obs.Host.BootID, attempt), msg: err.Error()}
		a.warn("RebootRequestFailed", "the host refused the reboot request: %v", err)
	}
	return true, nil
}

// errReadOnly ends an Update that only reads the API server's copy.
var errReadOnly = errors.New("read only")

// attemptLanded reads the API server's copy (through the writer, so that dry
// run reads its shadow) and reports whether it holds the attempt this process
// tried to record at at.
func (a *Agent) attemptLanded(ctx context.Context, attempt int, at time.Time) bool {
	if attempt == 0 {
		return false // the write never got as far as the attempt
	}
	landed := false
	_, err := a.cfg.Nodes.Update(ctx, func(node *corev1.Node) error {
		st, _ := state.Parse(node.Annotations)
		landed = st.Phase == state.PhaseRebooting && st.RebootAttempts == attempt && st.RebootRequestedAt.Equal(at)
		return errReadOnly
	})
	return errors.Is(err, errReadOnly) && landed
}

func (a *Agent) flushEvents(ctx context.Context) {
	if a.cfg.FlushEvents == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, eventFlushTimeout)
	defer cancel()
	if err := a.cfg.FlushEvents(ctx); err != nil {
		a.cfg.Log.Warn("Events may not have reached the API server before the reboot", "err", err)
	}
}

// failReboot halts: the node keeps its taint, cordon and slot, so that a node that
// cannot reboot stops the rollout instead of letting others follow it down. A
// halt waits for an operator, so it is written only while the API server's
// copy still shows the attempts it was decided on: a cache that lags behind an
// attempt just recorded must not halt a node whose reboot is under way.
func (a *Agent) failReboot(ctx context.Context, obs Observation, why string) error {
	from := obs.Node.State
	err := a.updateStateIf(ctx, func(_ *corev1.Node, st *state.Node) error {
		if st.Phase != from.Phase || st.RebootAttempts != from.RebootAttempts ||
			!st.RebootRequestedAt.Equal(from.RebootRequestedAt) || st.BootIDBefore != from.BootIDBefore {
			return errStateChanged
		}
		st.Phase = state.PhaseFailed
		return nil
	})
	if errors.Is(err, errStateChanged) {
		a.cfg.Log.Info("not halting: the node changed since it was observed", "reason", why)
		return nil
	}
	if err != nil {
		return fmt.Errorf("recording the failed reboot: %w", err)
	}
	a.cfg.Metrics.Reboots.WithLabelValues("failed").Inc()
	a.notify(notify.Failed, from.CycleStarted, why)
	a.warn("RebootFailed", "%s; keeping the lock slot and the cordon until an operator looks (remove annotation %s to retry)",
		why, state.AnnotationPhase)
	return nil
}

// finish ends the cycle of a node back from its reboot: untaint, uncordon and,
// without a health gate, release. With one (verify), the node stays in the
// cycle as Verifying, in service and holding its slot, from now (back-at).
func (a *Agent) finish(ctx context.Context, obs Observation, verify bool) error {
	now := a.cfg.Clock()
	from := obs.Node.State
	out := now.Sub(from.CycleStarted)
	// The host was asked again on this boot's first look: a need that survived
	// the reboot counts towards a reboot loop.
	survived := obs.Host.RebootRequired
	err := a.endCycleWith(ctx, endOptions{release: !verify, rebooted: true, quietRelease: true}, func(st *state.Node) {
		st.LastReboot = now
		st.DrainFailures, st.RetryAfter = 0, time.Time{}
		st.RepeatedReboots = 0
		if survived {
			st.RepeatedReboots = from.RepeatedReboots + 1
		}
		if verify {
			st.Phase, st.BackAt, st.CycleStarted, st.BootIDBefore = state.PhaseVerifying, now, from.CycleStarted, from.BootIDBefore
		} else if !from.CycleStarted.IsZero() {
			st.RememberCycle(out)
		}
	})
	if err != nil {
		return err
	}
	if !from.CycleStarted.IsZero() {
		a.cfg.Metrics.OutOfService.Observe(out.Seconds())
	}
	a.notify(notify.Back, from.CycleStarted, "")
	if verify {
		a.normal("BackInService", "rebooted (boot id %s → %s) and Ready; uncordoned after %s out of service; holding the slot until healthy",
			from.BootIDBefore, obs.Host.BootID, out.Round(time.Millisecond))
		return nil
	}
	a.cfg.Metrics.Reboots.WithLabelValues("success").Inc()
	a.normal("RebootSucceeded", "rebooted (boot id %s → %s) and Ready; node was out of service for %s; lock slot released",
		from.BootIDBefore, obs.Host.BootID, out.Round(time.Millisecond))
	return nil
}

// endVerify ends a Verifying node's cycle: it is healthy (or lost its slot,
// and so has nothing left to hold), so the slot goes on.
func (a *Agent) endVerify(ctx context.Context, obs Observation, why string) error {
	from := obs.Node.State
	back, started := from.BackAt, from.CycleStarted
	err := a.endCycleWith(ctx, endOptions{release: true, quietRelease: true}, func(st *state.Node) {
		if !started.IsZero() {
			st.RememberCycle(a.cfg.Clock().Sub(started))
		}
	})
	if err != nil {
		return err
	}
	a.cfg.Metrics.Reboots.WithLabelValues("success").Inc()
	a.cfg.Metrics.TimeToHealthy.Observe(a.cfg.Clock().Sub(back).Seconds())
	a.normal("RebootSucceeded", "rebooted (boot id %s → %s): %s, %s after the node came back; node was out of service for %s; lock slot released",
		from.BootIDBefore, obs.Host.BootID, why, a.cfg.Clock().Sub(back).Round(time.Millisecond), back.Sub(started).Round(time.Millisecond))
	return nil
}

// failHealth halts a node that did not turn healthy after its reboot. It stays
// in service (it is uncordoned already) but keeps its slot, so the rollout
// stops instead of taking the next node down the same way.
func (a *Agent) failHealth(ctx context.Context, obs Observation, why string) error {
	a.cfg.Metrics.Reboots.WithLabelValues("unhealthy").Inc()
	a.notify(notify.Failed, obs.Node.State.CycleStarted, why)
	a.warn("HealthCheckFailed", "%s; keeping the lock slot until an operator looks (remove annotation %s to release it)",
		why, state.AnnotationPhase)
	return a.updateStateIf(ctx, func(_ *corev1.Node, st *state.Node) error {
		if st.Phase != state.PhaseVerifying || !st.BackAt.Equal(obs.Node.State.BackAt) {
			return errStateChanged
		}
		st.Phase = state.PhaseFailed
		return nil
	})
}

type endOptions struct {
	release    bool // give the lock slot back
	rebooted   bool // the cycle rebooted the host: clear the force annotation
	quarantine bool // put the node aside (state.LabelQuarantined)
	// quietRelease: the caller's Event (RebootSucceeded) says the slot went.
	quietRelease bool
}

func (a *Agent) endCycle(ctx context.Context, why string, opts endOptions) error {
	if err := a.endCycleWith(ctx, opts, nil); err != nil {
		return err
	}
	a.cfg.Log.Info("cycle ended", "why", why)
	return nil
}

// endCycleWith removes nodepatch's taint, lifts the cordon only if nodepatch made
// it, resets the cycle's state (adjust may change what stays), then releases the
// slot. The node is cleaned before the slot goes, so that a crash in between
// leaves a held slot on a clean idle node, which the next start releases.
func (a *Agent) endCycleWith(ctx context.Context, opts endOptions, adjust func(*state.Node)) error {
	err := a.updateState(ctx, func(node *corev1.Node, st *state.Node) {
		nodeops.RemoveTaint(node)
		if st.CordonedByUs {
			node.Spec.Unschedulable = false
		}
		a.endLabels(node, *st, opts.quarantine)
		// The admission and the approvals were for this cycle; the next one
		// is asked for anew.
		delete(node.Annotations, state.AnnotationAdmitted)
		delete(node.Annotations, state.AnnotationAdmittedSlot)
		maps.DeleteFunc(node.Annotations, func(k, _ string) bool { return state.IsApprovalAnnotation(k) })
		if opts.rebooted && st.Force {
			// Only a valid "true" forced this reboot; any other value is the
			// operator's to fix, and stays.
			delete(node.Annotations, state.AnnotationForceReboot)
		}
		*st = state.Node{LastReboot: st.LastReboot, LastPatch: st.LastPatch, DrainFailures: st.DrainFailures,
			RetryAfter: st.RetryAfter, RepeatedReboots: st.RepeatedReboots, CycleDurations: st.CycleDurations}
		if adjust != nil {
			adjust(st)
		}
	})
	if err != nil {
		return fmt.Errorf("removing taint and cordon: %w", err)
	}
	a.cfg.Metrics.SetCycleStart(time.Time{})
	a.forgetHost()
	a.patch.applied = false
	if opts.release {
		return a.releaseSlot(ctx, "cycle ended", !opts.quietRelease)
	}
	return nil
}

// beginLabels sets the cycle's labels as the cycle begins: the pre-reboot
// labels, and the load balancer exclusion unless the operator set it already
// (then it is theirs, and stays after the cycle).
func (a *Agent) beginLabels(node *corev1.Node, st *state.Node) {
	l := a.cfg.Labels
	if len(l.Pre) == 0 && !l.ExcludeFromLB {
		return
	}
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	maps.Copy(node.Labels, l.Pre)
	if _, set := node.Labels[state.LabelExcludeFromLB]; l.ExcludeFromLB && (!set || st.LBExcludedByUs) {
		node.Labels[state.LabelExcludeFromLB] = "true"
		st.LBExcludedByUs = true
	}
}

// endLabels undoes beginLabels when a cycle ends (rebooted or undone): the
// exclusion goes if nodepatch set it, the post-reboot labels are set.
func (a *Agent) endLabels(node *corev1.Node, st state.Node, quarantine bool) {
	inCycle := st.Phase != state.PhaseIdle || st.CordonedByUs || st.LBExcludedByUs
	if st.LBExcludedByUs {
		delete(node.Labels, state.LabelExcludeFromLB)
	}
	if inCycle && len(a.cfg.Labels.Post) > 0 {
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		maps.Copy(node.Labels, a.cfg.Labels.Post)
	}
	if quarantine {
		if node.Labels == nil {
			node.Labels = map[string]string{}
		}
		node.Labels[state.LabelQuarantined] = "true"
	}
}

// gateExpired undoes a cycle whose approval did not come, and holds the node
// for the drain back-off before the next try, which asks anew.
func (a *Agent) gateExpired(ctx context.Context, step Step) error {
	retry := a.cfg.Clock().Add(a.cfg.DrainRetryBackoff)
	err := a.endCycleWith(ctx, endOptions{release: true}, func(st *state.Node) { st.RetryAfter = retry })
	if err != nil {
		return err
	}
	a.warn("ApprovalTimedOut", "%s; retrying after %s", step.Reason, retry.Format(time.RFC3339))
	return nil
}
