package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
	"github.com/nodepatch/nodepatch/test/harness"
)

// TestBlockingPodsHoldTheCycle: a pod matching --blocking-pod-selector on the
// node keeps the cycle from starting, with an Event naming it; once it is gone
// the node reboots.
func TestBlockingPodsHoldTheCycle(t *testing.T) {
	c := newCluster(t, setup{nodes: 1, flags: []string{"--blocking-pod-selector=app=backup", "--period=1s"}})
	node := nodeName(0)
	c.addWorkload(node, "backup", 1, 1)
	c.needReboot(node)

	msg := c.waitEvent(node, "RebootBlocked")
	require.Contains(t, msg, "default/backup-0", "the Event does not name the blocking pod")
	require.False(t, nodeops.HasTaint(c.node(node)), "tainted while a blocking pod runs")
	require.Zero(t, c.sup.Reboots(node))

	require.NoError(t, c.client.CoreV1().Pods("default").Delete(c.ctx, "backup-0", metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}))
	c.waitRebooted(1, node)
	require.Empty(t, c.watcher.Violations())
}

// TestHealthGateHoldsTheSlotUntilHealthy: back from its reboot the node is in
// service at once (untainted, uncordoned) but keeps its slot while a pod of
// --ready-pod-selector on it is not Ready, so the next node waits; when the
// pod turns Ready and the soak has passed, the slot goes on.
func TestHealthGateHoldsTheSlotUntilHealthy(t *testing.T) {
	c := newCluster(t, setup{nodes: 2, flags: []string{"--ready-pod-selector=app=ingress", "--soak=2s", "--health-timeout=3m"}})
	first, second := nodeName(0), nodeName(1)
	c.addDaemonSetPod(first, "ingress")
	c.setPodReady("ingress-"+first, false)
	c.needReboot(first)
	c.waitFor(first+" verifying after its reboot", 2*time.Minute, func() bool { return c.phase(first) == state.PhaseVerifying })
	c.needReboot(second)

	n := c.node(first)
	require.False(t, nodeops.HasTaint(n), "still tainted while verifying")
	require.False(t, n.Spec.Unschedulable, "still cordoned while verifying")
	require.True(t, c.holds(first), "the slot went on before the node was healthy")
	require.Equal(t, 1, c.sup.Reboots(first))
	c.waitFor(second+" waiting for the slot", time.Minute, func() bool { return len(c.events(second, "WaitingForLock")) > 0 })
	require.Zero(t, c.sup.Reboots(second), "the second node rebooted while the first was not healthy")

	c.setPodReady("ingress-"+first, true)
	c.waitRebooted(1, first, second)
	require.Contains(t, strings.Join(c.events(first, "RebootSucceeded"), "\n"), "healthy after the reboot and a soak of 2s")
	require.Empty(t, c.watcher.Violations())
	holders, out := c.watcher.Limits()
	require.LessOrEqual(t, holders, 1)
	require.LessOrEqual(t, out, 1)
}

// addDaemonSetPod puts a pod on node owned by a DaemonSet named app, as the
// DaemonSet controller would (none runs here): drain leaves it in place.
func (c *cluster) addDaemonSetPod(node, app string) {
	c.t.Helper()
	ds, err := c.client.AppsV1().DaemonSets("default").Get(c.ctx, app, metav1.GetOptions{})
	if err != nil {
		ds, err = c.client.AppsV1().DaemonSets("default").Create(c.ctx, &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: "default"},
			Spec: appsv1.DaemonSetSpec{
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
					Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
				},
			},
		}, metav1.CreateOptions{})
		require.NoError(c.t, err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: app + "-" + node, Namespace: "default", Labels: map[string]string{"app": app},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(ds, appsv1.SchemeGroupVersion.WithKind("DaemonSet"))}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "app"}},
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
	}
	_, err = c.client.CoreV1().Pods("default").Create(c.ctx, pod, metav1.CreateOptions{})
	require.NoError(c.t, err)
	c.waitFor(pod.Name+" Ready", time.Minute, func() bool { return c.podReady(pod.Name) })
}

func (c *cluster) podReady(name string) bool {
	p, err := c.client.CoreV1().Pods("default").Get(c.ctx, name, metav1.GetOptions{})
	require.NoError(c.t, err)
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// setPodReady sets a pod's Ready condition as its kubelet would. kwok makes a
// pod Ready once, when it has no IP yet, and leaves it alone after that.
func (c *cluster) setPodReady(name string, ready bool) {
	c.t.Helper()
	p, err := c.client.CoreV1().Pods("default").Get(c.ctx, name, metav1.GetOptions{})
	require.NoError(c.t, err)
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	for i, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady || cond.Type == corev1.ContainersReady {
			p.Status.Conditions[i].Status = status
		}
	}
	_, err = c.client.CoreV1().Pods("default").UpdateStatus(c.ctx, p, metav1.UpdateOptions{})
	require.NoError(c.t, err)
	c.waitFor(name+" readiness set", 10*time.Second, func() bool { return c.podReady(name) == ready })
}

// TestPrometheusAlertHoldsTheCycle runs a real Prometheus whose rules really
// fire: an alert on this node holds its cycle until it resolves; an alert
// scoped to another node (--alert-label-matchers with $NODE) and a filtered
// Watchdog do not hold it; the other node stays held by its own alert.
func TestPrometheusAlertHoldsTheCycle(t *testing.T) {
	requireFile(t, prometheusPath)
	maintenance := &gauge{}
	exporter := httptest.NewServer(maintenance)
	t.Cleanup(exporter.Close)
	rules := []byte(`groups:
- name: e2e
  rules:
  - alert: Watchdog
    expr: vector(1)
    labels: {severity: critical}
  - alert: NodeMaintenance
    expr: e2e_maintenance == 1
    labels: {severity: critical, node: node-0}
  - alert: DiskFull
    expr: vector(1)
    labels: {severity: critical, node: node-1}
  - alert: MinorThing
    expr: vector(1)
    labels: {severity: info, node: node-0}
`)
	p := harness.StartPrometheusT(t, harness.PrometheusOptions{
		Binary: prometheusPath, RuleFiles: map[string][]byte{"e2e.rules.yaml": rules},
		Jobs: []harness.ScrapeJob{{Name: "e2e", Targets: []string{strings.TrimPrefix(exporter.URL, "http://")}}},
	})
	prom := &prometheus{url: p.URL}
	maintenance.set(1)
	c := newCluster(t, setup{nodes: 2, flags: []string{"--prometheus-url=" + p.URL, "--alert-filter-regexp=^Watchdog$",
		`--alert-label-matchers=severity="critical",node=~"$NODE"`, "--alert-firing-only", "--period=1s"}})
	c.waitFor("NodeMaintenance and DiskFull firing", time.Minute, func() bool {
		alerts := prom.alerts(t)
		return hasAlert(alerts, "firing", map[string]string{"alertname": "NodeMaintenance"}) &&
			hasAlert(alerts, "firing", map[string]string{"alertname": "DiskFull"})
	})
	c.needReboot(nodeName(0), nodeName(1))
	require.Contains(t, c.waitEvent(nodeName(0), "RebootBlocked"), "NodeMaintenance")
	msg := c.waitEvent(nodeName(1), "RebootBlocked")
	require.Contains(t, msg, "DiskFull")
	for _, other := range []string{"NodeMaintenance", "Watchdog", "MinorThing"} {
		require.NotContains(t, msg, other, "node-1 is held by an alert that is not its own")
	}

	maintenance.set(0)
	c.waitRebooted(1, nodeName(0))
	require.Zero(t, c.sup.Reboots(nodeName(1)), "node-1 rebooted while its alert fired")
	require.True(t, agentLogHas(c, nodeName(1), "DiskFull"))
	require.Empty(t, c.watcher.Violations())
}

// TestUnreachablePrometheusHolds: the safe side of not knowing is waiting.
func TestUnreachablePrometheusHolds(t *testing.T) {
	closed := freePortsT(t, 1)[0] // nothing listens there
	c := newCluster(t, setup{nodes: 1, flags: []string{fmt.Sprintf("--prometheus-url=http://127.0.0.1:%d", closed), "--prometheus-timeout=1s"}})
	c.needReboot(nodeName(0))
	require.Contains(t, c.waitEvent(nodeName(0), "RebootBlocked"), "holding while it cannot be asked")
	require.False(t, nodeops.HasTaint(c.node(nodeName(0))))
	require.Zero(t, c.sup.Reboots(nodeName(0)))
}

// TestKuredLockHoldsTheCycle: while kured runs beside nodepatch, its lock on
// its DaemonSet, in kured's own JSON, holds nodepatch's cycles; an expired
// holder in the multi-holder form does not.
func TestKuredLockHoldsTheCycle(t *testing.T) {
	c := newCluster(t, setup{nodes: 1, flags: []string{"--kured-daemonset=kube-system/kured", "--period=1s"}})
	// What kured 1.23 writes when node-7 takes its lock (json.Marshal of its
	// lock value: nodeID, metadata, created, TTL in nanoseconds).
	single := `{"nodeID":"node-7","metadata":{"unschedulable":false},"created":"` + time.Now().UTC().Format(time.RFC3339Nano) + `","TTL":0}`
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kured", Namespace: "kube-system",
			Annotations: map[string]string{"weave.works/kured-node-lock": single}},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"name": "kured"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"name": "kured"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "kured", Image: "kured"}}},
			},
		},
	}
	ds, err := c.client.AppsV1().DaemonSets("kube-system").Create(c.ctx, ds, metav1.CreateOptions{})
	require.NoError(t, err)
	c.needReboot(nodeName(0))
	require.Contains(t, c.waitEvent(nodeName(0), "RebootBlocked"), "kured's lock on DaemonSet kube-system/kured is held by node-7")
	require.Zero(t, c.sup.Reboots(nodeName(0)))

	expired := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339Nano)
	ds.Annotations["weave.works/kured-node-lock"] = `{"maxOwners":2,"locks":[{"nodeID":"node-7","metadata":{"unschedulable":true},"created":"` +
		expired + `","TTL":3600000000000}]}`
	_, err = c.client.AppsV1().DaemonSets("kube-system").Update(c.ctx, ds, metav1.UpdateOptions{})
	require.NoError(t, err)
	c.waitRebooted(1, nodeName(0))
	require.Empty(t, c.watcher.Violations())
}

// gauge serves e2e_maintenance with the value the test sets.
type gauge struct{ v atomic.Int64 }

func (g *gauge) set(v int64) { g.v.Store(v) }

func (g *gauge) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# TYPE e2e_maintenance gauge\ne2e_maintenance %d\n", g.v.Load())
}

// TestApprovalGates: the cycle waits at each gate, saying so on the Node,
// until `nodepatch approve` approves it for this cycle; an approval naming
// another cycle does not count.
func TestApprovalGates(t *testing.T) {
	c := newCluster(t, setup{nodes: 1, flags: []string{"--gate=ticket@before-drain", "--gate=smoke@after-reboot,timeout=3m"}})
	node := nodeName(0)
	c.addWorkload(node, "web", 1, 1)
	c.needReboot(node)
	c.waitFor(node+" waiting at gate ticket", time.Minute, func() bool { return c.node(node).Annotations[state.AnnotationWaitingForGate] == "ticket" })
	require.Contains(t, c.waitEvent(node, "WaitingForApproval"), "nodepatch approve node-0 ticket")
	require.Equal(t, 1, c.podsOn(node), "drained before the approval")

	approve := func(gate string) {
		out, err := exec.CommandContext(c.ctx, nodepatchBinary(t), "approve", node, gate, "--kubeconfig", c.kubeconfig).CombinedOutput()
		require.NoError(t, err, "nodepatch approve: %s", out)
		require.Contains(t, string(out), "approved "+gate+" for node "+node)
	}
	approve("ticket")
	c.waitFor(node+" back and waiting at gate smoke", 2*time.Minute, func() bool {
		return c.phase(node) == state.PhaseVerifying && c.node(node).Annotations[state.AnnotationWaitingForGate] == "smoke"
	})
	require.Equal(t, 1, c.sup.Reboots(node))
	require.False(t, c.node(node).Spec.Unschedulable, "cordoned while waiting for the after-reboot approval")

	stale := "2026-01-01T00:00:00Z"
	c.annotate(node, state.ApprovalAnnotation("smoke"), &stale)
	c.waitFor("the agent to see the stale approval", 10*time.Second, func() bool {
		return c.node(node).Annotations[state.ApprovalAnnotation("smoke")] == stale
	})
	require.Equal(t, state.PhaseVerifying, c.phase(node), "an approval of another cycle counted")
	require.True(t, c.holds(node))

	approve("smoke")
	c.waitRebooted(1, node)
	require.Empty(t, c.watcher.Violations())
}

// TestWindowTooShortForTheCycle: a window that is open but closes before a
// cycle as long as this node's recent ones would end holds the cycle; with no
// history the fallback (drain plus reboot timeout) fits, and the node goes.
func TestWindowTooShortForTheCycle(t *testing.T) {
	opened := time.Now().UTC().Add(-time.Hour)
	window := fmt.Sprintf(`--window=cron "%d %d * * *" 90m UTC`, opened.Minute(), opened.Hour())
	c := newCluster(t, setup{nodes: 1, flags: []string{window, "--period=1s"}})
	node := nodeName(0)
	long := "3600"
	c.annotate(node, state.AnnotationCycleDurations, &long)
	c.needReboot(node)
	require.Contains(t, c.waitEvent(node, "RebootBlocked"), "a cycle of about 1h0m0s would not end before the window closes")
	require.Zero(t, c.sup.Reboots(node))

	c.annotate(node, state.AnnotationCycleDurations, nil)
	c.waitRebooted(1, node)
	st, err := state.Parse(c.node(node).Annotations)
	require.NoError(t, err)
	require.Len(t, st.CycleDurations, 1, "the cycle's length was not remembered")
}

// TestDrainTimeoutQuarantinesAndNamesTheBudget: a drain a budget keeps from
// finishing ends in a quarantine: the Event names the pod and its budget, the
// node is undone and labelled, and no cycle starts until the label goes.
func TestDrainTimeoutQuarantinesAndNamesTheBudget(t *testing.T) {
	c := newCluster(t, setup{nodes: 1, flags: []string{"--drain-timeout=3s", "--drain-timeout-action=quarantine", "--drain-retry-backoff=1s"}})
	node := nodeName(0)
	c.addWorkload(node, "db", 1, 0) // a budget that allows no disruption
	c.needReboot(node)
	msg := c.waitEvent(node, "DrainTimedOut")
	require.Contains(t, msg, "pod default/db-0 (PodDisruptionBudget db allows 0 disruptions)")
	c.waitFor(node+" quarantined and undone", time.Minute, func() bool {
		n := c.node(node)
		return n.Labels[state.LabelQuarantined] == "true" && !n.Spec.Unschedulable && !nodeops.HasTaint(n) && !c.holds(node)
	})
	require.Contains(t, c.waitEvent(node, "RebootBlocked"), "quarantined")
	require.Zero(t, c.sup.Reboots(node))

	c.setDisruptionsAllowed("db", 1, 1)
	_, err := c.client.CoreV1().Nodes().Patch(c.ctx, node, types.MergePatchType,
		[]byte(`{"metadata":{"labels":{"`+state.LabelQuarantined+`":null}}}`), metav1.PatchOptions{})
	require.NoError(t, err)
	c.waitRebooted(1, node)
	require.Empty(t, c.watcher.Violations())
}

// TestForcedDrainAndCycleLabels: a drain a budget holds past its timeout, with
// --drain-timeout-action=force, deletes the pod and reboots; the pre-reboot
// label and the load balancer exclusion are on the node while it is out, the
// post-reboot label after, and the exclusion is gone.
func TestForcedDrainAndCycleLabels(t *testing.T) {
	c := newCluster(t, setup{nodes: 1, rebootTime: 4 * time.Second, flags: []string{"--drain-timeout=3s",
		"--drain-timeout-action=force", "--force-drain-grace-period=0",
		"--pre-reboot-node-labels=example.com/maintenance=rebooting", "--post-reboot-node-labels=example.com/maintenance=done"}})
	node := nodeName(0)
	c.addWorkload(node, "db", 1, 0) // a budget that allows no disruption
	c.needReboot(node)
	c.waitFor(node+" rebooting with its cycle labels", time.Minute, func() bool {
		n := c.node(node)
		return c.phase(node) == state.PhaseRebooting && n.Labels["example.com/maintenance"] == "rebooting" &&
			n.Labels[state.LabelExcludeFromLB] == "true"
	})
	require.Contains(t, c.waitEvent(node, "DrainForced"), "default/db-0")
	require.Zero(t, c.podsOn(node), "the forced drain left the pod")
	c.waitRebooted(1, node)
	n := c.node(node)
	require.Equal(t, "done", n.Labels["example.com/maintenance"])
	require.NotContains(t, n.Labels, state.LabelExcludeFromLB, "left out of the load balancers")
	require.Empty(t, c.watcher.Violations())
}
