package schedule

import (
	"testing"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/stretchr/testify/require"
)

// This is why CronWindow feeds the library wall-clock readings in UTC rather
// than giving it the zone: left to itself, across Berlin's 2025 changes it
// skips a time in the skipped hour (30 March has no 02:30) and matches a
// repeated time twice (26 October has two). CronWindow opens at the jump
// and once, like a weekly window's start; see TestScheduleQueries.
func TestCronLibraryAloneMisreadsDaylightSaving(t *testing.T) {
	sched, err := cron.ParseStandard("CRON_TZ=Europe/Berlin 30 2 * * *")
	require.NoError(t, err)

	next := sched.Next(utc(t, "2025-03-29T12:00:00Z"))
	require.Equal(t, utc(t, "2025-03-31T00:30:00Z"), next.UTC(), "skips 30 March")

	first := sched.Next(utc(t, "2025-10-25T12:00:00Z"))
	second := sched.Next(first)
	require.Equal(t, utc(t, "2025-10-26T00:30:00Z"), first.UTC(), "02:30 CEST")
	require.Equal(t, utc(t, "2025-10-26T01:30:00Z"), second.UTC(), "02:30 CET, the same day")
}

// Where no clock changes, a CronWindow must agree with the library's own
// reading of the expression: open at t exactly when the last opening at or
// before t is less than the duration ago.
func TestCronWindowAgreesWithLibraryInUTC(t *testing.T) {
	tests := []struct {
		expr string
		dur  time.Duration
	}{
		{"0 2 * * sat", 4 * time.Hour},
		{"15 */6 * * *", 7 * time.Hour}, // openings overlap
		{"0 22 1,15 * mon-fri", 3 * time.Hour},
		{"@weekly", 36 * time.Hour},
		{"0 12 1 */3 *", 30 * time.Hour},
	}
	start := utc(t, "2025-01-01T00:00:00Z")
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			lib, err := cron.ParseStandard(tc.expr)
			require.NoError(t, err)
			w, err := ParseWindowFlag(`cron "` + tc.expr + `" ` + tc.dur.String())
			require.NoError(t, err)
			s := New([]Recurrence{w}, nil)
			// Every 23 minutes for a year, which meets every minute of the hour.
			for at := start; at.Before(start.AddDate(1, 0, 0)); at = at.Add(23 * time.Minute) {
				want := !lib.Next(at.Add(-tc.dur).In(time.UTC)).After(at)
				require.Equal(t, want, s.Open(at), "Open(%s)", at)
			}
		})
	}
}

func TestZeroCronWindowNeverOpens(t *testing.T) {
	s := New([]Recurrence{CronWindow{}}, nil)
	at := utc(t, "2025-06-04T11:00:00Z")
	require.False(t, s.Open(at))
	require.True(t, s.Next(at).IsZero())
	require.Equal(t, `cron "" 0s UTC`, CronWindow{}.String())
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		4 * time.Hour: "4h", 90 * time.Minute: "1h30m", 30 * time.Minute: "30m", 90 * time.Second: "1m30s",
		time.Hour + time.Second: "1h0m1s", 1500 * time.Millisecond: "1.5s", 0: "0s", -time.Hour: "-1h",
	} {
		require.Equal(t, want, formatDuration(d), "%d", d)
		back, err := time.ParseDuration(want)
		require.NoError(t, err)
		require.Equal(t, d, back)
	}
}
