package schedule

import (
	"errors"
	"slices"
	"strings"
	"time"
)

// Horizon is how far ahead the queries look. It is over a year so that a
// yearly window is found, and bounds the work a query can do.
const Horizon = 400 * 24 * time.Hour

// Schedule is a list of windows minus blackouts: open when any window is open
// and no blackout is in force. Without windows it is open at all times outside
// its blackouts; the zero Schedule is always open. A Schedule is immutable
// and safe for concurrent use.
type Schedule struct {
	windows   []Recurrence
	blackouts []Blackout
}

// New returns the schedule of the given windows and blackouts. The windows
// must not be nil.
func New(windows []Recurrence, blackouts []Blackout) Schedule {
	return Schedule{windows: slices.Clone(windows), blackouts: slices.Clone(blackouts)}
}

// Parse builds a Schedule from the values of the repeatable --window and
// --blackout flags. It reports every bad value, not just the first.
func Parse(windows, blackouts []string) (Schedule, error) {
	var s Schedule
	var errs []error
	for _, v := range windows {
		w, err := ParseWindowFlag(v)
		errs = append(errs, err)
		if err == nil {
			s.windows = append(s.windows, w)
		}
	}
	for _, v := range blackouts {
		b, err := ParseBlackout(v)
		errs = append(errs, err)
		if err == nil {
			s.blackouts = append(s.blackouts, b)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Schedule{}, err
	}
	return s, nil
}

// recurrences are the windows, or the always-open one when there are none.
func (s Schedule) recurrences() []Recurrence {
	if len(s.windows) == 0 {
		return []Recurrence{Window{}}
	}
	return s.windows
}

// Open reports whether the schedule is open at t.
func (s Schedule) Open(t time.Time) bool {
	if _, in := s.blackoutAt(t); in {
		return false
	}
	u, ok := s.windowsNext(t)
	return ok && u.Equal(t)
}

// Next returns the first instant at or after t when the schedule is open: t
// itself if it is open at t, the zero time if it does not open within Horizon.
func (s Schedule) Next(t time.Time) time.Time {
	loc, limit := t.Location(), t.Add(Horizon)
	for {
		u, ok := s.windowsNext(t)
		if !ok || u.After(limit) {
			return time.Time{}
		}
		// Each blackout is jumped over at most once, so this ends.
		end, in := s.blackoutAt(u)
		if !in {
			return u.In(loc)
		}
		t = end
	}
}

// CloseAfter returns when the schedule, open at t, closes: the end of the
// window open at t merged with the windows that overlap or touch it, cut by
// the first blackout. It returns t if the schedule is closed at t and the zero
// time if it stays open for longer than Horizon.
func (s Schedule) CloseAfter(t time.Time) time.Time {
	if !s.Open(t) {
		return t
	}
	end, closes := s.closeBefore(t, t.Add(Horizon))
	if !closes {
		return time.Time{}
	}
	return end.In(t.Location())
}

// Fits reports whether a cycle of expected duration d started at t finishes
// before the schedule closes: the schedule is open from t to t+d. It is false
// for a d longer than Horizon, which the queries do not look past.
func (s Schedule) Fits(t time.Time, d time.Duration) bool {
	if d > Horizon || !s.Open(t) {
		return false
	}
	_, closes := s.closeBefore(t, t.Add(d))
	return !closes
}

// NextFit returns the earliest instant at or after t at which a cycle of
// duration d fits, or the zero time if there is none within Horizon.
func (s Schedule) NextFit(t time.Time, d time.Duration) time.Time {
	if d > Horizon {
		return time.Time{}
	}
	loc, limit := t.Location(), t.Add(Horizon)
	// Only the first instant of each open stretch can be the answer: if a
	// cycle does not fit from there, it fits from no later instant of it.
	for u := s.Next(t); !u.IsZero() && !u.After(limit); u = s.Next(t) {
		end, closes := s.closeBefore(u, u.Add(d))
		if !closes {
			return u.In(loc)
		}
		t = end
	}
	return time.Time{}
}

// closeBefore returns when the schedule, open at t, closes, if it does
// before limit: looking no further keeps a long stretch cheap to check.
func (s Schedule) closeBefore(t, limit time.Time) (time.Time, bool) {
	end, closes := s.windowsClose(t, limit)
	if cut, ok := s.blackoutAfter(t); ok && cut.Before(limit) && (!closes || cut.Before(end)) {
		return cut, true
	}
	return end, closes
}

// windowsNext returns the first instant at or after t inside a window,
// blackouts aside.
func (s Schedule) windowsNext(t time.Time) (time.Time, bool) {
	var first time.Time
	found := false
	for _, w := range s.recurrences() {
		from, _, ok := w.span(t)
		if !ok {
			continue
		}
		from = latest(from, t)
		if !found || from.Before(first) {
			first, found = from, true
		}
	}
	return first, found
}

// windowsClose returns the end of the stretch of windows open from t, in
// which spans that overlap or touch are one, if it ends before limit.
func (s Schedule) windowsClose(t, limit time.Time) (time.Time, bool) {
	end := t
	for end.Before(limit) {
		next := end
		for _, w := range s.recurrences() {
			if until, ok := w.reach(end); ok {
				next = latest(next, until)
			}
		}
		if next.Equal(end) {
			return end, true
		}
		end = next
	}
	return end, false
}

// blackoutAt returns the end of a blackout in force at t.
func (s Schedule) blackoutAt(t time.Time) (time.Time, bool) {
	for _, b := range s.blackouts {
		if b.Contains(t) {
			return b.until, true
		}
	}
	return time.Time{}, false
}

// blackoutAfter returns the first start of a blackout later than t.
func (s Schedule) blackoutAfter(t time.Time) (time.Time, bool) {
	var first time.Time
	found := false
	for _, b := range s.blackouts {
		if b.from.After(t) && (!found || b.from.Before(first)) {
			first, found = b.from, true
		}
	}
	return first, found
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// String renders the schedule for logs and Events: its windows, separated by
// "; ", then " except " and its blackouts.
func (s Schedule) String() string {
	names := make([]string, 0, len(s.windows))
	for _, w := range s.windows {
		names = append(names, w.String())
	}
	out := strings.Join(names, "; ")
	if len(s.windows) == 0 {
		out = "always"
	}
	if len(s.blackouts) == 0 {
		return out
	}
	names = names[:0]
	for _, b := range s.blackouts {
		names = append(names, b.String())
	}
	return out + " except " + strings.Join(names, "; ")
}
