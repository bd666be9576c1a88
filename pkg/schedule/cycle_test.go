package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestExpectedCycle(t *testing.T) {
	const m = time.Minute
	const fallback = 45 * m
	tests := []struct {
		name string
		past []time.Duration
		want time.Duration
	}{
		{"no history", nil, fallback},
		{"only bad records", []time.Duration{0, -m}, fallback},
		{"one cycle, shorter than the fallback", []time.Duration{10 * m}, 10 * m},
		{"the longest, not the latest", []time.Duration{10 * m, 30 * m, 12 * m}, 30 * m},
		{"bad records ignored", []time.Duration{10 * m, -3 * m, 0, 11 * m}, 11 * m},
		{"a long cycle counts for ten more",
			[]time.Duration{90 * m, 10 * m, 10 * m, 10 * m, 10 * m, 10 * m, 10 * m, 10 * m, 10 * m, 10 * m}, 90 * m},
		{"and then no more",
			[]time.Duration{90 * m, 10 * m, 10 * m, 10 * m, 10 * m, 10 * m, 10 * m, 10 * m, 10 * m, 10 * m, 11 * m}, 11 * m},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]time.Duration(nil), tc.past...)
			require.Equal(t, tc.want, ExpectedCycle(tc.past, fallback))
			require.Equal(t, before, tc.past, "the history is not changed")
		})
	}
}
