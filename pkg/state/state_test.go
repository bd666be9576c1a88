package state

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	want := Node{Phase: PhaseRebooting, BootIDBefore: "b1", CordonedByUs: true, CycleStarted: at,
		RebootRequestedAt: at.Add(time.Second), RebootAttempts: 2, RetryAfter: at.Add(time.Hour), DrainFailures: 3, LastReboot: at, LastPatch: at}
	got, err := Parse(render(want.AgentAnnotations()))
	require.NoError(t, err)
	require.Equal(t, want, got)
}

func TestIdleNodeHasNoAgentAnnotations(t *testing.T) {
	require.Empty(t, render(Node{}.AgentAnnotations()))
}

func TestParseReportsEveryBadValue(t *testing.T) {
	got, err := Parse(map[string]string{
		AnnotationForceReboot:    "yes please",
		AnnotationPhase:          "Dancing",
		AnnotationRebootAttempts: "-1",
		AnnotationCycleStarted:   "yesterday",
		AnnotationBlockReboot:    "maintenance",
	})
	require.Error(t, err)
	for _, part := range []string{`nodepatch.io/force-reboot: "yes please"`, `nodepatch.io/phase: "Dancing"`,
		`nodepatch.io/reboot-attempts: "-1"`, `nodepatch.io/cycle-started: "yesterday"`} {
		require.Contains(t, err.Error(), part)
	}
	require.False(t, got.Force, "a malformed force value must not force")
	require.Equal(t, PhaseFailed, got.Phase, "a malformed phase must halt, not act")
	require.Equal(t, "maintenance", got.BlockReason)
}

func render(m map[string]*string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

// FuzzParse: any annotation values parse without panicking; what parses cleanly
// renders and parses back to the same state.
func FuzzParse(f *testing.F) {
	f.Add("true", "Rebooting", "2", "2026-11-22T10:00:00Z", "x")
	f.Add("yes", "", "-3", "not a time", "")
	f.Add("", "Failed", "99999999999999999999", "2026-02-30T25:00:00Z", "\x00")
	f.Fuzz(func(t *testing.T, force, phase, attempts, at, block string) {
		in := map[string]string{AnnotationForceReboot: force, AnnotationPhase: phase, AnnotationRebootAttempts: attempts,
			AnnotationCycleStarted: at, AnnotationRetryAfter: at, AnnotationBlockReboot: block, AnnotationCordonedByUs: force}
		st, err := Parse(in)
		if err != nil {
			return
		}
		again, err := Parse(render(st.AgentAnnotations()))
		require.NoError(t, err)
		st.Force, st.BlockReason = false, ""
		require.True(t, st.CycleStarted.Equal(again.CycleStarted))
		st.CycleStarted, again.CycleStarted = time.Time{}, time.Time{}
		st.RetryAfter, again.RetryAfter = st.RetryAfter.UTC(), again.RetryAfter.UTC()
		require.Equal(t, st.RetryAfter.UnixNano(), again.RetryAfter.UnixNano())
		st.RetryAfter, again.RetryAfter = time.Time{}, time.Time{}
		require.Equal(t, st, again)
	})
}
