package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	// Embedded zone data so that --time-zone works in minimal container
	// images without /usr/share/zoneinfo.
	_ "time/tzdata"
)

const day = 24 * time.Hour

// Window is a weekly maintenance window. The zero Window is always open.
type Window struct {
	days  [7]bool       // indexed by time.Weekday: the window opens on that day
	start time.Duration // wall-clock offset from midnight, in [0, 24h)
	end   time.Duration // wall-clock offset from midnight, in [0, 24h]; <= start wraps
	loc   *time.Location
}

// weekOrder is the order days are printed in: the working week first.
var weekOrder = [7]time.Weekday{
	time.Monday, time.Tuesday, time.Wednesday, time.Thursday,
	time.Friday, time.Saturday, time.Sunday,
}

// ParseWindow builds a Window from the values of --reboot-days, --start-time,
// --end-time and --time-zone. Errors name the flag and the bad value.
func ParseWindow(days, start, end, timeZone string) (Window, error) {
	var w Window
	var err error
	if w.days, err = parseDays(days); err != nil {
		return Window{}, err
	}
	if w.start, err = parseTimeOfDay("--start-time", start, false); err != nil {
		return Window{}, err
	}
	if w.end, err = parseTimeOfDay("--end-time", end, true); err != nil {
		return Window{}, err
	}
	if w.start == w.end {
		return Window{}, fmt.Errorf("--start-time %q and --end-time %q: start and end are equal, "+
			"which would make an empty window (use 00:00 and 24:00 for the whole day)",
			strings.TrimSpace(start), strings.TrimSpace(end))
	}
	if w.loc, err = parseZone(timeZone); err != nil {
		return Window{}, err
	}
	return w, nil
}

// parseDays reads a comma list of day names; "" and "*" mean every day.
func parseDays(s string) ([7]bool, error) {
	var days [7]bool
	s = strings.TrimSpace(s)
	if s == "" || s == "*" {
		return [7]bool{true, true, true, true, true, true, true}, nil
	}
	found := false
	for _, item := range strings.Split(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		if item == "" {
			continue // tolerate "mon,,tue" and a trailing comma
		}
		d, ok := dayByName(item)
		if !ok {
			return days, fmt.Errorf("--reboot-days: unknown day %q (want mon,tue,wed,thu,fri,sat,sun)", item)
		}
		days[d] = true
		found = true
	}
	if !found {
		return days, fmt.Errorf("--reboot-days: no day in %q (want mon,tue,wed,thu,fri,sat,sun or *)", s)
	}
	return days, nil
}

// dayByName accepts a lower-case three-letter abbreviation or full day name.
func dayByName(name string) (time.Weekday, bool) {
	for d := time.Sunday; d <= time.Saturday; d++ {
		full := strings.ToLower(d.String())
		if name == full || name == full[:3] {
			return d, true
		}
	}
	return 0, false
}

// parseTimeOfDay reads a --start-time or --end-time value; see timeOfDay.
func parseTimeOfDay(flag, s string, isEnd bool) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := timeOfDay(s, isEnd)
	switch {
	case errors.Is(err, errEndOfDay):
		return 0, fmt.Errorf("%s: %q is the end of the day; it is only valid as --end-time", flag, s)
	case err != nil:
		return 0, fmt.Errorf("%s: %q %w", flag, s, err)
	}
	return d, nil
}

// The reasons timeOfDay gives; callers put the flag and value in front.
var (
	errNotTimeOfDay = errors.New("is not a time of day (want HH:MM or HH:MM:SS, 24-hour)")
	errEndOfDay     = errors.New("is the end of the day; it is only valid as an end")
)

// timeOfDay reads "HH:MM" or "HH:MM:SS" (24-hour clock) as an offset from
// midnight. "24:00" is the end of the day and only makes sense as an end.
func timeOfDay(s string, isEnd bool) (time.Duration, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 2 && len(parts) != 3 {
		return 0, errNotTimeOfDay
	}
	limits := []int{24, 59, 59} // 24 is let through here and checked below
	var fields [3]int
	for i, p := range parts {
		// Minutes and seconds have exactly two digits so "9:5" is not
		// silently read as 09:05; the hour may have one ("9:00").
		if len(p) < 1 || len(p) > 2 || (i > 0 && len(p) != 2) || !allDigits(p) {
			return 0, errNotTimeOfDay
		}
		n, err := strconv.Atoi(p)
		if err != nil || n > limits[i] {
			return 0, errNotTimeOfDay
		}
		fields[i] = n
	}
	d := time.Duration(fields[0])*time.Hour + time.Duration(fields[1])*time.Minute +
		time.Duration(fields[2])*time.Second
	switch {
	case d > day:
		return 0, errNotTimeOfDay
	case d == day && !isEnd:
		return 0, errEndOfDay
	}
	return d, nil
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// parseZone reads a --time-zone value; see loadZone.
func parseZone(s string) (*time.Location, error) {
	s = strings.TrimSpace(s)
	loc, ok := loadZone(s)
	if !ok {
		return nil, fmt.Errorf("--time-zone: unknown time zone %q", s)
	}
	return loc, nil
}

// loadZone loads an IANA zone; "UTC" and "Local" are accepted in any case and
// an empty value means UTC, as it does for time.LoadLocation.
func loadZone(s string) (*time.Location, bool) {
	switch {
	case strings.EqualFold(s, "UTC"):
		return time.UTC, true
	case strings.EqualFold(s, "Local"):
		return time.Local, true
	}
	loc, err := time.LoadLocation(s)
	return loc, err == nil
}

// AlwaysOpen reports whether the window never closes: every day, 00:00-24:00.
func (w Window) AlwaysOpen() bool {
	if w.loc == nil {
		return true // the zero Window
	}
	for _, open := range w.days {
		if !open {
			return false
		}
	}
	// Each day's window then ends exactly where the next one begins, in
	// every zone, because both ends are the same wall-clock midnight.
	return w.start == 0 && w.end == day
}

// Contains reports whether t falls inside the window.
func (w Window) Contains(t time.Time) bool {
	if w.AlwaysOpen() {
		return true
	}
	open, _, ok := w.next(t)
	return ok && !open.After(t)
}

// NextOpen returns the first instant at or after t when the window is open:
// t itself when the window is open at t. It returns the zero time only if the
// window never opens in the next two weeks, which no real zone makes happen
// (a window could only vanish on the day of a daylight-saving jump).
func (w Window) NextOpen(t time.Time) time.Time {
	if w.AlwaysOpen() {
		return t
	}
	open, _, ok := w.next(t)
	switch {
	case !ok:
		return time.Time{}
	case open.After(t):
		return open
	default:
		return t
	}
}

// next returns the earliest non-empty window that closes after t. Windows of
// successive opening days never overlap (a wrapping window closes before the
// next day's start), so scanning days in order finds it.
func (w Window) next(t time.Time) (from, until time.Time, ok bool) {
	y, m, d := t.In(w.loc).Date()
	// Start two days back: yesterday's window may still be open after
	// midnight, and one more day covers a daylight-saving jump at midnight.
	for i := -2; i <= 15; i++ {
		// Calendar arithmetic only, so UTC is safe here.
		date := time.Date(y, m, d+i, 0, 0, 0, 0, time.UTC)
		if !w.days[date.Weekday()] {
			continue
		}
		from, until := w.on(date)
		if until.After(t) && until.After(from) {
			return from, until, true
		}
	}
	return time.Time{}, time.Time{}, false
}

// on returns the window opening on the given calendar date (read in UTC).
func (w Window) on(date time.Time) (from, until time.Time) {
	endDate := date
	if w.end <= w.start {
		endDate = date.AddDate(0, 0, 1) // wraps past midnight
	}
	return wallClock(w.loc, date, w.start), wallClock(w.loc, endDate, w.end)
}

// wallClock returns the first instant at which the clock in loc reads the
// calendar date of date (a UTC midnight) plus offset. If the clock skips that
// reading it returns the moment of the jump. time.Date alone does not do
// this: for a skipped time it moves forward or backward depending on the
// sign of the zone's offset, and for a repeated time it picks either.
func wallClock(loc *time.Location, date time.Time, offset time.Duration) time.Time {
	want := date.Add(offset) // the wanted wall clock, expressed in UTC
	t := time.Date(want.Year(), want.Month(), want.Day(),
		want.Hour(), want.Minute(), want.Second(), 0, loc)
	got := asUTC(t)
	zoneStart, zoneEnd := t.ZoneBounds()
	switch {
	case got.After(want):
		return zoneStart // skipped; time.Date landed after the jump
	case got.Before(want):
		return zoneEnd // skipped; time.Date landed before the jump
	case zoneStart.IsZero():
		return t // the zone never changes here
	}
	// The clock may have shown this reading before, in the previous zone.
	_, prevOffset := zoneStart.Add(-time.Nanosecond).Zone()
	earlier := want.Add(-time.Duration(prevOffset) * time.Second).In(loc)
	if earlier.Before(zoneStart) && asUTC(earlier).Equal(want) {
		return earlier
	}
	return t
}

// asUTC reinterprets t's wall clock as a UTC time, to compare wall clocks.
func asUTC(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(),
		t.Nanosecond(), time.UTC)
}

// String renders the window as "mon,tue 22:00-04:00 Europe/Berlin", the same
// values ParseWindow accepts, for logs and Events.
func (w Window) String() string {
	if w.loc == nil {
		w = Window{days: [7]bool{true, true, true, true, true, true, true}, end: day, loc: time.UTC}
	}
	names := make([]string, 0, 7)
	for _, d := range weekOrder {
		if w.days[d] {
			names = append(names, strings.ToLower(d.String()[:3]))
		}
	}
	return fmt.Sprintf("%s %s-%s %s", strings.Join(names, ","),
		formatTimeOfDay(w.start), formatTimeOfDay(w.end), w.loc)
}

func formatTimeOfDay(d time.Duration) string {
	h, m, s := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	if s != 0 {
		return fmt.Sprintf("%02d:%02d:%02d", h, m, s)
	}
	return fmt.Sprintf("%02d:%02d", h, m)
}

// span is the earliest span of the window that closes after t, for Schedule.
// An always-open window has a single span reaching past the horizon.
func (w Window) span(t time.Time) (from, until time.Time, ok bool) {
	if w.AlwaysOpen() {
		return t, t.Add(2 * Horizon), true
	}
	return w.next(t)
}

// reach is the end of the span open at t: spans of a Window never overlap.
func (w Window) reach(t time.Time) (time.Time, bool) {
	from, until, ok := w.span(t)
	return until, ok && !from.After(t)
}
