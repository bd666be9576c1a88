package agent

import (
	"context"
	"strings"
	"time"

	"github.com/nodepatch/nodepatch/pkg/state"
)

// dryRun walks the whole decision path on a copy of the node's state kept in
// memory: it says (in logs and Events) what it would do, changes nothing on the
// Node or the lock, and reboots nothing. After it would have rebooted, it rests
// for a period and walks again.
type dryRun struct {
	active    bool
	st        state.Node
	tainted   bool
	held      bool
	restUntil time.Time
}

// overlay shows decide the simulated cycle instead of the real, unchanged node.
func (d *dryRun) overlay(obs *Observation) {
	if !d.active {
		return
	}
	st := d.st
	st.Force, st.BlockReason = obs.Node.State.Force, obs.Node.State.BlockReason
	obs.Node.State = st
	obs.Node.Tainted = d.tainted
	obs.Lock.Held = d.held
}

func (d *dryRun) execute(ctx context.Context, a *Agent, obs Observation, step Step) (bool, error) {
	now := a.cfg.Clock()
	switch step.Action {
	case ActNone, ActWaitReady:
		return false, nil
	case ActWait:
		a.normalOnce("DryRun", "dry run: would wait: %s", step.Reason)
		return false, nil
	case ActAcquire:
		a.normal("DryRun", "dry run: would take a lock slot (%s)", obs.Lock.Holders)
		d.active, d.held = true, true
	case ActBeginCycle:
		a.normal("DryRun", "dry run: would taint %s and cordon (already cordoned: %t)", state.TaintKey, obs.Node.State.CordonedByUs)
		d.st.Phase, d.tainted = state.PhaseDraining, true
	case ActDrain:
		pods, err := a.cfg.Nodes.PodsToEvict(ctx, a.cfg.Drain)
		if err != nil {
			a.warn("DryRun", "dry run: the drain would fail: %v", err)
			*d = dryRun{restUntil: now.Add(jitter(a.cfg.Period))}
			return false, nil
		}
		a.normal("DryRun", "dry run: would evict %d pods: %s", len(pods), strings.Join(pods, ", "))
		d.st = state.Node{Phase: state.PhaseRebooting, BootIDBefore: obs.Host.BootID, RebootRequestedAt: now, RebootAttempts: 1}
	case ActReboot:
		a.normal("DryRun", "dry run: would reboot the host now (boot id %s), then wait for a new boot id and Ready, uncordon and release the slot", obs.Host.BootID)
		*d = dryRun{restUntil: now.Add(jitter(a.cfg.Period))}
		a.forgetHost()
		return false, nil
	default:
		a.normal("DryRun", "dry run: would %s: %s", step.Action, step.Reason)
		*d = dryRun{restUntil: now.Add(jitter(a.cfg.Period))}
		return false, nil
	}
	return true, nil
}
