package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
)

func TestAfterDrainTimeout(t *testing.T) {
	cases := []struct {
		choice        DrainTimeoutAction
		rebootAnyway  bool
		forcedAlready bool
		want          DrainTimeoutAction
	}{
		{DrainRetry, false, false, DrainRetry},
		{"", false, false, DrainRetry},
		{DrainQuarantine, false, false, DrainQuarantine},
		{DrainForce, false, false, DrainForce},
		{DrainForce, false, true, DrainRetry},
		{DrainQuarantine, true, false, DrainReboot},
		{DrainRetry, true, false, DrainReboot},
	}
	for _, c := range cases {
		require.Equal(t, c.want, AfterDrainTimeout(c.choice, c.rebootAnyway, c.forcedAlready), "%+v", c)
	}
}

func TestDecideDelays(t *testing.T) {
	cordoned := obs(func(o *Observation) {
		drained(o)
		o.Node.State.Drained, o.Node.State.CycleStarted = false, t0.Add(-time.Minute)
		o.Limits.DrainDelay = 5 * time.Minute
	})
	step := Decide(cordoned)
	require.Equal(t, ActWait, step.Action, step.Reason)
	require.Equal(t, t0.Add(4*time.Minute), step.Until)
	require.Contains(t, step.Reason, "--drain-delay")

	cordoned.Now = t0.Add(4 * time.Minute)
	require.Equal(t, ActDrain, Decide(cordoned).Action)

	justDrained := obs(func(o *Observation) {
		drained(o)
		o.Node.State.DrainedAt = t0.Add(-time.Second)
		o.Limits.RebootDelay = time.Minute
	})
	step = Decide(justDrained)
	require.Equal(t, ActWait, step.Action, step.Reason)
	require.Equal(t, t0.Add(59*time.Second), step.Until)
	justDrained.Now = t0.Add(time.Minute)
	require.Equal(t, ActReboot, Decide(justDrained).Action)

	blocked := justDrained
	blocked.Node.State.BlockReason = "stop"
	require.Equal(t, ActAbortCycle, Decide(blocked).Action, "a block during the reboot delay must stop the cycle")
}

func TestQuarantinedNodeIsHeld(t *testing.T) {
	step := Decide(obs(func(o *Observation) { o.Node.Quarantined = true }))
	require.Equal(t, ActWait, step.Action)
	require.Equal(t, []string{BlockQuarantined}, step.Blocked)
	require.Contains(t, step.Reason, state.LabelQuarantined)
}

func timedOut(context.Context) error {
	return fmt.Errorf("draining node %s: %w after 1s: a budget allows no disruption", testNode, nodeops.ErrDrainTimeout)
}

// TestDrainTimeoutQuarantines: the node is undone, labelled, released, and
// held until the label goes.
func TestDrainTimeoutQuarantines(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.holdSlot()
	w.drain = timedOut
	w.cfg = func(c *Config) { c.DrainTimeoutAction = DrainQuarantine }
	a := w.agent()
	a.reconcile(context.Background())
	w.requireClean()
	require.Equal(t, "true", w.node().Labels[state.LabelQuarantined])
	require.Contains(t, allEvents(w.events), "Quarantined")

	a.reconcile(context.Background())
	require.Len(t, w.drains, 1, "a quarantined node drained again")
	require.Equal(t, 1.0, w.blocked(BlockQuarantined))

	n := w.node()
	delete(n.Labels, state.LabelQuarantined)
	_, err := w.client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
	require.NoError(t, err)
	w.drain = nil
	w.now = w.now.Add(2 * time.Hour) // past the drain back-off
	a.reconcile(context.Background())
	require.Equal(t, 1, w.rebooter.calls, "the node did not go once the operator removed the label")
}

// TestDrainTimeoutForces: a second drain deletes the pods left, with the
// configured grace period, and the cycle goes on to the reboot.
func TestDrainTimeoutForces(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.holdSlot()
	w.drain = func(ctx context.Context) error {
		if len(w.drains) == 1 {
			return timedOut(ctx)
		}
		return nil
	}
	w.cfg = func(c *Config) { c.DrainTimeoutAction, c.ForceDrainGrace = DrainForce, 7 }
	w.agent().reconcile(context.Background())
	require.Len(t, w.drains, 2)
	require.False(t, w.drains[0].DisableEviction, "the first drain must evict, so budgets hold")
	require.True(t, w.drains[1].DisableEviction)
	require.Equal(t, 7, w.drains[1].GracePeriod)
	require.Equal(t, 1, w.rebooter.calls)
	require.Contains(t, allEvents(w.events), "DrainForced")
}

// TestCycleLabels: pre-reboot labels and the load balancer exclusion while
// out, post-reboot labels after, and an operator's own exclusion kept.
func TestCycleLabels(t *testing.T) {
	for _, operatorExcluded := range []bool{false, true} {
		t.Run(fmt.Sprintf("operator excluded %t", operatorExcluded), func(t *testing.T) {
			w := newWorld(t, state.Node{})
			if operatorExcluded {
				n := w.node()
				n.Labels = map[string]string{state.LabelExcludeFromLB: "operator"}
				_, err := w.client.CoreV1().Nodes().Update(context.Background(), n, metav1.UpdateOptions{})
				require.NoError(t, err)
			}
			w.holdSlot()
			w.cfg = func(c *Config) {
				c.Labels = NodeLabels{Pre: map[string]string{"status": "rebooting"}, Post: map[string]string{"status": "ready", "patched": "yes"},
					ExcludeFromLB: true}
			}
			w.rebooter.before = func() {
				l := w.node().Labels
				require.Equal(t, "rebooting", l["status"], "pre-reboot label missing at the reboot")
				require.Contains(t, l, state.LabelExcludeFromLB, "still in the load balancers at the reboot")
			}
			w.agent().reconcile(context.Background())
			require.Equal(t, 1, w.rebooter.calls)

			w.bootedInto("boot-b")
			w.agent().reconcile(context.Background())
			w.requireClean()
			l := w.node().Labels
			require.Equal(t, "ready", l["status"])
			require.Equal(t, "yes", l["patched"])
			if operatorExcluded {
				require.Equal(t, "operator", l[state.LabelExcludeFromLB], "the operator's own exclusion was removed")
			} else {
				require.NotContains(t, l, state.LabelExcludeFromLB, "left out of the load balancers")
			}
			require.False(t, w.state().LBExcludedByUs)
		})
	}
}
