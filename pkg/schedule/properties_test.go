package schedule

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// requireConsistent checks what the queries promise of each other at t.
func requireConsistent(t *testing.T, s Schedule, at time.Time, d time.Duration) {
	t.Helper()
	open, next := s.Open(at), s.Next(at)
	require.Equal(t, open, next.Equal(at), "%s: Open(%s) but Next is %s", s, at, next)
	if !next.IsZero() {
		require.False(t, next.Before(at), "%s: Next(%s) = %s is earlier", s, at, next)
		require.True(t, s.Open(next), "%s: closed at Next(%s) = %s", s, at, next)
		if next.After(at) {
			require.False(t, s.Open(next.Add(-1)), "%s: Next(%s) = %s but open just before", s, at, next)
		}
	}

	closes := s.CloseAfter(at)
	switch {
	case !open:
		require.True(t, closes.Equal(at), "%s: closed at %s but CloseAfter is %s", s, at, closes)
	case !closes.IsZero():
		require.True(t, closes.After(at), "%s: CloseAfter(%s) = %s", s, at, closes)
		require.True(t, s.Open(at.Add(closes.Sub(at)/2)), "%s: closed between %s and %s", s, at, closes)
		require.True(t, s.Open(closes.Add(-1)), "%s: closed before CloseAfter(%s) = %s", s, at, closes)
		require.False(t, s.Open(closes), "%s: open at CloseAfter(%s) = %s", s, at, closes)
	}

	fits := s.Fits(at, d)
	if fits {
		require.True(t, open, "%s: fits %s at %s but closed", s, d, at)
		require.True(t, d <= 0 || s.Open(at.Add(d-1)), "%s: fits %s at %s but closed at its end", s, d, at)
	}
	if open && d <= Horizon {
		require.Equal(t, closes.IsZero() || !at.Add(d).After(closes), fits, "%s: Fits(%s, %s) against CloseAfter %s", s, at, d, closes)
	}

	fit := s.NextFit(at, d)
	if fits {
		require.True(t, fit.Equal(at), "%s: fits %s at %s but NextFit is %s", s, d, at, fit)
	}
	if !fit.IsZero() {
		require.False(t, fit.Before(at), "%s: NextFit(%s, %s) = %s", s, at, d, fit)
		require.True(t, s.Fits(fit, d), "%s: NextFit(%s, %s) = %s does not fit", s, at, d, fit)
		if fit.After(at) {
			require.False(t, s.Fits(fit.Add(-1), d), "%s: NextFit(%s, %s) = %s, but it fits earlier", s, at, d, fit)
		}
	}
}

func TestScheduleProperties(t *testing.T) {
	schedules := []struct {
		windows, blackouts []string
	}{
		{nil, nil},
		{nil, []string{"2025-03-30 Europe/Berlin", "2025-10-26..2025-10-27 America/New_York"}},
		{[]string{"sat 22:00-04:00 Europe/Berlin"}, nil},
		{[]string{"mon-fri 02:30-03:30 Europe/Berlin", "sun 01:30-02:30 America/New_York"}, []string{"2025-12-24..2026-01-01 Europe/Berlin"}},
		{[]string{"* 00:00-24:00 Europe/Berlin"}, []string{"2025-06-04T10:00:00Z..2025-06-04T12:00:00Z"}},
		{[]string{"mon,tue 00:00-24:00 UTC", "tue 23:00-01:00 Asia/Kolkata"}, nil},
		{[]string{`cron "30 2 * * *" 1h Europe/Berlin`}, []string{"2025-07-01..2025-07-31"}},
		{[]string{`cron "0 0,6,12 * * *" 7h America/New_York`}, []string{"2025-11-02 America/New_York"}},
		{[]string{`cron "0 1 * * sun" 5h America/New_York`, "sun 04:00-08:00 America/New_York"}, nil},
		{[]string{`cron "0 0 * * 0" 25h America/Sao_Paulo`}, nil},
		{[]string{`cron "@monthly" 48h Australia/Lord_Howe`, "fri 10:00-09:00 Pacific/Apia"}, nil},
	}
	// Around each daylight-saving change of 2025 and in the open year.
	changes := []string{"2025-03-09T07:00:00Z", "2025-03-30T01:00:00Z", "2025-10-05T15:00:00Z",
		"2025-10-26T01:00:00Z", "2025-11-02T06:00:00Z"}
	rng := rand.New(rand.NewPCG(2025, 6))
	for _, sc := range schedules {
		s := mustSchedule(t, sc.windows, sc.blackouts...)
		t.Run(s.String(), func(t *testing.T) {
			for i := range 400 {
				var at time.Time
				if i%2 == 0 {
					at = utc(t, changes[rng.IntN(len(changes))]).Add(time.Duration(rng.Int64N(int64(8*time.Hour))) - 4*time.Hour)
				} else {
					at = utc(t, "2025-01-01T00:00:00Z").Add(time.Duration(rng.Int64N(int64(365 * day))))
				}
				if i%3 == 0 {
					at = at.Truncate(30 * time.Minute) // on the hours windows start and end
				}
				// Now and then a cycle too long for most windows, which makes
				// NextFit try every window of the horizon.
				longest := 50 * time.Minute
				if i%20 == 0 {
					longest = 9 * time.Hour
				}
				d := time.Duration(rng.Int64N(int64(longest)))
				if i%4 == 0 {
					d = d.Truncate(30 * time.Minute) // as long as a window, maybe
				}
				requireConsistent(t, s, at, d)
			}
		})
	}
}

// A Schedule of one weekly window is that window.
func TestScheduleOfOneWindowIsTheWindow(t *testing.T) {
	windows := []Window{
		mustWindow(t, "sat,sun", "22:00", "04:00", "Europe/Berlin"),
		mustWindow(t, "sun", "02:00", "02:30", "America/New_York"),
		mustWindow(t, "*", "00:00", "24:00", "UTC"),
		{},
	}
	rng := rand.New(rand.NewPCG(7, 7))
	for _, w := range windows {
		s := New([]Recurrence{w}, nil)
		for range 2000 {
			at := utc(t, "2025-01-01T00:00:00Z").Add(time.Duration(rng.Int64N(int64(365 * day)))).Truncate(time.Minute)
			require.Equal(t, w.Contains(at), s.Open(at), "%s at %s", w, at)
			require.True(t, w.NextOpen(at).Equal(s.Next(at)), "%s at %s", w, at)
		}
	}
}
