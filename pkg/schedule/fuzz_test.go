package schedule

import (
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
		// Fold the instant into 1900..2200: zone data is meaningful there
		// and no arithmetic can overflow.
		const from, span = -2208988800, 300 * 365 * 24 * 3600
		at := time.Unix(from+(unix%span+span)%span, 0)

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
