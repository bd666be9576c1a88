package chart_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// soakRefused renders the chart with the given soak and health timeout and
// says whether the chart refused the soak as not shorter than the timeout. Any
// other failure fails the test.
func soakRefused(t *testing.T, soak, timeout string) bool {
	t.Helper()
	_, stderr, err := ct.Run(t, ct.TemplateArgs(t, "--show-only", "templates/daemonset.yaml",
		"--set-string", "agent.health.soak="+soak, "--set-string", "agent.health.timeout="+timeout)...)
	if err == nil {
		return false
	}
	require.Contains(t, stderr, "is not shorter than agent.health.timeout", "soak %s, timeout %s", soak, timeout)
	return true
}

// TestSoakShorterThanHealthTimeout checks the chart's Go-duration arithmetic
// (nodepatch.goNanoseconds) through the check that uses it: the agent refuses a
// soak not shorter than its health timeout, so the chart does at render time.
func TestSoakShorterThanHealthTimeout(t *testing.T) {
	cases := []struct {
		soak, timeout string
		refused       bool
	}{
		{"0", "10m", false},
		{"0s", "1ns", false},
		{"9m59.999999999s", "10m", false},
		{"10m", "10m", true},
		{"600s", "10m", true},
		{"600000ms", "10m", true},
		{"599999999999ns", "10m", false},
		{"1h30m", "90m", true},
		{"1.5h", "90m", true},
		{"1.4999h", "90m", false},
		{"5399.999999999s", "1h30m", false},
		{"2m", "1m59.5s", true},
		{"1500us", "1.5ms", true},
		{"1499µs", "1.5ms", false},
		{"0.05s", "50ms", true},
		{"0.049s", "50ms", false},
		{"1h", "1h0m0.000000001s", false},
		// Leading zeros are decimal, as in Go, not octal.
		{"010s", "9s", true},
		{"1.09s", "1090ms", true},
	}
	for _, c := range cases {
		t.Run(c.soak+" vs "+c.timeout, func(t *testing.T) {
			require.Equal(t, c.refused, soakRefused(t, c.soak, c.timeout))
		})
	}
}

// FuzzSoakAgainstHealthTimeout: for any two durations as the agent's flags print
// them (time.Duration.String), the chart refuses the soak exactly when Go
// compares it not shorter than the health timeout. Each input runs helm, so the
// seeds run with go test and fuzzing is slow.
func FuzzSoakAgainstHealthTimeout(f *testing.F) {
	f.Add(int64(0), int64(time.Minute))
	f.Add(int64(10*time.Minute), int64(10*time.Minute))
	f.Add(int64(90*time.Minute-1), int64(90*time.Minute))
	f.Add(int64(1500*time.Microsecond), int64(1499*time.Microsecond))
	f.Add(int64(36*time.Hour+time.Nanosecond), int64(36*time.Hour))
	f.Fuzz(func(t *testing.T, soak, timeout int64) {
		// Into the durations the agent takes (a soak of 0 or more, a positive
		// timeout), bounded so that helm's int64 sums cannot overflow.
		const limit = uint64(1000 * time.Hour)
		s := time.Duration(uint64(soak) % limit)
		to := time.Duration(uint64(timeout)%limit + 1)
		require.Equal(t, s >= to, soakRefused(t, s.String(), to.String()), "soak %s, timeout %s", s, to)
	})
}
