package chaos

import (
	"context"
	"fmt"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodepatch/nodepatch/test/faultproxy"
	"github.com/nodepatch/nodepatch/test/sim"
)

// writeKill is an armed kill-after-write fault: the writer of the n-th next
// write of kind dies right after it.
type writeKill struct {
	kind    string
	left    int
	restart time.Duration
	expires time.Time
}

// armWindow is how long an armed kill waits for its write.
const armWindow = 15 * time.Second

// playSchedule injects each fault at its time (sleeping in between is the
// schedule, not a wait for a condition), waits for the faults with a
// duration to be undone, and stops the proxy's faults.
func (r *run) playSchedule(ctx context.Context) {
	start := time.Now()
	for i, e := range r.cfg.events {
		if !sleepCtx(ctx, time.Until(start.Add(e.at))) {
			break
		}
		r.logf("fault: %s", e)
		r.faultsWG.Add(1)
		go func() {
			defer r.faultsWG.Done()
			r.inject(ctx, i, e)
		}()
	}
	sleepCtx(ctx, time.Until(start.Add(r.cfg.window)))
	r.faultsWG.Wait()
	r.mu.Lock()
	r.armed = nil
	r.mu.Unlock()
	r.proxy.ClearFaults()
	r.background.Wait()
	r.logf("faults over after %s", time.Since(start).Round(100*time.Millisecond))
}

func (r *run) inject(ctx context.Context, i int, e event) {
	if err := r.injectFault(ctx, i, e); err != nil {
		r.harnessErr(fmt.Errorf("fault %s: %w", e, err))
	}
}

func (r *run) injectFault(ctx context.Context, i int, e event) error {
	switch e.kind {
	case faultKill:
		r.count(e.kind)
		return r.killAndRestart(e.node, e.dur)
	case faultKillAfterWrite:
		r.mu.Lock()
		r.armed = append(r.armed, &writeKill{kind: e.writeKind, left: e.n, restart: e.dur, expires: time.Now().Add(armWindow)})
		r.mu.Unlock()
		return nil // counted when it fires
	case faultAPIErrors:
		return r.proxyFaults(ctx, e, faultproxy.Faults{ErrorRate: e.rate})
	case faultAPIDelay:
		d, err := time.ParseDuration(e.sub)
		if err != nil {
			return err
		}
		return r.proxyFaults(ctx, e, faultproxy.Faults{Delay: d})
	case faultDropWatches:
		r.count(e.kind)
		r.logf("%s: dropped %d watches", e.node, r.proxy.DropWatches(e.node))
		return nil
	case faultDropConns:
		r.count(e.kind)
		r.logf("%s: dropped %d connections", e.node, r.proxy.DropConnections(e.node))
		return nil
	case faultAPIServerRestart, faultEtcdRestart:
		return r.restartControlPlane(ctx, e)
	case faultReregister:
		return r.reregister(ctx, e.node)
	case faultLeaseDelete, faultLeaseEdit:
		return r.tamperLease(ctx, e)
	case faultLimitChange:
		return r.changeLimit(ctx, e.n, e.sub)
	case faultBlock:
		return r.toggleNodeAnnotation(ctx, e, sim.BlockAnnotation, "chaos: operator's maintenance")
	case faultForce:
		r.mu.Lock()
		r.forces[e.node]++
		r.mu.Unlock()
		return r.toggleNodeAnnotation(ctx, e, sim.ForceAnnotation, "true")
	case faultPause:
		return r.pause(ctx, e)
	case faultFailReboot:
		return r.failReboots(ctx, e)
	case faultPDB:
		return r.pdbBlock(ctx, i, e)
	case faultNeedReboot:
		r.count(e.kind)
		r.mu.Lock()
		r.sentinels[e.node]++
		r.mu.Unlock()
		return r.sup.Host(e.node).SetRebootRequired()
	case faultPersistentNeed:
		return r.persistentNeed(ctx, e)
	case faultKillController:
		return r.killLeader(ctx, e.dur) // counted when it kills
	}
	return fmt.Errorf("unknown fault kind %q", e.kind)
}

// killAndRestart kills the node's agent at once and has the "DaemonSet"
// start it again after restart, unless its host is rebooting meanwhile.
func (r *run) killAndRestart(node string, restart time.Duration) error {
	if err := r.sup.KillAgent(node); err != nil {
		return err
	}
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		if !sleepCtx(r.ctx, restart) { // the DaemonSet's restart delay
			return
		}
		if _, err := r.sup.StartAgentIfUp(node); err != nil {
			r.harnessErr(err)
		}
	}()
	return nil
}

// onWrite is the proxy's report of a write the API server accepted: an
// armed kill of that kind kills the writer now, before it sees the answer.
func (r *run) onWrite(w faultproxy.Write) {
	kill := r.takeArmed(w.Kind())
	if kill == nil {
		return
	}
	r.logf("%s: killed right after %s %s/%s", w.Node, w.Kind(), w.Namespace, w.Name)
	r.count(faultKillAfterWrite)
	// The listener is a node's agent or a controller replica.
	killer, kind := r.killAndRestart, w.Kind()
	if r.ctl.has(w.Node) {
		killer, kind = r.killControllerAndRestart, kind+" (controller)"
	}
	r.count(faultKillAfterWrite + ":" + kind)
	if err := killer(w.Node, kill.restart); err != nil {
		r.harnessErr(err)
	}
}

func (r *run) takeArmed(kind string) *writeKill {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	r.armed = slices.DeleteFunc(r.armed, func(k *writeKill) bool { return now.After(k.expires) })
	for i, k := range r.armed {
		if k.kind != kind {
			continue
		}
		if k.left--; k.left > 0 {
			return nil
		}
		r.armed = slices.Delete(r.armed, i, i+1)
		return k
	}
	return nil
}

// proxyFaults makes the node's or replica's (or, without one, everyone's)
// requests slow or failing for e.dur. The watches are dropped at the start:
// an idle agent sends little else, and its informers must list and watch
// again through the faults.
func (r *run) proxyFaults(ctx context.Context, e event, f faultproxy.Faults) error {
	r.count(e.kind)
	nodes := []string{e.node}
	if e.node == "" {
		nodes = r.listeners()
	}
	for _, n := range nodes {
		r.proxy.SetFaults(n, f)
		r.proxy.DropWatches(n)
	}
	sleepCtx(ctx, e.dur)
	for _, n := range nodes {
		r.proxy.SetFaults(n, faultproxy.Faults{})
	}
	return nil
}

func (r *run) restartControlPlane(ctx context.Context, e event) error {
	r.restarts.Lock()
	defer r.restarts.Unlock()
	r.count(e.kind)
	// While the watcher's informers list again they show a mix of moments.
	r.watcher.Blind()
	var err error
	if e.kind == faultEtcdRestart {
		err = r.cp.RestartEtcd(ctx, e.dur)
	} else {
		err = r.cp.RestartAPIServer(ctx, e.dur)
	}
	if err != nil {
		return err
	}
	catchCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	return r.watcher.CatchUp(catchCtx)
}

// reregister deletes the node's Node and registers it again mid-cycle. Its
// slot is free while the Node is gone, so the watcher is told.
func (r *run) reregister(ctx context.Context, node string) error {
	// Not while the API server restarts: the Node must come back.
	r.restarts.Lock()
	defer r.restarts.Unlock()
	r.count(faultReregister)
	r.watcher.SlotTampered(node)
	err := r.sup.ReregisterNode(ctx, node)
	r.watcher.SlotTampered(node)
	return err
}

// changeLimit changes the limit in force, as a helm upgrade does (every
// agent restarted, one after the other, with the new --concurrency of a new
// --config-generation) or as an operator editing the header Lease does; in
// controller mode, by restarting the controllers with a new
// --max-unavailable (changeControllerLimit). Until the new limit is in
// force the watcher holds the larger of the two.
func (r *run) changeLimit(ctx context.Context, limit int, how string) error {
	r.limitMu.Lock()
	defer r.limitMu.Unlock()
	r.mu.Lock()
	old := r.limit
	if limit == old {
		limit = old%3 + 1
	}
	r.generation++
	gen := r.generation
	r.mu.Unlock()
	r.count(faultLimitChange)
	r.logf("limit %d -> %d (generation %d, %s)", old, limit, gen, how)
	r.watcher.SetLimit(r.cfg.limitInForce(max(old, limit)))
	var err error
	inForce := true
	switch {
	case r.cfg.controller != nil:
		inForce, err = r.changeControllerLimit(ctx, limit, gen, how)
	case how == "header":
		err = r.editHeaderLimit(ctx, limit, gen)
	default:
		err = r.restartAgents(ctx, limit, gen)
	}
	r.mu.Lock()
	r.limit = limit
	r.mu.Unlock()
	if inForce {
		r.watcher.SetLimit(r.cfg.limitInForce(limit))
	}
	return err
}

// limitGrace is how long agents may act on the old limit after the header
// Lease changed: their informers see the change within it.
const limitGrace = 2 * time.Second

func (r *run) editHeaderLimit(ctx context.Context, limit int, gen int64) error {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:"%d",%q:"%d"}}}`, sim.LimitAnnotation, limit, sim.LimitGenAnnotation, gen)
	if err := r.patchLease(ctx, lockName, patch); err != nil {
		return err
	}
	sleepCtx(ctx, limitGrace)
	return nil
}

// restartAgents restarts every agent, one after the other, with the new
// --concurrency of a new --config-generation. Until every agent runs the new
// generation, the old limit may still be in force on some; the first one
// that starts writes the new one.
func (r *run) restartAgents(ctx context.Context, limit int, gen int64) error {
	for _, n := range r.cfg.nodes {
		if err := r.sup.SetAgentFlags(n, r.nodeFlags(n, limit, gen)); err != nil {
			return err
		}
		if err := r.sup.KillAgent(n); err != nil {
			return err
		}
		if _, err := r.sup.StartAgentIfUp(n); err != nil {
			return err
		}
		if !sleepCtx(ctx, 300*time.Millisecond) { // the rollout's pace
			return ctx.Err()
		}
	}
	return nil
}

// persistentNeed makes the node's need for a reboot survive its reboots:
// once the node has rebooted for it, the need stays for e.dur more, in which
// the agent must hold the node rather than reboot it again (a loop). Then
// the operator fixes the cause and the need goes.
func (r *run) persistentNeed(ctx context.Context, e event) error {
	r.count(e.kind)
	r.mu.Lock()
	r.sentinels[e.node]++
	r.mu.Unlock()
	host := r.sup.Host(e.node)
	if err := r.sup.SetPersistentNeed(e.node, true); err != nil {
		return err
	}
	if err := host.SetRebootRequired(); err != nil {
		return err
	}
	before := r.sup.Reboots(e.node)
	waitCtx, cancel := context.WithTimeout(ctx, persistentNeedWait)
	rebooted := r.watcher.WaitFor(waitCtx, func() bool { return r.sup.Reboots(e.node) > before }) == nil
	cancel()
	if rebooted {
		sleepCtx(ctx, e.dur) // the window a looping agent would reboot in
	}
	if err := r.sup.SetPersistentNeed(e.node, false); err != nil {
		return err
	}
	if !rebooted {
		r.logf("%s: not rebooted within %s of a need that survives reboots; the need stays", e.node, persistentNeedWait)
		return nil
	}
	return host.ClearRebootRequired()
}

// persistentNeedWait bounds the wait for the node's first reboot for a need
// that survives reboots (its turn may be long in coming under the faults).
const persistentNeedWait = 45 * time.Second

// toggleNodeAnnotation sets an annotation on the node, and takes it away
// after e.dur if the event has one.
func (r *run) toggleNodeAnnotation(ctx context.Context, e event, key, value string) error {
	r.count(e.kind)
	if err := r.patchNode(ctx, e.node, annotationPatch(key, &value)); err != nil {
		return err
	}
	if e.dur <= 0 {
		return nil
	}
	sleepCtx(ctx, e.dur)
	return r.patchNode(ctx, e.node, annotationPatch(key, nil))
}

func (r *run) pause(ctx context.Context, e event) error {
	r.count(e.kind)
	reason := "chaos: change freeze"
	if err := r.patchLease(ctx, lockName, annotationPatch(sim.PauseAnnotation, &reason)); err != nil {
		return err
	}
	sleepCtx(ctx, e.dur)
	return r.patchLease(ctx, lockName, annotationPatch(sim.PauseAnnotation, nil))
}

// failReboots makes the node's host ignore reboot requests for e.dur, and
// gives it a need so that it asks in that time.
func (r *run) failReboots(ctx context.Context, e event) error {
	r.count(e.kind)
	if err := r.sup.SetFailReboot(e.node, true); err != nil {
		return err
	}
	r.mu.Lock()
	r.sentinels[e.node]++
	r.mu.Unlock()
	if err := r.sup.Host(e.node).SetRebootRequired(); err != nil {
		return err
	}
	sleepCtx(ctx, e.dur)
	return r.sup.SetFailReboot(e.node, false)
}

func (r *run) pdbBlock(ctx context.Context, i int, e event) error {
	r.count(e.kind)
	app := fmt.Sprintf("blocked-%d", i)
	if err := r.blockEvictions(ctx, app, e.node); err != nil {
		return err
	}
	sleepCtx(ctx, e.dur)
	return r.unblockEvictions(ctx, app)
}

// patchNode merge-patches a Node as an operator's kubectl does, retrying
// while the API server is away.
func (r *run) patchNode(ctx context.Context, node, patch string) error {
	return r.retry(ctx, "patch node "+node, func() error {
		_, err := r.client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	})
}

func (r *run) patchLease(ctx context.Context, name, patch string) error {
	return r.retry(ctx, "patch lease "+name, func() error {
		_, err := r.client.CoordinationV1().Leases(namespace).Patch(ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err
	})
}

// retry runs an operator's action until it succeeds, within retryTimeout.
func (r *run) retry(ctx context.Context, what string, action func() error) error {
	ctx, cancel := context.WithTimeout(ctx, retryTimeout)
	defer cancel()
	var last error
	err := r.watcher.WaitFor(ctx, func() bool {
		last = action()
		return last == nil
	})
	if err != nil {
		return fmt.Errorf("%s: %w (last error: %v)", what, err, last)
	}
	return nil
}

func annotationPatch(key string, value *string) string {
	if value == nil {
		return fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, key)
	}
	return fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, *value)
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// sleepCtx sleeps d (a fault's duration, a restart delay) and reports
// whether ctx was still alive at the end.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
