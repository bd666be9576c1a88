package agent

import (
	"context"
	"time"

	"github.com/nodepatch/nodepatch/pkg/notify"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// Notifier sends notifications about the cycle (chat services, a webhook). It
// never blocks the cycle: Notify only queues.
type Notifier interface {
	Notify(notify.Event)
	Flush(ctx context.Context) error
}

// notifyFlushTimeout bounds the wait for the rebooting notification to go out
// before the host goes down with it.
const notifyFlushTimeout = 5 * time.Second

// notify queues one notification about the cycle that began at cycle.
func (a *Agent) notify(kind notify.Kind, cycle time.Time, reason string) {
	if a.cfg.Notifier == nil {
		return
	}
	a.cfg.Notifier.Notify(notify.Event{Kind: kind, Node: a.cfg.NodeName, Cycle: state.Node{CycleStarted: cycle}.CycleID(),
		Reason: reason, Time: a.cfg.Clock()})
}

func (a *Agent) flushNotifications(ctx context.Context) {
	if a.cfg.Notifier == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, notifyFlushTimeout)
	defer cancel()
	if err := a.cfg.Notifier.Flush(ctx); err != nil {
		a.cfg.Log.Warn("notifications may not have gone out before the reboot", "err", err)
	}
}

// noteBlocked tells, once, when a needed cycle has been held longer than
// BlockedLongAfter, and forgets it once the hold ends.
func (a *Agent) noteBlocked(obs Observation, step Step) {
	if len(step.Blocked) == 0 {
		a.blockedSince, a.blockedTold = time.Time{}, false
		return
	}
	if a.blockedSince.IsZero() {
		a.blockedSince = obs.Now
	}
	if !a.blockedTold && a.cfg.BlockedLongAfter > 0 && obs.Now.Sub(a.blockedSince) >= a.cfg.BlockedLongAfter {
		a.blockedTold = true
		a.notify(notify.BlockedLong, obs.Node.State.CycleStarted, step.Reason)
	}
}
