package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustSchedule(t testing.TB, windows []string, blackouts ...string) Schedule {
	t.Helper()
	s, err := Parse(windows, blackouts)
	require.NoError(t, err)
	return s
}

// The 2025 daylight-saving changes are those listed above TestDaylightSaving.
// Instants are written in RFC 3339 with the offset in force, so the expected
// moment is beyond doubt; "" for close means CloseAfter's zero time, "stays
// open past the horizon".
func TestScheduleQueries(t *testing.T) {
	type check struct {
		at          string
		open        bool
		next, close string // close is only checked where open
	}
	tests := []struct {
		name      string
		windows   []string
		blackouts []string
		checks    []check
	}{
		{"berlin spring: a weekly window across the change keeps its local hours, 5 hours long",
			[]string{"sat 22:00-04:00 Europe/Berlin"}, nil, []check{
				{"2025-03-29T21:59:59+01:00", false, "2025-03-29T22:00:00+01:00", ""},
				{"2025-03-29T22:00:00+01:00", true, "2025-03-29T22:00:00+01:00", "2025-03-30T04:00:00+02:00"},
				{"2025-03-30T03:59:59+02:00", true, "2025-03-30T03:59:59+02:00", "2025-03-30T04:00:00+02:00"},
				{"2025-03-30T04:00:00+02:00", false, "2025-04-05T22:00:00+02:00", ""},
			}},
		{"berlin spring: a cron time in the skipped hour opens at the jump",
			[]string{`cron "30 2 * * *" 1h Europe/Berlin`}, nil, []check{
				{"2025-03-29T03:30:00+01:00", false, "2025-03-30T03:00:00+02:00", ""},
				{"2025-03-30T01:59:59+01:00", false, "2025-03-30T03:00:00+02:00", ""},
				{"2025-03-30T03:00:00+02:00", true, "2025-03-30T03:00:00+02:00", "2025-03-30T04:00:00+02:00"},
				{"2025-03-30T04:00:00+02:00", false, "2025-03-31T02:30:00+02:00", ""},
			}},
		{"berlin fall: a repeated cron time opens once, at its first occurrence",
			[]string{`cron "30 2 * * *" 1h Europe/Berlin`}, nil, []check{
				{"2025-10-26T02:29:59+02:00", false, "2025-10-26T02:30:00+02:00", ""},
				{"2025-10-26T02:30:00+02:00", true, "2025-10-26T02:30:00+02:00", "2025-10-26T02:30:00+01:00"},
				{"2025-10-26T02:30:00+01:00", false, "2025-10-27T02:30:00+01:00", ""},
				{"2025-10-26T02:45:00+01:00", false, "2025-10-27T02:30:00+01:00", ""},
			}},
		{"berlin fall: a cron duration is elapsed time, not wall clock",
			[]string{`cron "0 2 * * sun" 2h Europe/Berlin`}, nil, []check{
				{"2025-10-26T02:00:00+02:00", true, "2025-10-26T02:00:00+02:00", "2025-10-26T03:00:00+01:00"},
				{"2025-10-26T03:00:00+01:00", false, "2025-11-02T02:00:00+01:00", ""},
			}},
		{"new york spring: a cron time in the skipped hour opens at the jump",
			[]string{`cron "0 2 * * sun" 3h America/New_York`}, nil, []check{
				{"2025-03-09T01:59:59-05:00", false, "2025-03-09T03:00:00-04:00", ""},
				{"2025-03-09T03:00:00-04:00", true, "2025-03-09T03:00:00-04:00", "2025-03-09T06:00:00-04:00"},
				{"2025-03-09T06:00:00-04:00", false, "2025-03-16T02:00:00-04:00", ""},
			}},
		{"new york fall: a weekly and a cron window that touch are one stretch",
			[]string{"sun 01:00-02:00 America/New_York", `cron "0 2 * * sun" 1h America/New_York`}, nil, []check{
				{"2025-11-02T00:59:59-04:00", false, "2025-11-02T01:00:00-04:00", ""},
				{"2025-11-02T01:00:00-04:00", true, "2025-11-02T01:00:00-04:00", "2025-11-02T03:00:00-05:00"},
				{"2025-11-02T01:30:00-05:00", true, "2025-11-02T01:30:00-05:00", "2025-11-02T03:00:00-05:00"},
				{"2025-11-02T03:00:00-05:00", false, "2025-11-09T01:00:00-05:00", ""},
			}},
		{"a window wrapping past midnight",
			[]string{"fri 22:00-04:00 Europe/Berlin"}, nil, []check{
				{"2025-06-06T22:00:00+02:00", true, "2025-06-06T22:00:00+02:00", "2025-06-07T04:00:00+02:00"},
				{"2025-06-07T00:00:00+02:00", true, "2025-06-07T00:00:00+02:00", "2025-06-07T04:00:00+02:00"},
				{"2025-06-07T04:00:00+02:00", false, "2025-06-13T22:00:00+02:00", ""},
			}},
		{"a blackout day cuts a window at its midnight",
			[]string{"fri 22:00-04:00 Europe/Berlin"}, []string{"2025-06-07 Europe/Berlin"}, []check{
				{"2025-06-06T22:00:00+02:00", true, "2025-06-06T22:00:00+02:00", "2025-06-07T00:00:00+02:00"},
				{"2025-06-07T00:00:00+02:00", false, "2025-06-13T22:00:00+02:00", ""},
			}},
		{"a blackout over the holidays: the first window after it is already open",
			[]string{"mon-fri 22:00-04:00 Europe/Berlin"}, []string{"2025-12-24..2026-01-01 Europe/Berlin"}, []check{
				{"2025-12-23T23:00:00+01:00", true, "2025-12-23T23:00:00+01:00", "2025-12-24T00:00:00+01:00"},
				{"2025-12-24T22:00:00+01:00", false, "2026-01-02T00:00:00+01:00", ""},
				{"2026-01-02T00:00:00+01:00", true, "2026-01-02T00:00:00+01:00", "2026-01-02T04:00:00+01:00"},
			}},
		{"an RFC 3339 blackout inside an always-open window",
			[]string{"* 00:00-24:00 UTC"}, []string{"2025-06-04T10:00:00Z..2025-06-04T12:00:00Z"}, []check{
				{"2025-06-04T09:00:00Z", true, "2025-06-04T09:00:00Z", "2025-06-04T10:00:00Z"},
				{"2025-06-04T10:00:00Z", false, "2025-06-04T12:00:00Z", ""},
				{"2025-06-04T12:00:00Z", true, "2025-06-04T12:00:00Z", ""},
			}},
		{"overlapping and touching windows of both kinds are one stretch",
			[]string{"mon 10:00-12:00", "mon 11:00-14:00", `cron "0 14 * * mon" 30m`}, nil, []check{
				{"2025-06-02T09:00:00Z", false, "2025-06-02T10:00:00Z", ""},
				{"2025-06-02T10:00:00Z", true, "2025-06-02T10:00:00Z", "2025-06-02T14:30:00Z"},
				{"2025-06-02T13:00:00Z", true, "2025-06-02T13:00:00Z", "2025-06-02T14:30:00Z"},
				{"2025-06-02T14:30:00Z", false, "2025-06-09T10:00:00Z", ""},
			}},
		{"overlapping openings of one cron window are one stretch",
			[]string{`cron "0 0,6 * * *" 8h`}, nil, []check{
				{"2025-06-04T01:00:00Z", true, "2025-06-04T01:00:00Z", "2025-06-04T14:00:00Z"},
				{"2025-06-04T07:00:00Z", true, "2025-06-04T07:00:00Z", "2025-06-04T14:00:00Z"},
				{"2025-06-04T14:00:00Z", false, "2025-06-05T00:00:00Z", ""},
			}},
		{"a cron window whose openings overlap without end is always open",
			[]string{`cron "0 */6 * * *" 7h Europe/Berlin`}, nil, []check{
				{"2025-03-30T03:00:00+02:00", true, "2025-03-30T03:00:00+02:00", ""},
			}},
		{"no windows: open but in the blackouts",
			nil, []string{"2025-06-04"}, []check{
				{"2025-06-03T12:00:00Z", true, "2025-06-03T12:00:00Z", "2025-06-04T00:00:00Z"},
				{"2025-06-04T12:00:00Z", false, "2025-06-05T00:00:00Z", ""},
				{"2025-06-05T00:00:00Z", true, "2025-06-05T00:00:00Z", ""},
			}},
		{"sao paulo: a blackout day without a midnight starts at the jump",
			nil, []string{"2018-11-04 America/Sao_Paulo"}, []check{
				{"2018-11-03T23:59:59-03:00", true, "2018-11-03T23:59:59-03:00", "2018-11-04T01:00:00-02:00"},
				{"2018-11-04T01:00:00-02:00", false, "2018-11-05T00:00:00-02:00", ""},
			}},
		{"overlapping blackouts are passed together",
			[]string{"* 00:00-24:00 UTC"}, []string{"2025-06-04..2025-06-05", "2025-06-05T12:00:00Z..2025-06-07T00:00:00Z"}, []check{
				{"2025-06-04T00:00:00Z", false, "2025-06-07T00:00:00Z", ""},
				{"2025-06-03T23:00:00Z", true, "2025-06-03T23:00:00Z", "2025-06-04T00:00:00Z"},
			}},
		{"the next 29 February is past the horizon, then within it",
			[]string{`cron "0 0 29 2 *" 1h`}, nil, []check{
				{"2025-03-01T00:00:00Z", false, "", ""},
				{"2027-03-01T00:00:00Z", false, "2028-02-29T00:00:00Z", ""},
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSchedule(t, tc.windows, tc.blackouts...)
			for _, c := range tc.checks {
				at := utc(t, c.at)
				require.Equal(t, c.open, s.Open(at), "Open(%s)", c.at)
				requireInstant(t, c.next, s.Next(at), "Next(%s)", c.at)
				if !c.open {
					require.True(t, at.Equal(s.CloseAfter(at)), "CloseAfter(%s) of a closed instant", c.at)
					continue
				}
				requireInstant(t, c.close, s.CloseAfter(at), "CloseAfter(%s)", c.at)
			}
		})
	}
}

// requireInstant checks got against an RFC 3339 instant, "" being zero.
func requireInstant(t *testing.T, want string, got time.Time, msg string, args ...any) {
	t.Helper()
	if want == "" {
		require.True(t, got.IsZero(), append([]any{msg + ": want zero, got %s"}, append(args, got)...)...)
		return
	}
	w := utc(t, want)
	require.True(t, w.Equal(got), append([]any{msg + ": want %s, got %s"}, append(args, w, got)...)...)
}

func TestZeroScheduleIsAlwaysOpen(t *testing.T) {
	var s Schedule
	at := utc(t, "2025-06-04T11:00:00Z")
	require.True(t, s.Open(at))
	require.Equal(t, at, s.Next(at))
	require.True(t, s.CloseAfter(at).IsZero())
	require.True(t, s.Fits(at, Horizon))
	require.False(t, s.Fits(at, Horizon+time.Nanosecond))
	require.Equal(t, at, s.NextFit(at, 8*time.Hour))
	require.True(t, s.NextFit(at, Horizon+time.Nanosecond).IsZero())
	require.Equal(t, "always", s.String())
	require.Equal(t, s, mustSchedule(t, nil))
}

func TestScheduleString(t *testing.T) {
	s := mustSchedule(t, []string{"mon-fri 22:00-04:00 Europe/Berlin", `cron "0 2 * * sat" 4h`},
		"2026-12-24..2027-01-02 Europe/Berlin", "2026-06-01T00:00:00Z..2026-06-01T06:00:00Z")
	require.Equal(t, `mon,tue,wed,thu,fri 22:00-04:00 Europe/Berlin; cron "0 2 * * sat" 4h UTC`+
		` except 2026-12-24..2027-01-02 Europe/Berlin; 2026-06-01T00:00:00Z..2026-06-01T06:00:00Z`, s.String())
	require.Equal(t, "always except 2026-12-24 UTC", mustSchedule(t, nil, "2026-12-24").String())
}

func TestFits(t *testing.T) {
	const berlin = "sat 22:00-04:00 Europe/Berlin"
	tests := []struct {
		name      string
		windows   []string
		blackouts []string
		at        string
		d         time.Duration
		want      bool
	}{
		{"ends exactly at the close", []string{berlin}, nil, "2025-06-07T22:00:00+02:00", 6 * time.Hour, true},
		{"a second too long", []string{berlin}, nil, "2025-06-07T22:00:00+02:00", 6*time.Hour + time.Second, false},
		{"spring forward: an hour shorter", []string{berlin}, nil, "2025-03-29T22:00:00+01:00", 5*time.Hour + time.Second, false},
		{"fall back: an hour longer", []string{berlin}, nil, "2025-10-25T22:00:00+02:00", 7 * time.Hour, true},
		{"closed at the start", []string{berlin}, nil, "2025-06-07T21:59:59+02:00", time.Second, false},
		{"no time is no cycle, but the window must be open", []string{berlin}, nil, "2025-06-07T23:00:00+02:00", 0, true},
		{"cut by a blackout", []string{berlin}, []string{"2025-06-08T01:00:00+02:00..2025-06-08T02:00:00+02:00"},
			"2025-06-07T22:00:00+02:00", 3*time.Hour + time.Second, false},
		{"ends as the blackout begins", []string{berlin}, []string{"2025-06-08T01:00:00+02:00..2025-06-08T02:00:00+02:00"},
			"2025-06-07T22:00:00+02:00", 3 * time.Hour, true},
		{"across merged windows", []string{berlin, "sun 04:00-06:00 Europe/Berlin"}, nil,
			"2025-06-07T22:00:00+02:00", 8 * time.Hour, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSchedule(t, tc.windows, tc.blackouts...)
			require.Equal(t, tc.want, s.Fits(utc(t, tc.at), tc.d))
		})
	}
}

func TestNextFit(t *testing.T) {
	const berlin = "sat 22:00-04:00 Europe/Berlin"
	tests := []struct {
		name      string
		windows   []string
		blackouts []string
		at        string
		d         time.Duration
		want      string // "" for none within the horizon
	}{
		{"the next window", []string{berlin}, nil, "2025-06-06T12:00:00+02:00", 6 * time.Hour, "2025-06-07T22:00:00+02:00"},
		{"from inside a window with time left", []string{berlin}, nil, "2025-06-07T23:00:00+02:00", 5 * time.Hour, "2025-06-07T23:00:00+02:00"},
		{"from inside a window without", []string{berlin}, nil, "2025-06-08T03:00:00+02:00", 2 * time.Hour, "2025-06-14T22:00:00+02:00"},
		{"only the fall-back night is long enough", []string{berlin}, nil, "2025-06-06T12:00:00+02:00",
			6*time.Hour + time.Second, "2025-10-25T22:00:00+02:00"},
		{"not even that one", []string{berlin}, nil, "2025-06-06T12:00:00+02:00", 7*time.Hour + time.Second, ""},
		{"what a blackout leaves of a window", []string{"sat 22:00-04:00 UTC"}, []string{"2025-06-07"},
			"2025-06-06T12:00:00Z", 4 * time.Hour, "2025-06-08T00:00:00Z"},
		{"past a blackout", []string{"sat 22:00-04:00 UTC"}, []string{"2025-06-07"},
			"2025-06-06T12:00:00Z", 5 * time.Hour, "2025-06-14T22:00:00Z"},
		{"the second of two windows close together", []string{"sat 22:00-23:00", "sat 23:30-04:00"}, nil,
			"2025-06-06T12:00:00Z", 4 * time.Hour, "2025-06-07T23:30:00Z"},
		{"a cron window", []string{`cron "0 2 * * sun" 3h America/New_York`}, nil,
			"2025-03-01T00:00:00-05:00", 3 * time.Hour, "2025-03-02T02:00:00-05:00"},
		{"no time at all is the next opening", []string{berlin}, nil, "2025-06-06T12:00:00+02:00", 0, "2025-06-07T22:00:00+02:00"},
		{"longer than the horizon", nil, nil, "2025-06-06T12:00:00Z", Horizon + 1, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := mustSchedule(t, tc.windows, tc.blackouts...)
			requireInstant(t, tc.want, s.NextFit(utc(t, tc.at), tc.d), "NextFit")
		})
	}
}

// A cron time and a weekly start at the same wall-clock time read daylight
// saving the same way, so the two open at the same instants all year. (The
// weekly windows here do not lie wholly in a skipped hour or day: such a
// window is empty that day, while a cron window opens at the jump all the
// same, for its duration.)
func TestCronOpensLikeWeeklyAcrossDaylightSaving(t *testing.T) {
	tests := []struct{ cron, weekly, from string }{
		{`cron "30 2 * * *" 1h Europe/Berlin`, "* 02:30-03:30 Europe/Berlin", "2025-01-01T00:00:00Z"},
		{`cron "0 2 * * sun" 1h America/New_York`, "sun 02:00-05:00 America/New_York", "2025-01-01T00:00:00Z"},
		{`cron "30 1 * * *" 10m America/New_York`, "* 01:30-01:40 America/New_York", "2025-01-01T00:00:00Z"},
		{`cron "0 0 * * sun" 6h America/Sao_Paulo`, "sun 00:00-06:00 America/Sao_Paulo", "2018-01-01T00:00:00Z"},
		{`cron "0 10 * * fri" 2h Pacific/Apia`, "fri 10:00-09:00 Pacific/Apia", "2011-06-01T00:00:00Z"},
	}
	for _, tc := range tests {
		t.Run(tc.cron, func(t *testing.T) {
			c, w := mustSchedule(t, []string{tc.cron}), mustSchedule(t, []string{tc.weekly})
			at := utc(t, tc.from)
			for range 400 {
				oc, ow := c.Next(at), w.Next(at)
				require.True(t, oc.Equal(ow), "after %s: cron opens %s, weekly %s", at, oc, ow)
				at = latest(c.CloseAfter(oc), w.CloseAfter(ow))
			}
		})
	}
}
