package chaos

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/test/sim"
)

// retryPause keeps the operator from retrying a Failed node again before
// the watcher has seen the first retry.
const retryPause = 3 * time.Second

// settleAndCheck lets the world settle once the faults are over, acting as
// the operator for nodes that halted (it records why, then retries them),
// and then checks the end state from the API server itself.
func (r *run) settleAndCheck(ctx context.Context) {
	r.clearOperatorHolds(ctx)
	settleCtx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	retried := map[string]time.Time{}
	err := r.watcher.WaitFor(settleCtx, func() bool { return r.settled(settleCtx, retried) })
	if err != nil {
		r.watcher.AddViolation("the world did not settle within %s after the faults: %s", settleTimeout, r.describeNodes())
	}
	r.checkEnd(ctx)
}

// clearOperatorHolds takes back what an overlapping pair of faults may have
// left: every block and the pause.
func (r *run) clearOperatorHolds(ctx context.Context) {
	for _, n := range r.cfg.nodes {
		if err := r.patchNode(ctx, n, annotationPatch(sim.BlockAnnotation, nil)); err != nil {
			r.harnessErr(err)
		}
	}
	if err := r.patchLease(ctx, lockName, annotationPatch(sim.PauseAnnotation, nil)); err != nil {
		r.harnessErr(err)
	}
}

// settled reports whether every node is done: idle, clean, holding no slot
// and needing no reboot. A Failed node is a halt: its reason is recorded and
// the operator retries it (`kubectl annotate node N nodepatch.io/phase-`).
func (r *run) settled(ctx context.Context, retried map[string]time.Time) bool {
	all := true
	for _, n := range r.cfg.nodes {
		node := r.watcher.Node(n)
		if node == nil {
			all = false
			continue
		}
		if node.Annotations[sim.PhaseAnnotation] == "Failed" {
			all = false
			if time.Since(retried[n]) > retryPause {
				retried[n] = time.Now()
				r.retryFailed(ctx, n)
			}
			continue
		}
		if r.loopHeld(node) {
			all = false
			if time.Since(retried[n]) > retryPause {
				retried[n] = time.Now()
				r.releaseLoopHold(ctx, n)
			}
			continue
		}
		if !r.done(node) {
			all = false
		}
	}
	// The watcher's informers may lag or, after an API server restart, back
	// off for seconds: its word is confirmed with the API server.
	return all && r.liveDone(ctx)
}

// liveDone reads the Nodes and the lock from the API server and reports
// whether every node is done by them too.
func (r *run) liveDone(ctx context.Context) bool {
	nodes, err := r.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return false
	}
	seen := 0
	for i := range nodes.Items {
		if slices.Contains(r.cfg.nodes, nodes.Items[i].Name) {
			seen++
			if !r.done(&nodes.Items[i]) {
				return false
			}
		}
	}
	leases, err := r.client.CoordinationV1().Leases(namespace).List(ctx, metav1.ListOptions{LabelSelector: sim.LockLabel})
	if err != nil {
		return false
	}
	for i := range leases.Items {
		if slices.Contains(r.cfg.nodes, holderOf(&leases.Items[i])) {
			return false
		}
	}
	return seen == len(r.cfg.nodes)
}

// loopHeld: an idle node that needs a reboot and is held because its last
// reboot left the need in place (a suspected reboot loop).
func (r *run) loopHeld(node *corev1.Node) bool {
	a := node.Annotations
	return a[sim.PhaseAnnotation] == "" && a[sim.RepeatedAnnotation] != "" && a[sim.RepeatedAnnotation] != "0" &&
		r.sup.Host(node.Name).RebootRequired() && !r.watcher.HolderOf(node.Name)
}

// releaseLoopHold records why a node held itself after a reboot, then lets
// it go as the held Event says an operator may: by removing the count of
// repeated reboots. A need set by the schedule right after the node's last
// reboot looks like one that survived it.
func (r *run) releaseLoopHold(ctx context.Context, node string) {
	reasons := r.eventReasons(ctx, node)
	r.mu.Lock()
	r.halts[node] = append(r.halts[node], fmt.Sprintf("held after a reboot that left the need (Events: %s)", strings.Join(reasons, ", ")))
	r.mu.Unlock()
	r.logf("%s held as a suspected reboot loop (Events %v); the operator lets it go", node, reasons)
	if err := r.patchNode(ctx, node, annotationPatch(sim.RepeatedAnnotation, nil)); err != nil {
		r.harnessErr(err)
	}
}

func (r *run) done(node *corev1.Node) bool {
	a := node.Annotations
	return a[sim.PhaseAnnotation] == "" && a[sim.CordonedAnnotation] != "true" && a[sim.ForceAnnotation] != "true" &&
		!hasTaint(node, sim.RebootingTaint) && !r.watcher.HolderOf(node.Name) &&
		!r.sup.Host(node.Name).RebootRequired() && r.sup.AgentRunning(node.Name) && sim.IsReady(node)
}

// retryFailed records why a node halted (its Events) and retries it.
func (r *run) retryFailed(ctx context.Context, node string) {
	reasons := r.eventReasons(ctx, node)
	lost := r.lostAttempts(ctx, node)
	r.mu.Lock()
	r.failed[node]++
	why := fmt.Sprintf("Failed (Events: %s)", strings.Join(reasons, ", "))
	if lost > 0 {
		r.excused[node]++
		why += fmt.Sprintf("; %d of its reboot attempts never reached the host: its agent was killed in between", lost)
	}
	r.halts[node] = append(r.halts[node], why)
	r.mu.Unlock()
	r.logf("%s halted in Failed (Events %v); the operator retries it", node, reasons)
	if err := r.patchNode(ctx, node, annotationPatch(sim.PhaseAnnotation, nil)); err != nil {
		r.harnessErr(err)
	}
}

// lostAttempts counts the reboot attempts of a Failed node that never reached
// its host because its agent was killed between recording an attempt and
// asking (the agent records first, so that a successor never asks twice in one
// --reboot-timeout; docs/design.md, "What survives which crash"). Each lost
// attempt needs a restart of the agent not explained by a reboot, and one
// restart explains at most one attempt. An attempt recorded and never asked
// without such a restart is not excused: the halt then counts as unexplained.
func (r *run) lostAttempts(ctx context.Context, node string) int {
	n, err := r.client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		r.logf("%s: cannot read its reboot attempts: %v", node, err)
		return 0
	}
	attempts, _ := strconv.Atoi(n.Annotations[sim.AttemptsAnnotation])
	lost := attempts - r.sup.RebootRequestsThisBoot(node)
	restarts := r.sup.AgentStarts(node) - r.sup.Reboots(node) - 1
	r.mu.Lock()
	defer r.mu.Unlock()
	if lost <= 0 || restarts-r.restartsSpent[node] < lost {
		return 0
	}
	r.restartsSpent[node] += lost
	return lost
}

// eventReasons lists the distinct reasons of the Events about node.
func (r *run) eventReasons(ctx context.Context, node string) []string {
	list, err := r.client.CoreV1().Events(workloadNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return []string{"(events unreadable: " + err.Error() + ")"}
	}
	var reasons []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == node && !slices.Contains(reasons, e.Reason) {
			reasons = append(reasons, e.Reason)
		}
	}
	slices.Sort(reasons)
	return reasons
}

// checkEnd checks the end state from the API server (not a cache): nothing
// left tainted, cordoned by nodepatch or in a phase; the operator's cordons
// kept; no node holding a slot; every node rebooted as often as it needed.
func (r *run) checkEnd(ctx context.Context) {
	nodes, err := r.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		r.harnessErr(fmt.Errorf("end check: list nodes: %w", err))
		return
	}
	for i := range nodes.Items {
		r.checkEndNode(&nodes.Items[i])
	}
	leases, err := r.client.CoordinationV1().Leases(namespace).List(ctx, metav1.ListOptions{LabelSelector: sim.LockLabel})
	if err != nil {
		r.harnessErr(fmt.Errorf("end check: list leases: %w", err))
		return
	}
	for _, l := range leases.Items {
		if h := holderOf(&l); slices.Contains(r.cfg.nodes, h) {
			r.watcher.AddViolation("at the end %s holds slot %s", h, l.Name)
		}
	}
	r.checkReboots()
	r.checkHosts()
}

func (r *run) checkEndNode(node *corev1.Node) {
	name, a := node.Name, node.Annotations
	if hasTaint(node, sim.RebootingTaint) {
		r.watcher.AddViolation("at the end %s is left tainted", name)
	}
	if a[sim.CordonedAnnotation] == "true" {
		r.watcher.AddViolation("at the end %s is left cordoned by nodepatch", name)
	}
	if p := a[sim.PhaseAnnotation]; p != "" {
		r.watcher.AddViolation("at the end %s is left in phase %s", name, p)
	}
	operator := slices.Contains(r.cfg.operatorCordon, name)
	if operator && !node.Spec.Unschedulable {
		r.watcher.AddViolation("at the end the operator's cordon on %s is gone", name)
	}
	if !operator && node.Spec.Unschedulable {
		r.watcher.AddViolation("at the end %s is left unschedulable", name)
	}
}

// checkReboots: every node that needed a reboot rebooted, at most once per
// time the schedule made it need one (its sentinel set, or forced); more is
// a reboot loop or a doubled reboot. (That each need was met the settling
// saw: no sentinel or force was left.)
func (r *run) checkReboots() {
	for _, n := range r.cfg.nodes {
		need := 0
		if slices.Contains(r.cfg.needReboot, n) {
			need = 1
		}
		r.mu.Lock()
		most := need + r.sentinels[n] + r.forces[n]
		r.mu.Unlock()
		got := r.sup.Reboots(n)
		if got < need {
			r.watcher.AddViolation("%s needed a reboot and was not rebooted", n)
		}
		if got > most {
			r.watcher.AddViolation("%s rebooted %d times; at most %d were asked for", n, got, most)
		}
		r.mu.Lock()
		failed := r.failed[n]
		r.mu.Unlock()
		r.mu.Lock()
		excused := r.excused[n]
		r.mu.Unlock()
		if faults := r.failRebootFaults(n); failed > faults+excused {
			r.watcher.AddViolation("%s halted in Failed %d times under %d faults that made its reboots fail "+
				"and %d halts explained by kills between an attempt and its request", n, failed, faults, excused)
		}
	}
}

func (r *run) failRebootFaults(node string) int {
	n := 0
	for _, e := range r.cfg.events {
		if e.kind == faultFailReboot && e.node == node {
			n++
		}
	}
	return n
}

// checkHosts turns the supervisor's errors into findings: an agent that
// exited by itself is the agent's fault, anything else the harness's.
func (r *run) checkHosts() {
	err := r.sup.Err()
	if err == nil {
		return
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if strings.Contains(line, "exited by itself") {
			// The pid differs from run to run: one violation per cause.
			_, cause, _ := strings.Cut(line, "exited by itself: ")
			node := strings.Fields(strings.TrimPrefix(line, "agent of "))[0]
			r.watcher.AddViolation("the agent of %s exited by itself: %s", node, strings.TrimSuffix(cause, "; log ends:"))
		}
	}
	if !strings.Contains(err.Error(), "exited by itself") {
		r.harnessErr(err)
	}
}

// describeNodes is a one-line view of every node, for a run that did not settle.
func (r *run) describeNodes() string {
	var parts []string
	for _, n := range r.cfg.nodes {
		node := r.watcher.Node(n)
		if node == nil {
			parts = append(parts, n+": no Node")
			continue
		}
		a := node.Annotations
		parts = append(parts, fmt.Sprintf("%s: phase=%q taint=%t cordoned-by-us=%q unschedulable=%t force=%q holds=%t needs=%t agent=%t ready=%t",
			n, a[sim.PhaseAnnotation], hasTaint(node, sim.RebootingTaint), a[sim.CordonedAnnotation], node.Spec.Unschedulable,
			a[sim.ForceAnnotation], r.watcher.HolderOf(n), r.sup.Host(n).RebootRequired(), r.sup.AgentRunning(n), sim.IsReady(node)))
	}
	return strings.Join(parts, "; ")
}

func hasTaint(node *corev1.Node, key string) bool {
	return slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == key })
}
