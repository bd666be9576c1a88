package e2e

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
)

func TestOneNodeFullCycle(t *testing.T) {
	c := newCluster(t, setup{nodes: 1})
	c.addWorkload("node-0", "web", 3, 3)
	before, err := c.sup.Host("node-0").BootID()
	require.NoError(t, err)

	c.needReboot("node-0")
	c.waitRebooted(1, "node-0")

	after, err := c.sup.Host("node-0").BootID()
	require.NoError(t, err)
	require.NotEqual(t, before, after)
	n := c.node("node-0")
	require.False(t, n.Spec.Unschedulable, "left cordoned")
	require.False(t, nodeops.HasTaint(n), "left tainted")
	require.Equal(t, after, n.Status.NodeInfo.BootID)
	require.Zero(t, c.podsOn("node-0"), "the drain left pods behind")
	require.Contains(t, c.waitEvent("node-0", "RebootSucceeded"), "out of service for")
	require.Equal(t, 1, c.sup.Reboots("node-0"), "rebooted more than once")
	require.Equal(t, 1, c.watcher.MaxHolders())
}

// TestRollingRebootRespectsConcurrency: 8 nodes, 2 at a time. The watcher, not the
// agents, says how many held the lock or were out of service at once.
func TestRollingRebootRespectsConcurrency(t *testing.T) {
	c := newCluster(t, setup{nodes: 8, concurrency: 2})
	var names []string
	for i := range 8 {
		names = append(names, nodeName(i))
		c.addWorkload(nodeName(i), "app-"+nodeName(i), 2, 2)
	}
	c.needReboot(names...)
	c.waitRebooted(1, names...)

	require.LessOrEqual(t, c.watcher.MaxHolders(), 2, "more lock holders at once than the concurrency")
	require.LessOrEqual(t, c.watcher.MaxCordoned(), 2, "more nodes out of service at once than the concurrency")
	require.Equal(t, 2, c.watcher.MaxHolders(), "the rollout never used both slots")
	for _, n := range names {
		require.Equal(t, 1, c.sup.Reboots(n), "%s rebooted more than once", n)
		node := c.node(n)
		require.False(t, node.Spec.Unschedulable, "%s left cordoned", n)
		require.False(t, nodeops.HasTaint(node), "%s left tainted", n)
	}
}

// TestDrainBlockedByPDBUndoesEverything: a budget that allows no disruption makes
// the drain time out; the node is uncordoned, untainted, the slot released and an
// Event says why. It does not reboot.
func TestDrainBlockedByPDBUndoesEverything(t *testing.T) {
	c := newCluster(t, setup{nodes: 1, flags: []string{"--drain-timeout=3s", "--drain-retry-backoff=1h"}})
	c.addWorkload("node-0", "db", 2, 0)
	c.needReboot("node-0")

	msg := c.waitEvent("node-0", "DrainFailed")
	require.Contains(t, msg, "uncordoned")
	c.waitFor("the node to be clean after the failed drain", 30*time.Second, func() bool {
		n := c.node("node-0")
		st, _ := state.Parse(n.Annotations)
		return !n.Spec.Unschedulable && !nodeops.HasTaint(n) && st.Phase == state.PhaseIdle && len(c.watcher.Holders()) == 0
	})
	st, _ := state.Parse(c.node("node-0").Annotations)
	require.Equal(t, 1, st.DrainFailures)
	require.True(t, st.RetryAfter.After(time.Now()), "no back-off recorded")
	require.Zero(t, c.sup.Reboots("node-0"), "rebooted after a failed drain")
	require.False(t, c.sup.Host("node-0").RebootRequested(), "asked for a reboot after a failed drain")
	require.Equal(t, 2, c.podsOn("node-0"), "the budget was broken")
}

// TestBlockedNodeWaitsWhileOthersGo: node-0 is blocked; node-1 and node-2 reboot;
// node-0 goes once unblocked.
func TestBlockedNodeWaitsWhileOthersGo(t *testing.T) {
	c := newCluster(t, setup{nodes: 3})
	reason := "database migration"
	c.annotate("node-0", state.AnnotationBlockReboot, &reason)
	c.needReboot("node-0", "node-1", "node-2")

	c.waitRebooted(1, "node-1", "node-2")
	require.Zero(t, c.sup.Reboots("node-0"), "a blocked node rebooted")
	require.Contains(t, c.waitEvent("node-0", "RebootBlocked"), reason)
	require.False(t, c.node("node-0").Spec.Unschedulable)

	c.annotate("node-0", state.AnnotationBlockReboot, nil)
	c.waitRebooted(1, "node-0")
	require.LessOrEqual(t, c.watcher.MaxHolders(), 1)
}

// TestPauseStopsNewCycles: while the lock is paused nothing starts; resuming lets
// the node go.
func TestPauseStopsNewCycles(t *testing.T) {
	c := newCluster(t, setup{nodes: 1})
	reason := "change freeze"
	c.pause(&reason)
	c.needReboot("node-0")
	require.Contains(t, c.waitEvent("node-0", "RebootBlocked"), reason)
	require.Zero(t, c.sup.Reboots("node-0"))
	require.Empty(t, c.watcher.Holders())

	c.pause(nil)
	c.waitRebooted(1, "node-0")
}

func TestForcedNodeRebootsWithoutSentinel(t *testing.T) {
	c := newCluster(t, setup{nodes: 2})
	force := "true"
	c.annotate("node-1", state.AnnotationForceReboot, &force)
	c.waitRebooted(1, "node-1")
	_, stillForced := c.node("node-1").Annotations[state.AnnotationForceReboot]
	require.False(t, stillForced, "the force annotation was not cleared")
	require.Zero(t, c.sup.Reboots("node-0"), "a node that needed nothing rebooted")
	require.Equal(t, 1, c.sup.Reboots("node-1"), "the forced node rebooted again")
}

func TestOperatorCordonSurvivesTheCycle(t *testing.T) {
	c := newCluster(t, setup{nodes: 1, noAgents: true})
	n := c.node("node-0")
	n.Spec.Unschedulable = true
	_, err := c.client.CoreV1().Nodes().Update(c.ctx, n, metav1.UpdateOptions{})
	require.NoError(t, err)
	require.NoError(t, c.sup.StartAgents())

	c.needReboot("node-0")
	c.waitRebooted(1, "node-0")
	n = c.node("node-0")
	require.True(t, n.Spec.Unschedulable, "nodepatch lifted a cordon it did not make")
	require.False(t, nodeops.HasTaint(n))
}

// TestAgentKilledMidDrainFinishesOnce: the agent dies while a budget holds its
// drain; restarted after the budget opens, it finishes the same cycle, and the
// host reboots exactly once.
func TestAgentKilledMidDrainFinishesOnce(t *testing.T) {
	c := newCluster(t, setup{nodes: 1, flags: []string{"--drain-timeout=60s"}})
	c.addWorkload("node-0", "cache", 2, 0)
	c.needReboot("node-0")
	c.waitFor("the drain to start", time.Minute, func() bool { return c.phase("node-0") == state.PhaseDraining })
	c.waitFor("an eviction attempt", 30*time.Second, func() bool { return agentLogHas(c, "node-0", "evicting pod") })
	require.NoError(t, c.sup.KillAgent("node-0"))

	n := c.node("node-0")
	require.True(t, n.Spec.Unschedulable, "the cordon should outlive the agent")
	require.Equal(t, state.PhaseDraining, c.phase("node-0"))
	c.setDisruptionsAllowed("cache", 2, 2)
	require.NoError(t, c.sup.StartAgent("node-0"))

	c.waitRebooted(1, "node-0")
	require.Equal(t, 1, c.sup.Reboots("node-0"), "rebooted more than once")
	require.Equal(t, 2, c.sup.AgentStarts("node-0")-1, "expected one restart by the test and one by the reboot")
}

// TestBootIDUnchangedFails: the host ignores the reboot; after two attempts the
// node is Failed, keeps its cordon and its slot, and an Event says so.
func TestBootIDUnchangedFails(t *testing.T) {
	c := newCluster(t, setup{nodes: 2, failReboot: true, flags: []string{"--reboot-timeout=2s"}})
	c.needReboot("node-0")
	c.waitFor("the Failed phase", time.Minute, func() bool { return c.phase("node-0") == state.PhaseFailed })

	require.Contains(t, c.waitEvent("node-0", "RebootFailed"), "boot id unchanged after 2 reboot attempts")
	require.GreaterOrEqual(t, c.sup.IgnoredRebootRequests("node-0"), 2)
	n := c.node("node-0")
	require.True(t, n.Spec.Unschedulable, "a node that failed to reboot was uncordoned")
	require.Equal(t, []string{"node-0"}, c.watcher.Holders(), "the slot was released after a failed reboot")

	// The halted slot stops the rollout: node-1 needs a reboot and must wait.
	c.needReboot("node-1")
	require.Contains(t, c.waitEvent("node-1", "WaitingForLock"), "node-0")
	require.False(t, c.node("node-1").Spec.Unschedulable)
}

func TestBadFlagsRefuseToStart(t *testing.T) {
	bin := nodepatchBinary(t)
	cases := map[string][]string{
		`--concurrency "0"`:                              {"--concurrency=0"},
		`--reboot-method "reboot-now"`:                   {"--reboot-method=reboot-now"},
		`--reboot-days: unknown day "mnday"`:             {"--reboot-days=mon,mnday"},
		`--start-time: "25:61"`:                          {"--start-time=25:61"},
		`--time-zone: unknown time zone "Mars/Olympus"`:  {"--time-zone=Mars/Olympus"},
		`--patch "some"`:                                 {"--patch=some"},
		`invalid argument "soon" for "--reboot-timeout"`: {"--reboot-timeout=soon"},
	}
	for want, args := range cases {
		cmd := exec.Command(bin, append([]string{"agent", "--node-name=n", "--namespace=ns"}, args...)...)
		out, err := cmd.CombinedOutput()
		require.Error(t, err, "started with %v", args)
		require.Contains(t, string(out), want, "for %v", args)
	}
}

// TestMalformedAnnotationKeepsAgentRunning: a bad force-reboot value gives an
// Event, is read as false, and the agent still reboots when the host asks.
func TestMalformedAnnotationKeepsAgentRunning(t *testing.T) {
	c := newCluster(t, setup{nodes: 1})
	bad := "yes please"
	c.annotate("node-0", state.AnnotationForceReboot, &bad)
	msg := c.waitEvent("node-0", "InvalidAnnotation")
	require.Contains(t, msg, `"yes please"`)
	require.Contains(t, msg, state.AnnotationForceReboot)
	require.True(t, c.sup.AgentRunning("node-0"))
	require.Zero(t, c.sup.Reboots("node-0"), "a malformed force value forced a reboot")

	c.needReboot("node-0")
	c.waitRebooted(1, "node-0")
	require.True(t, strings.Contains(c.node("node-0").Annotations[state.AnnotationForceReboot], "yes"),
		"the operator's annotation was changed")
}

// TestDryRunChangesNothing: the agent walks the whole path and says what it would
// do, but never takes the lock, cordons, taints or reboots.
func TestDryRunChangesNothing(t *testing.T) {
	c := newCluster(t, setup{nodes: 1, flags: []string{"--dry-run"}})
	c.addWorkload("node-0", "web", 2, 2)
	c.needReboot("node-0")

	c.waitFor("the dry run to reach the reboot", time.Minute, func() bool {
		for _, msg := range c.events("node-0", "DryRun") {
			if strings.Contains(msg, "would reboot the host now") {
				return true
			}
		}
		return false
	})
	msgs := strings.Join(c.events("node-0", "DryRun"), "\n")
	for _, want := range []string{"would take a lock slot", "would taint", "would evict 2 pods", "default/web-0"} {
		require.Contains(t, msgs, want)
	}
	n := c.node("node-0")
	require.False(t, n.Spec.Unschedulable, "a dry run cordoned")
	require.False(t, nodeops.HasTaint(n), "a dry run tainted")
	require.Empty(t, n.Annotations[state.AnnotationPhase], "a dry run wrote a phase")
	require.Zero(t, c.watcher.MaxHolders(), "a dry run took the lock")
	require.Zero(t, c.watcher.MaxCordoned())
	require.False(t, c.sup.Host("node-0").RebootRequested(), "a dry run rebooted")
	require.Equal(t, 2, c.podsOn("node-0"), "a dry run evicted pods")
}

// TestStatusShowsPhasesAndHolders runs `nodepatch status` on a cluster where one
// node failed to reboot and holds the lock, and another is blocked.
func TestStatusShowsPhasesAndHolders(t *testing.T) {
	c := newCluster(t, setup{nodes: 2, failReboot: true, flags: []string{"--reboot-timeout=1s"}})
	reason := "kernel regression"
	c.annotate("node-1", state.AnnotationBlockReboot, &reason)
	c.needReboot("node-0")
	c.waitFor("the Failed phase", time.Minute, func() bool { return c.phase("node-0") == state.PhaseFailed })

	out, err := exec.Command(nodepatchBinary(t), "status", "--kubeconfig", c.kubeconfig, "-n", namespace).CombinedOutput()
	require.NoError(t, err, string(out))
	text := string(out)
	require.Contains(t, text, "1 of 1 slots held")
	require.Regexp(t, `node-0\s+Failed\s+true\s+by nodepatch\s+held`, text)
	require.Regexp(t, `node-1\s+Idle\s+true\s+no\s+-\s+kernel regression`, text)
	require.Contains(t, text, "remove annotation nodepatch.io/phase to retry")
}

// TestWindowHoldsTheReboot: outside the maintenance window the node waits and
// says until when; with a window that is open now, it goes.
func TestWindowHoldsTheReboot(t *testing.T) {
	opens := time.Now().UTC().Add(2 * time.Hour)
	closed := []string{"--start-time=" + opens.Format("15:04"), "--end-time=" + opens.Add(time.Hour).Format("15:04"),
		"--reboot-days=" + strings.ToLower(opens.Format("Mon"))}
	c := newCluster(t, setup{nodes: 1, nodeFlags: map[string][]string{"node-0": closed}})
	c.needReboot("node-0")
	msg := c.waitEvent("node-0", "RebootBlocked")
	require.Contains(t, msg, "outside the maintenance window until "+opens.Format("2006-01-02T15:04"))
	require.Zero(t, c.sup.Reboots("node-0"))
	require.Empty(t, c.watcher.Holders())

	require.NoError(t, c.sup.SetAgentFlags("node-0", []string{"--reboot-days=" + strings.ToLower(time.Now().UTC().Format("Mon"))}))
	require.NoError(t, c.sup.RestartAgent("node-0"))
	c.waitRebooted(1, "node-0")
}
