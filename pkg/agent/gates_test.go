package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/state"
)

func TestParseGate(t *testing.T) {
	g, err := ParseGate("change-ticket@before-drain")
	require.NoError(t, err)
	require.Equal(t, Gate{Name: "change-ticket", Point: BeforeDrain, Timeout: DefaultGateTimeout, OnTimeout: GateAbort}, g)
	g, err = ParseGate("quiesce@before-reboot,timeout=15m,on-timeout=fail")
	require.NoError(t, err)
	require.Equal(t, Gate{Name: "quiesce", Point: BeforeReboot, Timeout: 15 * time.Minute, OnTimeout: GateFail}, g)
	for bad, want := range map[string]string{
		"ticket":                                  "want NAME@",
		"Ticket@before-drain":                     `gate name "Ticket"`,
		"t@during-drain":                          `point "during-drain"`,
		"t@after-reboot,timeout=0s":               `timeout "0s"`,
		"t@after-reboot,on-timeout=ignore":        `on-timeout "ignore"`,
		"t@after-reboot,colour=blue":              `option "colour=blue"`,
		strings.Repeat("a", 56) + "@after-reboot": "at most 55 characters",
	} {
		_, err := ParseGate(bad)
		require.ErrorContains(t, err, want, bad)
	}
	_, err = ParseGates([]string{"a@before-drain", "a@after-reboot"})
	require.ErrorContains(t, err, "gate a is given twice")
}

// FuzzParseGate: a gate that parses renders to a value that parses to it again.
func FuzzParseGate(f *testing.F) {
	f.Add("change-ticket@before-drain,timeout=2h,on-timeout=fail")
	f.Add("q@after-reboot")
	f.Add("@,=")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGate(s)
		if err != nil {
			return
		}
		again, err := ParseGate(g.String())
		require.NoError(t, err)
		require.Equal(t, g, again)
		require.LessOrEqual(t, len(state.ApprovalAnnotation(g.Name)), len("nodepatch.io/")+63)
	})
}

func gated(gates ...Gate) func(*Observation) {
	return func(o *Observation) { o.Limits.Gates = gates }
}

func TestDecideGates(t *testing.T) {
	ticket := Gate{Name: "ticket", Point: BeforeDrain, Timeout: time.Hour, OnTimeout: GateAbort}
	quiesce := Gate{Name: "quiesce", Point: BeforeReboot, Timeout: 10 * time.Minute, OnTimeout: GateFail}
	smoke := Gate{Name: "smoke", Point: AfterReboot, Timeout: 10 * time.Minute, OnTimeout: GateAbort}
	cordoned := func(o *Observation) {
		drained(o)
		o.Node.State.Drained, o.Node.State.CycleStarted = false, t0.Add(-time.Minute)
	}
	cycle := t0.Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	approve := func(gate, cycle string) func(*Observation) {
		return func(o *Observation) { o.Node.State.Approvals = map[string]string{gate: cycle} }
	}
	all := func(changes ...func(*Observation)) Observation {
		return obs(func(o *Observation) {
			for _, c := range changes {
				c(o)
			}
		})
	}
	cases := []struct {
		name   string
		obs    Observation
		action Action
		gate   string
	}{
		{"before the drain, not approved: wait", all(cordoned, gated(ticket)), ActWait, "ticket"},
		{"before the drain, approved for this cycle: drain", all(cordoned, gated(ticket), approve("ticket", cycle)), ActDrain, ""},
		{"before the drain, approved for an earlier cycle: wait", all(cordoned, gated(ticket), approve("ticket", "2026-11-01T00:00:00Z")), ActWait, "ticket"},
		{"before the drain, timed out: undo and retry later", all(cordoned, gated(ticket), func(o *Observation) { o.Now = t0.Add(time.Hour) }), ActGateExpired, "ticket"},
		{"before the drain, blocked meanwhile: abort", all(cordoned, gated(ticket), func(o *Observation) { o.Node.State.BlockReason = "x" }), ActAbortCycle, ""},
		{"before the reboot, not approved: wait", all(drained, gated(quiesce), func(o *Observation) { o.Node.State.DrainedAt = t0 }), ActWait, "quiesce"},
		{"before the reboot, timed out, on-timeout=fail: halt", all(drained, gated(quiesce), func(o *Observation) {
			o.Node.State.DrainedAt = t0.Add(-10 * time.Minute)
		}), ActFailGate, "quiesce"},
		{"before the reboot, approved: reboot", all(drained, gated(quiesce), func(o *Observation) {
			o.Node.State.Approvals = map[string]string{"quiesce": o.Node.State.CycleID()}
		}), ActReboot, ""},
		{"back with an after-reboot gate: back in service", all(rebooting, gated(smoke), func(o *Observation) {
			o.Host.BootID, o.Node.ReportedBootID = "boot-b", "boot-b"
		}), ActBackInService, ""},
		{"verifying, not approved: wait", all(verifying, gated(smoke)), ActWait, "smoke"},
		{"verifying, approved and soaked: finish", all(verifying, gated(smoke), func(o *Observation) {
			o.Now = t0.Add(5 * time.Minute)
			o.Node.State.Approvals = map[string]string{"smoke": o.Node.State.CycleID()}
		}), ActFinish, ""},
		{"verifying, timed out, abort: end the cycle", all(verifying, gated(smoke), func(o *Observation) { o.Now = t0.Add(10 * time.Minute) }), ActFinish, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			step := Decide(c.obs)
			require.Equal(t, c.action, step.Action, "reason: %s", step.Reason)
			require.Equal(t, c.gate, step.Gate)
			if c.action == ActWait {
				require.Equal(t, []string{BlockGate}, step.Blocked)
				require.False(t, step.Until.IsZero())
			}
		})
	}
}

// TestGateWaitIsShownAndApproved: the agent writes which gate it waits at; an
// approval of this cycle lets it go on; an expired gate undoes the cycle.
func TestGateWaitIsShownAndApproved(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.holdSlot()
	w.cfg = func(c *Config) {
		c.Limits.Gates = []Gate{{Name: "ticket", Point: BeforeDrain, Timeout: time.Hour, OnTimeout: GateAbort}}
	}
	a := w.agent()
	a.reconcile(context.Background())
	st := w.state()
	require.Equal(t, "ticket", st.WaitingForGate)
	require.Contains(t, st.Held, "waiting for approval ticket")
	require.Zero(t, len(w.drains), "drained before the approval")
	require.Contains(t, allEvents(w.events), "nodepatch approve node-a ticket")

	cycle := st.CycleID()
	w.annotate(state.ApprovalAnnotation("ticket"), &cycle)
	a.reconcile(context.Background())
	require.Equal(t, 1, w.rebooter.calls)
	require.Empty(t, w.state().WaitingForGate)
	require.Empty(t, w.state().Held)
}

func TestExpiredGateUndoesTheCycle(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.holdSlot()
	w.cfg = func(c *Config) {
		c.Limits.Gates = []Gate{{Name: "ticket", Point: BeforeDrain, Timeout: time.Minute, OnTimeout: GateAbort}}
	}
	a := w.agent()
	a.reconcile(context.Background())
	w.now = w.now.Add(2 * time.Minute)
	a.reconcile(context.Background())
	w.requireClean()
	require.False(t, w.state().RetryAfter.IsZero(), "an expired gate must back off before asking again")
	require.Contains(t, allEvents(w.events), "ApprovalTimedOut")
}

func TestCycleEndClearsItsApprovals(t *testing.T) {
	w := newWorld(t, state.Node{})
	w.holdSlot()
	w.cfg = func(c *Config) {
		c.Limits.Gates = []Gate{{Name: "ticket", Point: BeforeReboot, Timeout: time.Hour, OnTimeout: GateAbort}}
	}
	a := w.agent()
	a.reconcile(context.Background())
	cycle := w.state().CycleID()
	w.annotate(state.ApprovalAnnotation("ticket"), &cycle)
	a.reconcile(context.Background())
	require.Equal(t, 1, w.rebooter.calls)
	w.bootedInto("boot-b")
	w.agent().reconcile(context.Background())
	w.requireClean()
	require.NotContains(t, w.node().Annotations, state.ApprovalAnnotation("ticket"), "an approval outlived its cycle")
}
