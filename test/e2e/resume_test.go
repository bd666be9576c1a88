package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// TestResumesFromEveryPhase writes onto five nodes the state a crash leaves in
// each phase, as the agent itself would have written it, and only then starts the
// agents. Each must end its cycle the right way: clean, released, and rebooted
// exactly as often as that phase still needs.
func TestResumesFromEveryPhase(t *testing.T) {
	c := newCluster(t, setup{nodes: 5, concurrency: 5, noAgents: true})
	now := time.Now()
	inCycle := func(st state.Node) func(*corev1.Node) {
		return func(n *corev1.Node) {
			st.CordonedByUs, st.CycleStarted = true, now.Add(-time.Minute)
			nodeops.SetAgentState(n, st)
			nodeops.AddTaint(n, now)
			n.Spec.Unschedulable = true
		}
	}
	boot := func(node string) string {
		id, err := c.sup.Host(node).BootID()
		require.NoError(t, err)
		return id
	}
	cases := []struct {
		node        string
		holdsSlot   bool
		needsReboot bool
		seed        func(*corev1.Node)
		reboots     int
	}{
		// Killed mid-drain: drains again, reboots once.
		{"node-0", true, true, inCycle(state.Node{Phase: state.PhaseDraining}), 1},
		// Killed by the reboot itself (the common case): the boot id moved on, so
		// it only waits for Ready and finishes.
		{"node-1", true, false, inCycle(state.Node{Phase: state.PhaseRebooting, BootIDBefore: "the-boot-before",
			RebootRequestedAt: now, RebootAttempts: 1}), 0},
		// Killed after recording the reboot, before asking for it: asks once.
		{"node-2", true, true, inCycle(state.Node{Phase: state.PhaseRebooting, BootIDBefore: boot("node-2"),
			RebootRequestedAt: now, RebootAttempts: 1}), 1},
		// Killed after taking a slot, before the cycle, and no reboot is needed any more.
		{"node-3", true, false, func(*corev1.Node) {}, 0},
		// Killed after uncordoning, before clearing the record of its cordon.
		{"node-4", false, false, func(n *corev1.Node) {
			nodeops.SetAgentState(n, state.Node{CordonedByUs: true})
			nodeops.AddTaint(n, now)
			n.Spec.Unschedulable = true
		}, 0},
	}
	for i, tc := range cases {
		_, err := (&nodeops.Node{Client: c.client, Name: tc.node}).Update(c.ctx, func(n *corev1.Node) error { tc.seed(n); return nil })
		require.NoError(t, err)
		if tc.holdsSlot {
			holdSlot(t, c, i, tc.node)
		}
		if tc.needsReboot {
			c.needReboot(tc.node)
		}
	}
	require.NoError(t, c.sup.StartAgents())

	for _, tc := range cases {
		c.waitFor(tc.node+" to end clean", 90*time.Second, func() bool {
			n := c.node(tc.node)
			st, _ := state.Parse(n.Annotations)
			return st.Phase == state.PhaseIdle && !st.CordonedByUs && !nodeops.HasTaint(n) && !n.Spec.Unschedulable &&
				!c.holds(tc.node) && c.sup.Reboots(tc.node) >= tc.reboots
		})
	}
	for _, tc := range cases {
		require.Equal(t, tc.reboots, c.sup.Reboots(tc.node), "%s rebooted a wrong number of times", tc.node)
	}
	require.Contains(t, c.waitEvent("node-1", "RebootSucceeded"), "the-boot-before")
}

// holdSlot writes slot i of the lock as held by node, as TryAcquire would.
func holdSlot(t *testing.T, c *cluster, i int, node string) {
	t.Helper()
	at := metav1.NewMicroTime(time.Now())
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("nodepatch-lock-%d", i), Namespace: namespace,
			Labels: map[string]string{lock.LabelLock: "nodepatch-lock"}},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: &node, AcquireTime: &at, RenewTime: &at},
	}
	_, err := c.client.CoordinationV1().Leases(namespace).Create(c.ctx, lease, metav1.CreateOptions{})
	require.NoError(t, err)
}

// TestSurvivesAPIServerRestart: kube-apiserver goes away for a few seconds while
// node-0 is mid-drain (held by a budget) and node-1 waits for the lock. Whatever
// each agent met in the meantime (failed evictions, broken watches), the rollout
// must end with each node rebooted once, never two out of service at once, and
// nothing left cordoned.
func TestSurvivesAPIServerRestart(t *testing.T) {
	c := newCluster(t, setup{nodes: 2, flags: []string{"--drain-timeout=60s", "--drain-retry-backoff=1s"}})
	c.addWorkload("node-0", "db", 2, 0)
	c.needReboot("node-0")
	c.waitFor("node-0's drain", time.Minute, func() bool { return c.phase("node-0") == state.PhaseDraining })
	c.needReboot("node-1")
	c.waitEvent("node-1", "WaitingForLock")

	require.NoError(t, c.cp.RestartAPIServer(c.ctx, 3*time.Second))
	c.setDisruptionsAllowed("db", 2, 2)

	c.waitRebooted(1, "node-0", "node-1")
	require.Equal(t, 1, c.sup.Reboots("node-0"))
	require.Equal(t, 1, c.sup.Reboots("node-1"))
	require.LessOrEqual(t, c.watcher.MaxHolders(), 1)
	require.LessOrEqual(t, c.watcher.MaxCordoned(), 1)
	for _, n := range []string{"node-0", "node-1"} {
		node := c.node(n)
		require.False(t, node.Spec.Unschedulable, "%s left cordoned", n)
		require.False(t, nodeops.HasTaint(node), "%s left tainted", n)
	}
}
