package schedule

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestParseWindowFlag(t *testing.T) {
	tests := []struct{ value, want string }{
		{"mon-fri 22:00-04:00 Europe/Berlin", "mon,tue,wed,thu,fri 22:00-04:00 Europe/Berlin"},
		{"fri-mon 22:00-04:00", "mon,fri,sat,sun 22:00-04:00 UTC"},
		{"sun-sun 01:00-02:00 utc", "sun 01:00-02:00 UTC"},
		{"MON,wed-Thu,saturday 9:00-17:30:15 local", "mon,wed,thu,sat 09:00-17:30:15 Local"},
		{"* 00:00-24:00 America/New_York", "mon,tue,wed,thu,fri,sat,sun 00:00-24:00 America/New_York"},
		{"  \tsat  22:00-00:00 \n", "sat 22:00-00:00 UTC"},
		{`"sat" "01:00-02:00" "Europe/Berlin"`, "sat 01:00-02:00 Europe/Berlin"},
		{`cron "0 2 * * sat" 4h UTC`, `cron "0 2 * * sat" 4h UTC`},
		{`CRON  "  30   2 * *   SAT,sun "  90m  Europe/Berlin`, `cron "30 2 * * SAT,sun" 1h30m Europe/Berlin`},
		{`cron @daily 3h`, `cron "@daily" 3h UTC`},
		{`cron "@weekly" 1h0m30s America/New_York`, `cron "@weekly" 1h0m30s America/New_York`},
		{`cron "0 */6 1,15 jan-mar *" 168h UTC`, `cron "0 */6 1,15 jan-mar *" 168h UTC`},
		{`cron "0 0 29 2 *" 1s UTC`, `cron "0 0 29 2 *" 1s UTC`},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			w, err := ParseWindowFlag(tc.value)
			require.NoError(t, err)
			require.Equal(t, tc.want, w.String())
			back, err := ParseWindowFlag(w.String())
			require.NoError(t, err)
			require.Equal(t, tc.want, back.String())
		})
	}
}

func TestParseWindowFlagErrors(t *testing.T) {
	const weekly = `want DAYS START-END [ZONE], e.g. mon-fri 22:00-04:00 Europe/Berlin, or cron "EXPR" DURATION [ZONE]`
	const cron = `want cron "EXPR" DURATION [ZONE] with EXPR in double quotes, e.g. cron "0 2 * * sat" 4h UTC`
	tests := []struct{ value, why string }{
		{"", weekly},
		{"mon-fri", weekly},
		{"mon-fri 22:00-04:00 Europe/Berlin extra", weekly},
		{"mon-fru 22:00-04:00", `unknown day "fru" (want mon, tue, wed, thu, fri, sat, sun, a range such as mon-fri, or *)`},
		{"mon,,tue 22:00-04:00", `unknown day "" (want mon, tue, wed, thu, fri, sat, sun, a range such as mon-fri, or *)`},
		{"mon-tue-wed 22:00-04:00", `unknown day "tue-wed" (want mon, tue, wed, thu, fri, sat, sun, a range such as mon-fri, or *)`},
		{"mon 22:00", `hours "22:00": want START-END, e.g. 22:00-04:00`},
		{"mon 25:00-04:00", `start "25:00" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon 24:00-04:00", `start "24:00" is the end of the day; it is only valid as an end`},
		{"mon 22:00-4", `end "4" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon 22:00-04:00-05:00", `end "04:00-05:00" is not a time of day (want HH:MM or HH:MM:SS, 24-hour)`},
		{"mon 04:00-04:00:00", `hours "04:00-04:00:00": start and end are equal, which would make an empty window (use 00:00-24:00 for the whole day)`},
		{"mon 22:00-04:00 Mars/Olympus", `unknown time zone "Mars/Olympus"`},
		{`mon 22:00-04:00 "Europe/Berlin`, `unterminated double quote`},
		{`mon 22:00-04:00 Europe/"Berlin"`, `stray double quote in "Europe/\"Berlin\""`},
		{`cron`, cron},
		{`cron 0 2 * * sat 4h UTC`, cron},
		{`cron "0 2 * * sat"`, cron},
		{`cron "0 2 * * sat" 4 UTC`, `duration "4": want a duration such as 4h or 90m`},
		{`cron "0 2 * * sat" 0s UTC`, `duration 0s: want a positive duration up to 168h`},
		{`cron "0 2 * * sat" -1h UTC`, `duration -1h: want a positive duration up to 168h`},
		{`cron "0 2 * * sat" 168h1s UTC`, `duration 168h0m1s: want a positive duration up to 168h`},
		{`cron "0 2 * * sat" 4h Mars/Olympus`, `unknown time zone "Mars/Olympus"`},
		{`cron "" 4h`, `empty cron expression`},
		{`cron "0 2 * *" 4h`, `cron expression "0 2 * *": expected exactly 5 fields, found 4: [0 2 * *]`},
		{`cron "0 0 2 * * sat" 4h`, `cron expression "0 0 2 * * sat": expected exactly 5 fields, found 6: [0 0 2 * * sat]`},
		{`cron "0 25 * * *" 4h`, `cron expression "0 25 * * *": end of range (25) above maximum (23): 25`},
		{`cron "0 2 * * sunday" 4h`, `cron expression "0 2 * * sunday": failed to parse int from sunday: strconv.Atoi: parsing "sunday": invalid syntax`},
		// Unlike DAYS, a cron range does not wrap past the end of the week.
		{`cron "0 2 * * sat-sun" 4h`, `cron expression "0 2 * * sat-sun": beginning of range (6) beyond end of range (0): sat-sun`},
		{`cron "0 0 31 4 *" 4h`, `cron expression "0 0 31 4 *" names no date that exists`},
		{`cron "*/5 * * * *" 4h`, `cron expression "*/5 * * * *" opens more than once an hour (name a single minute, e.g. "0 */6 * * *")`},
		{`cron "0,30 2 * * *" 4h`, `cron expression "0,30 2 * * *" opens more than once an hour (name a single minute, e.g. "0 */6 * * *")`},
		{`cron "@every 1h" 4h`, `cron expression "@every 1h" is an interval, not a time of day (want five fields, or @daily, @weekly and the like)`},
		{`cron "@fortnightly" 4h`, `cron expression "@fortnightly": unrecognized descriptor: @fortnightly`},
		{`cron "TZ=Europe/Berlin 0 2 * * *" 4h`, `cron expression "TZ=Europe/Berlin 0 2 * * *" sets a time zone; give the zone after the duration`},
		{`cron "CRON_TZ=UTC" 4h`, `cron expression "CRON_TZ=UTC" sets a time zone; give the zone after the duration`},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			w, err := ParseWindowFlag(tc.value)
			require.Nil(t, w)
			require.EqualError(t, err, fmt.Sprintf("--window %q: %s", tc.value, tc.why))
		})
	}
}

func TestParseBlackout(t *testing.T) {
	tests := []struct {
		value, want string
		from, until string // RFC 3339
	}{
		{"2026-12-24", "2026-12-24 UTC", "2026-12-24T00:00:00Z", "2026-12-25T00:00:00Z"},
		{" 2026-12-24..2027-01-02  Europe/Berlin ", "2026-12-24..2027-01-02 Europe/Berlin",
			"2026-12-23T23:00:00Z", "2027-01-02T23:00:00Z"},
		{"2026-12-24..2026-12-24 utc", "2026-12-24 UTC", "2026-12-24T00:00:00Z", "2026-12-25T00:00:00Z"},
		// Berlin's spring-forward day has 23 hours, its fall-back day 25.
		{"2025-03-30 Europe/Berlin", "2025-03-30 Europe/Berlin", "2025-03-29T23:00:00Z", "2025-03-30T22:00:00Z"},
		{"2025-10-26 Europe/Berlin", "2025-10-26 Europe/Berlin", "2025-10-25T22:00:00Z", "2025-10-26T23:00:00Z"},
		// That day in Sao Paulo had no midnight: it began at 01:00.
		{"2018-11-04 America/Sao_Paulo", "2018-11-04 America/Sao_Paulo", "2018-11-04T03:00:00Z", "2018-11-05T02:00:00Z"},
		{"2026-12-24T18:00:00+01:00..2026-12-27T06:00:00+01:00",
			"2026-12-24T18:00:00+01:00..2026-12-27T06:00:00+01:00", "2026-12-24T17:00:00Z", "2026-12-27T05:00:00Z"},
		{"2026-12-24T18:00:00.5Z..2026-12-24T18:00:01Z",
			"2026-12-24T18:00:00.5Z..2026-12-24T18:00:01Z", "2026-12-24T18:00:00.5Z", "2026-12-24T18:00:01Z"},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			b, err := ParseBlackout(tc.value)
			require.NoError(t, err)
			require.Equal(t, tc.want, b.String())
			from, until := utc(t, tc.from), utc(t, tc.until)
			require.True(t, from.Equal(b.From()), "from %s", b.From())
			require.True(t, until.Equal(b.Until()), "until %s", b.Until())
			require.True(t, b.Contains(from))
			require.False(t, b.Contains(until))
			require.False(t, b.Contains(from.Add(-1)))
			require.True(t, b.Contains(until.Add(-1)))
		})
	}
}

func TestParseBlackoutErrors(t *testing.T) {
	const syntax = "want DAY[..DAY] [ZONE] or INSTANT..INSTANT " +
		"(2026-12-24..2027-01-02 Europe/Berlin, 2026-12-24T18:00:00+01:00..2026-12-27T06:00:00+01:00)"
	tests := []struct{ value, why string }{
		{"", syntax},
		{"2026-12-24 Europe/Berlin extra", syntax},
		{"2026-12-32", `"2026-12-32" is not a day (want YYYY-MM-DD)`},
		{"2026-02-29", `"2026-02-29" is not a day (want YYYY-MM-DD)`},
		{"2026-12-24..2026-1-02", `"2026-12-24..2026-1-02": want both ends days (YYYY-MM-DD) or both RFC 3339 instants`},
		{"2027-01-02..2026-12-24", `last day 2026-12-24 is before the first, 2027-01-02`},
		{"2026-12-24 Mars/Olympus", `unknown time zone "Mars/Olympus"`},
		{"christmas", `"christmas" is not a day (YYYY-MM-DD); a blackout of instants needs both ends: START..END`},
		{"2026-12-24T18:00:00Z", `"2026-12-24T18:00:00Z" is not a day (YYYY-MM-DD); a blackout of instants needs both ends: START..END`},
		{"2026-12-24..2026-12-27T06:00:00Z", `"2026-12-24..2026-12-27T06:00:00Z": want both ends days (YYYY-MM-DD) or both RFC 3339 instants`},
		{"2026-12-24T18:00:00Z..2026-12-27T06:00:00Z UTC", `zone "UTC": RFC 3339 instants carry their own offset, so take no zone`},
		{"2026-12-24 18:00..2026-12-27T06:00:00Z", `unknown time zone "18:00..2026-12-27T06:00:00Z"`},
		{"2026-12-24T18:00:00..2026-12-27T06:00:00Z", `"2026-12-24T18:00:00" is neither a day (YYYY-MM-DD) nor an RFC 3339 instant`},
		{"2026-12-24T18:00:00Z..tomorrow", `"tomorrow" is not an RFC 3339 instant like the start`},
		{"2026-12-24T18:00:00Z..2026-12-24T19:00:00+01:00", `end 2026-12-24T19:00:00+01:00 is not after the start, 2026-12-24T18:00:00Z`},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			b, err := ParseBlackout(tc.value)
			require.Equal(t, Blackout{}, b)
			require.EqualError(t, err, fmt.Sprintf("--blackout %q: %s", tc.value, tc.why))
		})
	}
}

func TestParseReportsEveryBadValue(t *testing.T) {
	s, err := Parse([]string{"mon 22:00-04:00", "mon-fru 22:00-04:00", `cron "0 2 * *" 4h`},
		[]string{"2026-12-24", "2026-13-01"})
	require.Equal(t, Schedule{}, s)
	require.ErrorContains(t, err, `--window "mon-fru 22:00-04:00": unknown day "fru"`)
	require.ErrorContains(t, err, `--window "cron \"0 2 * *\" 4h": cron expression "0 2 * *": expected exactly 5 fields`)
	require.ErrorContains(t, err, `--blackout "2026-13-01": "2026-13-01" is not a day`)
	require.NotContains(t, err.Error(), `"mon 22:00-04:00"`)
}
