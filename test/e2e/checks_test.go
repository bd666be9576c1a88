package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
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
