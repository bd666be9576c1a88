package agent

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodepatch/nodepatch/pkg/host/packages"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// Patcher is the host's package manager.
type Patcher interface {
	Refresh(ctx context.Context) error
	Pending(ctx context.Context) (packages.Pending, error)
	Download(ctx context.Context, mode packages.Mode) (packages.Result, error)
	Upgrade(ctx context.Context, mode packages.Mode) (packages.Result, error)
}

// PatchSettings say what to patch, how often, and whether under the lock.
type PatchSettings struct {
	Mode     packages.Mode
	Interval time.Duration
	// UnderLock applies updates only while holding a slot, tainted, cordoned and
	// drained: for hosts where an upgrade restarts services.
	UnderLock bool
}

// patchState is the in-memory side of patching: updates downloaded and waiting
// for a slot. Losing it in a crash costs a download, nothing else: the last run
// time is on the Node, so the next run comes at once.
type patchState struct {
	ready bool
	// applied: this cycle applied the updates under the lock.
	applied bool
	// lastRound keeps a round from running again in this process before the
	// interval when recording it on the Node failed (the API server was away).
	lastRound time.Time
}

// runPatchRound looks for updates and downloads them. Without UnderLock it
// upgrades at once and the reboot detector takes it from there; with it, the
// cycle applies the updates after the drain. Either way the download happens
// before any slot is taken, so a slot is held as briefly as possible.
func (a *Agent) runPatchRound(ctx context.Context, obs Observation) {
	a.patch.lastRound = obs.Now
	mode := a.cfg.Patch.Mode
	pending, err := a.refreshPending(ctx)
	if err != nil {
		a.patchFailed(ctx, "looking for updates", err)
		return
	}
	names := pending.Packages
	if mode == packages.ModeSecurity {
		names = pending.SecurityPackages
	}
	if len(names) == 0 {
		a.cfg.Log.Info("no package updates to apply", "mode", mode, "excluded", pending.Excluded)
		a.recordPatchRun(ctx, true, 0, 0)
		return
	}
	a.normal("PatchStarted", "%d %s updates: %s", len(names), mode, summarize(names))
	if _, err := a.cfg.Patcher.Download(ctx, mode); err != nil {
		a.patchFailed(ctx, "downloading updates", err)
		return
	}
	if a.cfg.Patch.UnderLock {
		a.patch.ready = true
		a.normal("PatchDownloaded", "downloaded %d updates; applying them under the lock after the drain", len(names))
		return
	}
	a.applyPatch(ctx)
}

func (a *Agent) refreshPending(ctx context.Context) (packages.Pending, error) {
	if err := a.cfg.Patcher.Refresh(ctx); err != nil {
		return packages.Pending{}, err
	}
	pending, err := a.cfg.Patcher.Pending(ctx)
	if err != nil {
		return packages.Pending{}, err
	}
	a.cfg.Metrics.UpdatesPending.WithLabelValues("all").Set(float64(pending.All))
	a.cfg.Metrics.UpdatesPending.WithLabelValues("security").Set(float64(pending.Security))
	return pending, nil
}

// applyPatch upgrades and asks the host again whether it needs a reboot.
func (a *Agent) applyPatch(ctx context.Context) {
	a.patch.ready = false
	start := a.cfg.Clock()
	res, err := a.cfg.Patcher.Upgrade(ctx, a.cfg.Patch.Mode)
	if err != nil {
		a.patchFailed(ctx, "upgrading", err)
		return
	}
	a.cfg.Metrics.PackagesUpgraded.Add(float64(res.Count()))
	a.recordPatchRun(ctx, true, res.Count(), a.cfg.Clock().Sub(start))
	a.normal("PatchSucceeded", "upgraded %d packages in %s: %s", res.Count(), res.Duration.Round(time.Second), summarize(res.Packages))
	a.forgetHost()
}

func (a *Agent) patchFailed(ctx context.Context, what string, err error) {
	a.patch.ready = false
	a.recordPatchRun(ctx, false, 0, 0)
	a.warn("PatchFailed", "%s failed: %v", what, err)
}

// recordPatchRun keeps the run's time on the Node, so that a restarted agent does
// not patch again before the interval, and in the metrics.
func (a *Agent) recordPatchRun(ctx context.Context, ok bool, upgraded int, took time.Duration) {
	now := a.cfg.Clock()
	m := a.cfg.Metrics
	m.PatchLastRun.Set(float64(now.Unix()))
	m.PatchLastSuccess.Set(boolGauge(ok))
	m.PatchRuns.WithLabelValues(map[bool]string{true: "success", false: "failed"}[ok]).Inc()
	if took > 0 {
		m.PatchDuration.Observe(took.Seconds())
	}
	err := a.updateState(ctx, func(_ *corev1.Node, st *state.Node) { st.LastPatch = now })
	if err != nil {
		a.cfg.Log.Error("cannot record the patch run on the node", "err", err, "upgraded", upgraded)
	}
}

// summarize names up to ten packages, for Events.
func summarize(names []string) string {
	if len(names) <= 10 {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:10], ", "), len(names)-10)
}
