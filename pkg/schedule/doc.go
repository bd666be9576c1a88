// Package schedule holds the maintenance schedule: when a node may be
// rebooted. A Schedule is a list of windows (it is open when any of them is)
// minus blackout periods (no window is open inside one). A Schedule without
// windows is always open, except in its blackouts; the zero Schedule is
// always open.
//
// # Weekly windows
//
// A Window opens on given days at a wall-clock time in one zone, as set by
// --reboot-days, --start-time, --end-time and --time-zone. Semantics, chosen
// so that a window behaves the way an operator reads it:
//
//   - The day list names the day a window OPENS. "fri 22:00-04:00" opens on
//     Friday at 22:00 and closes on Saturday at 04:00; it does not open on
//     Saturday evening.
//   - Start is inclusive, end is exclusive. End "24:00" means the end of the
//     day; an end earlier than the start wraps past midnight.
//   - Start equal to end is rejected: it would be ambiguous between "never"
//     and "always". "00:00"-"24:00" on every day is the always-open window.
//   - Times are wall-clock times in the window's zone, so a window keeps its
//     local hours across daylight-saving changes. A wall-clock time that the
//     clock skips (spring forward) is taken to be the moment of the jump; a
//     time the clock shows twice (fall back) is its first occurrence. So on a
//     spring-forward day "02:30-04:00" in Europe/Berlin opens at 03:00, and a
//     window lying wholly inside the skipped hour is empty that day.
//
// # Cron windows
//
// A CronWindow opens at the times a cron expression names and stays open for
// a fixed duration. The expression is the standard five fields (minute, hour,
// day of month, month, day of week; names such as "sat" and "jan" allowed) or
// one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly.
// It must name a single minute: a window opening several times an hour is
// no maintenance window, and queries would walk every opening.
// The times it names are wall-clock times in the window's zone, read the same
// way as a weekly window's start: a skipped time opens at the moment of the
// jump and a repeated time opens once, at its first occurrence. (The cron
// library alone would skip the first and open twice at the second.) Unlike
// a weekly window, whose end is a wall-clock time too, a cron window is
// never empty: one whose time lies in a skipped hour still opens. The
// duration is elapsed time, not wall-clock time: "4h" is four real hours even
// across a change, because it is what a reboot cycle needs.
//
// # The --window flag
//
// --window may be given several times; each value is one window:
//
//	DAYS START-END [ZONE]          weekly, e.g. mon-fri 22:00-04:00 Europe/Berlin
//	cron "EXPR" DURATION [ZONE]    cron,   e.g. cron "0 2 * * sat" 4h UTC
//
// DAYS is "*" or a comma list of days and day ranges: mon,wed-fri; a range
// may wrap (fri-mon is fri,sat,sun,mon); full names are fine. START and END
// are HH:MM or HH:MM:SS as above. EXPR must be in double quotes unless it is
// one word (cron @daily 3h). DURATION is a Go duration (90m, 1h30m) from 1s
// to 168h: a longer window is better said as no window minus blackouts. ZONE
// is an IANA zone name, UTC or Local, and defaults to UTC. The keyword "cron"
// and day names are case-insensitive.
//
// # The --blackout flag
//
// --blackout may be given several times; each value is one period:
//
//	DAY [ZONE]                     2026-12-24 Europe/Berlin: that whole day
//	DAY..DAY [ZONE]                2026-12-24..2027-01-02: both days included
//	INSTANT..INSTANT               2026-12-24T18:00:00+01:00..2026-12-27T06:00:00+01:00
//
// Days are YYYY-MM-DD and run from midnight to midnight in ZONE (default
// UTC), with midnight read like a window's start across daylight saving.
// Instants are RFC 3339; their end is exclusive and they carry their own
// offset, so they take no zone.
//
// # Queries
//
// The queries are pure functions of time. They look at most Horizon ahead:
// Next and NextFit return the zero time when the schedule does not open (or
// no cycle fits) within it, and CloseAfter returns the zero time when the
// schedule stays open past it.
package schedule
