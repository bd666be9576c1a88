package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustWindow(t testing.TB, days, start, end, zone string) Window {
	t.Helper()
	w, err := ParseWindow(days, start, end, zone)
	require.NoError(t, err)
	return w
}

// local reads an unambiguous wall-clock time "2006-01-02 15:04:05" in zone.
func local(t testing.TB, zone, s string) time.Time {
	t.Helper()
	loc, err := time.LoadLocation(zone)
	require.NoError(t, err)
	v, err := time.ParseInLocation(time.DateTime, s, loc)
	require.NoError(t, err)
	return v
}

// utc reads an RFC 3339 instant; DST cases are written as instants so the
// expected moment is beyond doubt.
func utc(t testing.TB, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return v
}

func TestParseWindow(t *testing.T) {
	tests := []struct {
		name                   string
		days, start, end, zone string
		want                   string
		alwaysOpen             bool
	}{
		{"flag defaults", "mon,tue,wed,thu,fri,sat,sun", "00:00", "24:00", "UTC",
			"mon,tue,wed,thu,fri,sat,sun 00:00-24:00 UTC", true},
		{"empty days means every day", "", "00:00", "24:00:00", "UTC",
			"mon,tue,wed,thu,fri,sat,sun 00:00-24:00 UTC", true},
		{"star means every day", " * ", "00:00", "24:00", "Europe/Berlin",
			"mon,tue,wed,thu,fri,sat,sun 00:00-24:00 Europe/Berlin", true},
		{"case, full names, duplicates, blanks", " Mon , TUESDAY,mon,, ", " 9:00 ", "17:30:15", "utc",
			"mon,tue 09:00-17:30:15 UTC", false},
		{"printed in week order", "sun,sat,fri", "22:00", "04:00", "Europe/Berlin",
			"fri,sat,sun 22:00-04:00 Europe/Berlin", false},
		{"end at midnight wraps", "wed", "22:00", "00:00", "America/New_York",
			"wed 22:00-00:00 America/New_York", false},
		{"one day all day", "mon", "00:00", "24:00", "UTC", "mon 00:00-24:00 UTC", false},
		{"every day but not all day", "*", "00:00", "23:59:59", "UTC",
			"mon,tue,wed,thu,fri,sat,sun 00:00-23:59:59 UTC", false},
		{"empty zone is UTC", "sat", "01:00", "02:00", "", "sat 01:00-02:00 UTC", false},
		{"local zone", "sat", "01:00", "02:00", "local", "sat 01:00-02:00 Local", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := mustWindow(t, tc.days, tc.start, tc.end, tc.zone)
			require.Equal(t, tc.want, w.String())
			require.Equal(t, tc.alwaysOpen, w.AlwaysOpen())
		})
	}
}

func TestZeroWindowIsAlwaysOpen(t *testing.T) {
	var w Window
	now := utc(t, "2025-06-04T11:00:00Z")
	require.True(t, w.AlwaysOpen())
	require.True(t, w.Contains(now))
	require.Equal(t, now, w.NextOpen(now))
	require.Equal(t, "mon,tue,wed,thu,fri,sat,sun 00:00-24:00 UTC", w.String())
}

func TestParseWindowErrors(t *testing.T) {
	tests := []struct {
		days, start, end, zone string
		want                   string
	}{
		{"mon,mnday", "00:00", "24:00", "UTC",
			`--reboot-days: unknown day "mnday" (want mon,tue,wed,thu,fri,sat,sun)`},
		{"mo", "00:00", "24:00", "UTC",
			`--reboot-days: unknown day "mo" (want mon,tue,wed,thu,fri,sat,sun)`},
		{" , ", "00:00", "24:00", "UTC",
			`--reboot-days: no day in "," (want mon,tue,wed,thu,fri,sat,sun or *)`},
		{"mon", "25:00", "24:00", "UTC",
			`--start-time: "25:00" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon", "10:60", "24:00", "UTC",
			`--start-time: "10:60" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon", "10", "24:00", "UTC",
			`--start-time: "10" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon", "10:5", "24:00", "UTC",
			`--start-time: "10:5" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon", "+1:00", "24:00", "UTC",
			`--start-time: "+1:00" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon", "10pm", "24:00", "UTC",
			`--start-time: "10pm" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon", "24:00", "04:00", "UTC",
			`--start-time: "24:00" is the end of the day; it is only valid as --end-time`},
		{"mon", "00:00", "24:01", "UTC",
			`--end-time: "24:01" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon", "00:00", "12:00:60", "UTC",
			`--end-time: "12:00:60" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon", "00:00", "", "UTC",
			`--end-time: "" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon", "10:00", "10:00:00", "UTC",
			`--start-time "10:00" and --end-time "10:00:00": start and end are equal, ` +
				`which would make an empty window (use 00:00 and 24:00 for the whole day)`},
		{"mon", "00:00", "00:00", "UTC",
			`--start-time "00:00" and --end-time "00:00": start and end are equal, ` +
				`which would make an empty window (use 00:00 and 24:00 for the whole day)`},
		{"mon", "00:00", "24:00", "Mars/Olympus",
			`--time-zone: unknown time zone "Mars/Olympus"`},
		{"mon", "00:00", "24:00", "../etc/passwd",
			`--time-zone: unknown time zone "../etc/passwd"`},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			_, err := ParseWindow(tc.days, tc.start, tc.end, tc.zone)
			require.EqualError(t, err, tc.want)
		})
	}
}

// June 2025 has no DST change; 2025-06-04 is a Wednesday, 06-06 a Friday.
func TestContains(t *testing.T) {
	always := mustWindow(t, "*", "00:00", "24:00", "Europe/Berlin")
	wed := mustWindow(t, "wed", "10:00", "12:00", "UTC")
	mon := mustWindow(t, "mon", "00:00", "24:00", "UTC")
	friNight := mustWindow(t, "fri", "22:00", "04:00", "Europe/Berlin")
	toMidnight := mustWindow(t, "fri", "22:00", "00:00", "Europe/Berlin")
	const berlin = "Europe/Berlin"

	tests := []struct {
		name string
		w    Window
		t    time.Time
		want bool
	}{
		{"all day: midnight", always, local(t, berlin, "2025-06-04 00:00:00"), true},
		{"all day: late", always, local(t, berlin, "2025-06-08 23:59:59"), true},

		{"single day: before start", wed, utc(t, "2025-06-04T09:59:59Z"), false},
		{"single day: start is inclusive", wed, utc(t, "2025-06-04T10:00:00Z"), true},
		{"single day: inside", wed, utc(t, "2025-06-04T11:59:59Z"), true},
		{"single day: end is exclusive", wed, utc(t, "2025-06-04T12:00:00Z"), false},
		{"single day: other day same hours", wed, utc(t, "2025-06-05T11:00:00Z"), false},
		{"single day: zone of t does not matter", wed, local(t, berlin, "2025-06-04 13:30:00"), true},

		{"one whole day: first instant", mon, utc(t, "2025-06-02T00:00:00Z"), true},
		{"one whole day: last instant", mon, utc(t, "2025-06-02T23:59:59Z"), true},
		{"one whole day: next midnight", mon, utc(t, "2025-06-03T00:00:00Z"), false},
		{"one whole day: the night before", mon, utc(t, "2025-06-01T23:59:59Z"), false},

		{"wrap: before opening", friNight, local(t, berlin, "2025-06-06 21:59:59"), false},
		{"wrap: opening", friNight, local(t, berlin, "2025-06-06 22:00:00"), true},
		{"wrap: past midnight", friNight, local(t, berlin, "2025-06-07 00:00:00"), true},
		{"wrap: day-after morning", friNight, local(t, berlin, "2025-06-07 03:59:59"), true},
		{"wrap: closing", friNight, local(t, berlin, "2025-06-07 04:00:00"), false},
		{"wrap: unlisted day evening", friNight, local(t, berlin, "2025-06-07 23:00:00"), false},
		{"wrap: unlisted day after morning", friNight, local(t, berlin, "2025-06-08 01:00:00"), false},
		{"wrap: listed day morning belongs to thursday", friNight, local(t, berlin, "2025-06-06 01:00:00"), false},
		{"wrap: in UTC", friNight, utc(t, "2025-06-06T20:00:00Z"), true},

		{"to midnight: last second", toMidnight, local(t, berlin, "2025-06-06 23:59:59"), true},
		{"to midnight: midnight", toMidnight, local(t, berlin, "2025-06-07 00:00:00"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.w.Contains(tc.t))
		})
	}
}

func TestNextOpen(t *testing.T) {
	const berlin = "Europe/Berlin"
	wed := mustWindow(t, "wed", "10:00", "12:00", "UTC")
	friNight := mustWindow(t, "fri", "22:00", "04:00", berlin)
	weekdays := mustWindow(t, "mon,tue,wed,thu,fri", "09:00", "17:00", berlin)

	tests := []struct {
		name string
		w    Window
		t    time.Time
		want time.Time
	}{
		{"inside returns t", wed, utc(t, "2025-06-04T11:30:00Z"), utc(t, "2025-06-04T11:30:00Z")},
		{"at start returns t", wed, utc(t, "2025-06-04T10:00:00Z"), utc(t, "2025-06-04T10:00:00Z")},
		{"before, same day", wed, utc(t, "2025-06-04T03:00:00Z"), utc(t, "2025-06-04T10:00:00Z")},
		{"at end, next week", wed, utc(t, "2025-06-04T12:00:00Z"), utc(t, "2025-06-11T10:00:00Z")},
		{"day before", wed, utc(t, "2025-06-03T23:00:00Z"), utc(t, "2025-06-04T10:00:00Z")},

		{"wrap: inside after midnight returns t", friNight,
			local(t, berlin, "2025-06-07 02:00:00"), local(t, berlin, "2025-06-07 02:00:00")},
		{"wrap: after closing, next friday", friNight,
			local(t, berlin, "2025-06-07 04:00:00"), local(t, berlin, "2025-06-13 22:00:00")},
		{"wrap: friday morning, same evening", friNight,
			local(t, berlin, "2025-06-06 03:00:00"), local(t, berlin, "2025-06-06 22:00:00")},

		{"weekdays: friday evening to monday", weekdays,
			local(t, berlin, "2025-06-06 17:00:00"), local(t, berlin, "2025-06-09 09:00:00")},
		{"weekdays: saturday to monday", weekdays,
			local(t, berlin, "2025-06-07 12:00:00"), local(t, berlin, "2025-06-09 09:00:00")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.w.NextOpen(tc.t)
			require.True(t, tc.want.Equal(got), "want %s, got %s", tc.want, got)
			require.True(t, tc.w.Contains(got))
		})
	}
}

// The 2025 changes used: Europe/Berlin springs forward on Sunday 30 March
// (02:00 CET -> 03:00 CEST, at 01:00Z) and falls back on Sunday 26 October
// (03:00 CEST -> 02:00 CET, at 01:00Z); America/New_York springs forward on
// Sunday 9 March (02:00 EST -> 03:00 EDT, at 07:00Z) and falls back on Sunday
// 2 November (02:00 EDT -> 01:00 EST, at 06:00Z). America/Sao_Paulo sprang
// forward at midnight on Sunday 4 November 2018 (00:00 -03 -> 01:00 -02, at
// 03:00Z), so that day had no midnight.
func TestDaylightSaving(t *testing.T) {
	type check struct {
		t        string // RFC 3339 instant
		contains bool
		next     string // RFC 3339 instant NextOpen(t) must equal
	}
	tests := []struct {
		name   string
		w      Window
		checks []check
	}{
		{"berlin spring: start in the skipped hour opens at the jump",
			mustWindow(t, "sun", "02:30", "04:00", "Europe/Berlin"), []check{
				{"2025-03-30T00:59:59Z", false, "2025-03-30T01:00:00Z"}, // 01:59:59 CET
				{"2025-03-30T01:00:00Z", true, "2025-03-30T01:00:00Z"},  // 03:00 CEST
				{"2025-03-30T01:59:59Z", true, "2025-03-30T01:59:59Z"},  // 03:59:59 CEST
				{"2025-03-30T02:00:00Z", false, "2025-04-06T00:30:00Z"}, // 04:00 CEST
			}},
		{"berlin spring: window inside the skipped hour is empty that day",
			mustWindow(t, "sun", "02:00", "02:30", "Europe/Berlin"), []check{
				{"2025-03-30T00:59:59Z", false, "2025-04-06T00:00:00Z"},
				{"2025-03-30T01:00:00Z", false, "2025-04-06T00:00:00Z"},
			}},
		{"berlin spring: wrap across the change keeps local hours",
			mustWindow(t, "sat", "22:00", "04:00", "Europe/Berlin"), []check{
				{"2025-03-29T20:59:59Z", false, "2025-03-29T21:00:00Z"}, // 21:59:59 CET
				{"2025-03-29T21:00:00Z", true, "2025-03-29T21:00:00Z"},  // 22:00 CET
				{"2025-03-30T01:59:59Z", true, "2025-03-30T01:59:59Z"},  // 03:59:59 CEST
				{"2025-03-30T02:00:00Z", false, "2025-04-05T20:00:00Z"}, // 04:00 CEST
			}},
		{"berlin fall: repeated hour starts at its first occurrence",
			mustWindow(t, "sun", "02:30", "03:30", "Europe/Berlin"), []check{
				{"2025-10-26T00:29:59Z", false, "2025-10-26T00:30:00Z"}, // 02:29:59 CEST
				{"2025-10-26T00:30:00Z", true, "2025-10-26T00:30:00Z"},  // 02:30 CEST
				{"2025-10-26T01:45:00Z", true, "2025-10-26T01:45:00Z"},  // 02:45 CET, again
				{"2025-10-26T02:29:59Z", true, "2025-10-26T02:29:59Z"},  // 03:29:59 CET
				{"2025-10-26T02:30:00Z", false, "2025-11-02T01:30:00Z"}, // 03:30 CET
			}},
		{"new york spring: start in the skipped hour opens at the jump",
			mustWindow(t, "sun", "02:30", "05:00", "America/New_York"), []check{
				{"2025-03-09T05:00:00Z", false, "2025-03-09T07:00:00Z"}, // 00:00 EST
				{"2025-03-09T06:59:59Z", false, "2025-03-09T07:00:00Z"}, // 01:59:59 EST
				{"2025-03-09T07:00:00Z", true, "2025-03-09T07:00:00Z"},  // 03:00 EDT
				{"2025-03-09T08:59:59Z", true, "2025-03-09T08:59:59Z"},  // 04:59:59 EDT
				{"2025-03-09T09:00:00Z", false, "2025-03-16T06:30:00Z"}, // 05:00 EDT
			}},
		{"new york spring: end in the skipped hour closes at the jump",
			mustWindow(t, "sun", "01:00", "02:30", "America/New_York"), []check{
				{"2025-03-09T06:59:59Z", true, "2025-03-09T06:59:59Z"},  // 01:59:59 EST
				{"2025-03-09T07:00:00Z", false, "2025-03-16T05:00:00Z"}, // 03:00 EDT
			}},
		{"new york fall: repeated hour starts at its first occurrence",
			mustWindow(t, "sun", "01:30", "03:00", "America/New_York"), []check{
				{"2025-11-02T05:29:59Z", false, "2025-11-02T05:30:00Z"}, // 01:29:59 EDT
				{"2025-11-02T05:30:00Z", true, "2025-11-02T05:30:00Z"},  // 01:30 EDT
				{"2025-11-02T06:15:00Z", true, "2025-11-02T06:15:00Z"},  // 01:15 EST
				{"2025-11-02T07:59:59Z", true, "2025-11-02T07:59:59Z"},  // 02:59:59 EST
				{"2025-11-02T08:00:00Z", false, "2025-11-09T06:30:00Z"}, // 03:00 EST
			}},
		{"new york: every day all day stays open through both changes",
			mustWindow(t, "*", "00:00", "24:00", "America/New_York"), []check{
				{"2025-03-09T07:00:00Z", true, "2025-03-09T07:00:00Z"},
				{"2025-11-02T06:00:00Z", true, "2025-11-02T06:00:00Z"},
			}},
		{"berlin: one whole day is 23 hours in spring",
			mustWindow(t, "sun", "00:00", "24:00", "Europe/Berlin"), []check{
				{"2025-03-29T22:59:59Z", false, "2025-03-29T23:00:00Z"}, // sat 23:59:59 CET
				{"2025-03-29T23:00:00Z", true, "2025-03-29T23:00:00Z"},  // sun 00:00 CET
				{"2025-03-30T21:59:59Z", true, "2025-03-30T21:59:59Z"},  // sun 23:59:59 CEST
				{"2025-03-30T22:00:00Z", false, "2025-04-05T22:00:00Z"}, // mon 00:00 CEST
			}},
		{"sao paulo: a day without midnight opens at the jump",
			mustWindow(t, "sun", "00:00", "06:00", "America/Sao_Paulo"), []check{
				{"2018-11-04T02:59:59Z", false, "2018-11-04T03:00:00Z"}, // sat 23:59:59 -03
				{"2018-11-04T03:00:00Z", true, "2018-11-04T03:00:00Z"},  // sun 01:00 -02
				{"2018-11-04T07:59:59Z", true, "2018-11-04T07:59:59Z"},  // sun 05:59:59 -02
				{"2018-11-04T08:00:00Z", false, "2018-11-11T02:00:00Z"}, // sun 06:00 -02
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range tc.checks {
				at, want := utc(t, c.t), utc(t, c.next)
				require.Equal(t, c.contains, tc.w.Contains(at), "Contains(%s)", c.t)
				got := tc.w.NextOpen(at)
				require.True(t, want.Equal(got), "NextOpen(%s): want %s, got %s", c.t, c.next, got.UTC())
			}
		})
	}
}

func BenchmarkNextOpen(b *testing.B) {
	w := mustWindow(b, "sat,sun", "22:00", "04:00", "Europe/Berlin")
	monday := local(b, "Europe/Berlin", "2025-06-02 12:00:00")
	for b.Loop() {
		_ = w.NextOpen(monday)
	}
}
