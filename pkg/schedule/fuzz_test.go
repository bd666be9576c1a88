package schedule

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func FuzzParseWindow(f *testing.F) {
	seeds := []struct{ days, start, end, zone string }{
		{"mon,tue,wed,thu,fri,sat,sun", "00:00", "24:00", "UTC"},
		{"", "00:00", "24:00", ""},
		{"*", "22:00", "04:00", "Europe/Berlin"},
		{"fri", "22:00", "00:00", "Europe/Berlin"},
		{"sun", "02:30", "04:00", "Europe/Berlin"},
		{"sun", "02:00", "02:30", "America/New_York"},
		{"Sunday, saturday", "1:30", "03:00:01", "America/New_York"},
		{"sun", "00:00", "06:00", "America/Sao_Paulo"},
		{"fri", "10:00", "12:00", "Pacific/Apia"}, // skipped 30 December 2011 whole
		{"mnday", "25:00", "24:01", "Mars/Olympus"},
		{"mon", "10:00", "10:00", "Local"},
	}
	for _, s := range seeds {
		f.Add(s.days, s.start, s.end, s.zone, int64(1743296400)) // 2025-03-30T01:00:00Z
	}
	f.Add("sun", "02:30", "03:30", "Europe/Berlin", int64(1761442200)) // Berlin's repeated hour
	f.Add("fri", "10:00", "12:00", "Pacific/Apia", int64(1325203200))  // its missing Friday

	f.Fuzz(func(t *testing.T, days, start, end, zone string, unix int64) {
		w, err := ParseWindow(days, start, end, zone)
		if err != nil {
			require.Equal(t, Window{}, w)
			require.True(t, strings.HasPrefix(err.Error(), "--"), "error names no flag: %v", err)
			return
		}
		at := foldInstant(unix)

		next := w.NextOpen(at)
		require.False(t, next.IsZero(), "%s never opens after %s", w, at)
		require.False(t, next.Before(at), "%s: NextOpen(%s) = %s is earlier", w, at, next)
		require.True(t, w.Contains(next), "%s: NextOpen(%s) = %s is not inside", w, at, next)
		require.Equal(t, w.Contains(at), next.Equal(at), "%s at %s", w, at)
		if next.After(at) {
			// Everything from at up to next is outside; check its last instant.
			require.False(t, w.Contains(next.Add(-time.Nanosecond)), "%s: opens before %s", w, next)
		}

		// Without daylight saving the answer is plain weekday arithmetic.
		inUTC := w
		inUTC.loc = time.UTC
		require.Equal(t, plainContains(inUTC, at), inUTC.Contains(at), "%s at %s", inUTC, at)

		requireRoundTrip(t, w)
	})
}

// plainContains is Contains written the obvious way, valid only for UTC.
func plainContains(w Window, t time.Time) bool {
	t = t.UTC()
	tod := t.Sub(time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC))
	today, yesterday := t.Weekday(), (t.Weekday()+6)%7
	if w.end > w.start {
		return w.days[today] && tod >= w.start && tod < w.end
	}
	return (w.days[today] && tod >= w.start) || (w.days[yesterday] && tod < w.end)
}

// requireRoundTrip checks that String() parses back to the same window.
func requireRoundTrip(t *testing.T, w Window) {
	t.Helper()
	fields := strings.Fields(w.String())
	require.Len(t, fields, 3, "%q", w.String())
	days, hours, zone := fields[0], fields[1], fields[2]
	start, end, ok := strings.Cut(hours, "-")
	require.True(t, ok, "%q", w.String())
	back, err := ParseWindow(days, start, end, zone)
	require.NoError(t, err, "%q", w.String())
	require.Equal(t, w.days, back.days)
	require.Equal(t, w.start, back.start)
	require.Equal(t, w.end, back.end)
	require.Equal(t, w.loc.String(), back.loc.String())
}

// foldInstant folds any int64 into an instant of 1900..2200, where zone data
// is meaningful and no arithmetic overflows.
func foldInstant(unix int64) time.Time {
	const from, span = -2208988800, 300 * 365 * 24 * 3600
	return time.Unix(from+(unix%span+span)%span, 0)
}

func FuzzParseWindowFlag(f *testing.F) {
	for _, v := range []string{
		"mon-fri 22:00-04:00 Europe/Berlin", "fri-mon 22:00-04:00", "* 00:00-24:00 UTC",
		"sun 02:30-04:00 Europe/Berlin", "sun 01:30-03:00 America/New_York", "fri 10:00-12:00 Pacific/Apia",
		`cron "0 2 * * sat" 4h UTC`, `cron @daily 3h Europe/Berlin`, `cron "30 2 * * *" 1h Europe/Berlin`,
		`cron "0 */6 * * *" 7h America/New_York`, `cron "0 0 29 2 *" 1s`, `cron "TZ=UTC" 1h`,
		`cron "0 0 31 4 *" 1h`, `mon "22:00-04:00" "Local"`, `cron "unterminated`, "mnday 25:00-24:01 Mars/Olympus",
	} {
		f.Add(v, int64(1743296400)) // 2025-03-30T01:00:00Z
	}
	f.Fuzz(func(t *testing.T, value string, unix int64) {
		w, err := ParseWindowFlag(value)
		if err != nil {
			require.Nil(t, w)
			require.True(t, strings.HasPrefix(err.Error(), fmt.Sprintf("--window %q: ", value)), "%v", err)
			return
		}
		back, err := ParseWindowFlag(w.String())
		require.NoError(t, err, "%q prints as %q", value, w.String())
		require.Equal(t, w.String(), back.String())

		// The reparsed window behaves the same, and as a Schedule of its own
		// the queries agree with each other.
		at := foldInstant(unix)
		s, again := New([]Recurrence{w}, nil), New([]Recurrence{back}, nil)
		require.Equal(t, s.Open(at), again.Open(at), "%s at %s", w, at)
		require.True(t, s.Next(at).Equal(again.Next(at)), "%s at %s", w, at)
		requireConsistent(t, s, at, time.Duration(unix%int64(4*time.Hour)))
	})
}

func FuzzParseBlackout(f *testing.F) {
	for _, v := range []string{
		"2026-12-24", "2026-12-24..2027-01-02 Europe/Berlin", "2025-03-30 Europe/Berlin",
		"2018-11-04 America/Sao_Paulo", "2011-12-30 Pacific/Apia",
		"2026-12-24T18:00:00+01:00..2026-12-27T06:00:00+01:00", "2026-12-24T18:00:00.5Z..2026-12-24T18:00:01Z",
		"2027-01-02..2026-12-24", "2026-02-29", "2026-12-24..2026-12-27T06:00:00Z", "0000-01-01..9999-12-31 Local",
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, value string) {
		b, err := ParseBlackout(value)
		if err != nil {
			require.Equal(t, Blackout{}, b)
			require.True(t, strings.HasPrefix(err.Error(), fmt.Sprintf("--blackout %q: ", value)), "%v", err)
			return
		}
		// Only a day that the zone skips whole (Pacific/Apia's 30 December
		// 2011) makes an empty blackout.
		require.False(t, b.Until().Before(b.From()), "%q: %s", value, b)
		require.Equal(t, b.Until().After(b.From()), b.Contains(b.From()), "%q: %s", value, b)
		require.False(t, b.Contains(b.Until()), "%q: %s", value, b)
		back, err := ParseBlackout(b.String())
		require.NoError(t, err, "%q prints as %q", value, b.String())
		require.Equal(t, b.String(), back.String())
		require.True(t, b.From().Equal(back.From()) && b.Until().Equal(back.Until()), "%q: %s", value, b)
	})
}

// FuzzSchedule checks the queries against each other on schedules of up to
// two windows and a blackout; values that do not parse are left out.
func FuzzSchedule(f *testing.F) {
	f.Add("sat 22:00-04:00 Europe/Berlin", `cron "0 2 * * sun" 4h Europe/Berlin`, "2025-03-30 Europe/Berlin",
		int64(1743296400), int64(5*time.Hour))
	f.Add("mon 10:00-12:00", "mon 11:00-14:00", "2025-06-02T11:30:00Z..2025-06-02T12:30:00Z",
		int64(1748858400), int64(time.Hour))
	f.Add("", "", "2025-11-02 America/New_York", int64(1762063200), int64(90*time.Minute))
	f.Add(`cron "0 0,6 * * *" 8h America/New_York`, "sun 01:00-02:00 America/New_York", "",
		int64(1762063200), int64(3*time.Hour))
	f.Fuzz(func(t *testing.T, window1, window2, blackout string, unix, d int64) {
		var windows []Recurrence
		for _, v := range []string{window1, window2} {
			if w, err := ParseWindowFlag(v); err == nil {
				windows = append(windows, w)
			}
		}
		var blackouts []Blackout
		if b, err := ParseBlackout(blackout); err == nil {
			blackouts = append(blackouts, b)
		}
		// Cycles of up to two days, some of them negative.
		requireConsistent(t, New(windows, blackouts), foldInstant(unix), time.Duration(d%int64(48*time.Hour)))
	})
}
