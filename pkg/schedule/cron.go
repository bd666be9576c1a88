package schedule

import (
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// maxCronDuration bounds how long a cron window stays open. Finding the span
// that covers an instant walks the openings of the last duration, and a window
// open for over a week reads better as no window minus blackouts.
const maxCronDuration = 7 * day

// CronWindow opens at the times a cron expression names, read as wall-clock
// times in its zone, and stays open for a fixed elapsed duration. Build one
// with ParseWindowFlag; the zero CronWindow never opens.
type CronWindow struct {
	expr string
	// spec is kept in UTC and fed wall-clock readings (see reading), so that
	// the library never sees a daylight-saving change: it would skip a
	// skipped time and match a repeated one twice. Its minute field is 0
	// and the expression's single minute is kept apart; see nextReading.
	spec   *cron.SpecSchedule
	minute time.Duration
	dur    time.Duration
	loc    *time.Location
}

// newCronParser accepts the standard five fields and the descriptors. It is
// made per call rather than kept in a package variable: no package state.
func newCronParser() cron.Parser {
	return cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
}

// parseCron builds a CronWindow; its errors say what is wrong, not the flag.
func parseCron(expr string, dur time.Duration, loc *time.Location) (CronWindow, error) {
	expr = strings.Join(strings.Fields(expr), " ")
	spec, minute, err := parseCronExpr(expr)
	if err != nil {
		return CronWindow{}, err
	}
	if dur <= 0 || dur > maxCronDuration {
		return CronWindow{}, fmt.Errorf("duration %s: want a positive duration up to %s",
			formatDuration(dur), formatDuration(maxCronDuration))
	}
	return CronWindow{expr: expr, spec: spec, minute: minute, dur: dur, loc: loc}, nil
}

// parseCronExpr returns the expression's schedule with its one minute set
// apart (see nextReading).
func parseCronExpr(expr string) (*cron.SpecSchedule, time.Duration, error) {
	switch {
	case expr == "":
		return nil, 0, errors.New("empty cron expression")
	case strings.Contains(expr, "="):
		// The library reads a TZ= prefix itself (and panics on one with
		// nothing after it); here the zone comes after the duration.
		return nil, 0, fmt.Errorf("cron expression %q sets a time zone; give the zone after the duration", expr)
	case strings.HasPrefix(expr, "@every"):
		return nil, 0, fmt.Errorf("cron expression %q is an interval, not a time of day "+
			"(want five fields, or @daily, @weekly and the like)", expr)
	}
	sched, err := newCronParser().Parse(expr)
	if err != nil {
		return nil, 0, fmt.Errorf("cron expression %q: %w", expr, err)
	}
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return nil, 0, fmt.Errorf("cron expression %q is not a calendar schedule", expr)
	}
	// Openings minutes apart make no maintenance window, and would make a
	// query walk every one of them; an hour apart keeps that cheap.
	minutes := spec.Minute & (1<<60 - 1)
	if bits.OnesCount64(minutes) != 1 {
		return nil, 0, fmt.Errorf("cron expression %q opens more than once an hour "+
			"(name a single minute, e.g. \"0 */6 * * *\")", expr)
	}
	spec.Minute, spec.Location = 1, time.UTC
	// The library looks five years ahead; from a leap year's start that
	// finds every date there is, 29 February included.
	if spec.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)).IsZero() {
		return nil, 0, fmt.Errorf("cron expression %q names no date that exists", expr)
	}
	return spec, time.Duration(bits.TrailingZeros64(minutes)) * time.Minute, nil
}

// span is the earliest span of the window that closes after t. Spans all
// last dur, so that is the one of the first opening later than t-dur.
func (c CronWindow) span(t time.Time) (from, until time.Time, ok bool) {
	open, ok := c.nextOpening(t.Add(-c.dur))
	return open, open.Add(c.dur), ok
}

// reach is the end of the span of the last opening at or before t, if that
// span is open at t.
func (c CronWindow) reach(t time.Time) (time.Time, bool) {
	last, _, ok := c.span(t)
	if !ok || last.After(t) {
		return time.Time{}, false
	}
	// A sparse expression has few openings after the first that covers t,
	// a dense one many, found sooner by looking back from t a growing stretch.
	for range 4 {
		next, ok := c.nextOpening(last)
		if !ok || next.After(t) {
			return last.Add(c.dur), true
		}
		last = next
	}
	for look := time.Minute; ; look *= 4 {
		// Looking back to last finds it at least.
		if found, ok := c.lastOpening(latest(t.Add(-look), last.Add(-1)), t); ok {
			return found.Add(c.dur), true
		}
	}
}

// lastOpening returns the last opening later than after and not later than t.
func (c CronWindow) lastOpening(after, t time.Time) (time.Time, bool) {
	var last time.Time
	found := false
	for open, ok := c.nextOpening(after); ok && !open.After(t); open, ok = c.nextOpening(open) {
		last, found = open, true
	}
	return last, found
}

// nextOpening returns the first opening later than after.
func (c CronWindow) nextOpening(after time.Time) (time.Time, bool) {
	if c.spec == nil {
		return time.Time{}, false
	}
	// No reading up to after's own opens later than after (a reading opens
	// at its first occurrence), so the walk starts there; it passes over at
	// most the readings of a repeated hour.
	r := reading(c.loc, after)
	for {
		if r = c.nextReading(r); r.IsZero() {
			return time.Time{}, false
		}
		if open := firstInstant(c.loc, r); open.After(after) {
			return open, true
		}
	}
}

// nextReading returns the first reading later than r that the expression
// names, or the zero time if there is none within five years. The library
// would step to the expression's minute a minute at a time; asked for the
// whole hours of a spec at minute 0, with the minute added after, it does not.
func (c CronWindow) nextReading(r time.Time) time.Time {
	// Readings are UTC, so Truncate finds the hour on the clock.
	hour := r.Add(-c.minute).Truncate(time.Hour).Add(time.Hour)
	next := c.spec.Next(hour.Add(-time.Second)) // Next is strictly later
	if next.IsZero() {
		return next
	}
	return next.Add(c.minute)
}

// reading is the wall clock t shows in loc, written as a UTC time.
func reading(loc *time.Location, t time.Time) time.Time {
	return asUTC(t.In(loc))
}

// firstInstant is the first instant at which the clock in loc shows the
// reading r (a UTC time, see reading), or the moment it jumps over r.
func firstInstant(loc *time.Location, r time.Time) time.Time {
	date := time.Date(r.Year(), r.Month(), r.Day(), 0, 0, 0, 0, time.UTC)
	return wallClock(loc, date, r.Sub(date))
}

// String renders the window as ParseWindowFlag reads it:
// cron "0 2 * * sat" 4h UTC. A valid expression is plain ASCII without
// quotes, so it needs no escaping.
func (c CronWindow) String() string {
	loc := c.loc
	if loc == nil {
		loc = time.UTC
	}
	return fmt.Sprintf(`cron "%s" %s %s`, c.expr, formatDuration(c.dur), loc)
}

// formatDuration drops the zero minutes and seconds time.Duration prints:
// 4h, 1h30m, 90s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
