package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Blackout is a period in which no window is open: [From, Until).
type Blackout struct {
	from, until time.Time
	// For a blackout given in days: its zone and its first and last day
	// (UTC midnights). loc is nil for one given in instants.
	loc         *time.Location
	first, last time.Time
}

// From is the first instant of the blackout.
func (b Blackout) From() time.Time { return b.from }

// Until is the first instant after the blackout.
func (b Blackout) Until() time.Time { return b.until }

// Contains reports whether t falls inside the blackout.
func (b Blackout) Contains(t time.Time) bool {
	return !t.Before(b.from) && t.Before(b.until)
}

// ParseBlackout reads one --blackout value (see the package doc for the
// grammar). Errors name the flag and the value.
func ParseBlackout(value string) (Blackout, error) {
	b, err := parseBlackout(value)
	if err != nil {
		return Blackout{}, fmt.Errorf("--blackout %q: %w", value, err)
	}
	return b, nil
}

const blackoutSyntax = "want DAY[..DAY] [ZONE] or INSTANT..INSTANT " +
	"(2026-12-24..2027-01-02 Europe/Berlin, 2026-12-24T18:00:00+01:00..2026-12-27T06:00:00+01:00)"

func parseBlackout(value string) (Blackout, error) {
	words := strings.Fields(value)
	if len(words) == 0 || len(words) > 2 {
		return Blackout{}, errors.New(blackoutSyntax)
	}
	lo, hi, isRange := strings.Cut(words[0], "..")
	switch {
	case !isRange && isDate(lo):
		return parseDayRange(lo, lo, words[1:])
	case !isRange:
		return Blackout{}, fmt.Errorf("%q is not a day (YYYY-MM-DD); a blackout of instants needs both ends: START..END", lo)
	case isDate(lo) && isDate(hi):
		return parseDayRange(lo, hi, words[1:])
	case isDate(lo) || isDate(hi):
		return Blackout{}, fmt.Errorf("%q: want both ends days (YYYY-MM-DD) or both RFC 3339 instants", words[0])
	case len(words) > 1:
		return Blackout{}, fmt.Errorf("zone %q: RFC 3339 instants carry their own offset, so take no zone", words[1])
	}
	return parseInstants(lo, hi)
}

// isDate tells a day from an instant by shape; parsing says if it is valid.
func isDate(s string) bool {
	return len(s) == len(time.DateOnly)
}

func parseDayRange(lo, hi string, zone []string) (Blackout, error) {
	first, err := time.Parse(time.DateOnly, lo)
	if err != nil {
		return Blackout{}, fmt.Errorf("%q is not a day (want YYYY-MM-DD)", lo)
	}
	last, err := time.Parse(time.DateOnly, hi)
	if err != nil {
		return Blackout{}, fmt.Errorf("%q is not a day (want YYYY-MM-DD)", hi)
	}
	if last.Before(first) {
		return Blackout{}, fmt.Errorf("last day %s is before the first, %s", hi, lo)
	}
	loc := time.UTC
	if len(zone) > 0 {
		var ok bool
		if loc, ok = loadZone(zone[0]); !ok {
			return Blackout{}, fmt.Errorf("unknown time zone %q", zone[0])
		}
	}
	return Blackout{
		from:  wallClock(loc, first, 0),
		until: wallClock(loc, last.AddDate(0, 0, 1), 0),
		loc:   loc, first: first, last: last,
	}, nil
}

func parseInstants(lo, hi string) (Blackout, error) {
	from, err := time.Parse(time.RFC3339, lo)
	if err != nil {
		return Blackout{}, fmt.Errorf("%q is neither a day (YYYY-MM-DD) nor an RFC 3339 instant", lo)
	}
	until, err := time.Parse(time.RFC3339, hi)
	if err != nil {
		return Blackout{}, fmt.Errorf("%q is not an RFC 3339 instant like the start", hi)
	}
	if !until.After(from) {
		return Blackout{}, fmt.Errorf("end %s is not after the start, %s", hi, lo)
	}
	return Blackout{from: from, until: until}, nil
}

// String renders the blackout as ParseBlackout reads it.
func (b Blackout) String() string {
	if b.loc == nil {
		return b.from.Format(time.RFC3339Nano) + ".." + b.until.Format(time.RFC3339Nano)
	}
	days := b.first.Format(time.DateOnly)
	if b.last.After(b.first) {
		days += ".." + b.last.Format(time.DateOnly)
	}
	return days + " " + b.loc.String()
}
