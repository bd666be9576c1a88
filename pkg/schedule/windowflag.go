package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Recurrence is one window of a Schedule: a weekly Window or a CronWindow.
type Recurrence interface {
	fmt.Stringer
	// span returns the earliest span [from, until) of the window that
	// closes after t; ok is false if there is none.
	span(t time.Time) (from, until time.Time, ok bool)
	// reach returns the latest end of the spans open at t; ok is false
	// if none is.
	reach(t time.Time) (until time.Time, ok bool)
}

// ParseWindowFlag reads one --window value (see the package doc for the
// grammar). Errors name the flag, the value and what is wrong with it.
func ParseWindowFlag(value string) (Recurrence, error) {
	r, err := parseWindowValue(value)
	if err != nil {
		return nil, fmt.Errorf("--window %q: %w", value, err)
	}
	return r, nil
}

const (
	weeklySyntax = "want DAYS START-END [ZONE], e.g. mon-fri 22:00-04:00 Europe/Berlin, " +
		`or cron "EXPR" DURATION [ZONE]`
	cronSyntax = `want cron "EXPR" DURATION [ZONE] with EXPR in double quotes, e.g. cron "0 2 * * sat" 4h UTC`
)

func parseWindowValue(value string) (Recurrence, error) {
	words, err := splitWords(value)
	if err != nil {
		return nil, err
	}
	if len(words) > 0 && strings.EqualFold(words[0], "cron") {
		return parseCronWords(words[1:])
	}
	return parseWeeklyWords(words)
}

// parseCronWords reads EXPR DURATION [ZONE].
func parseCronWords(words []string) (Recurrence, error) {
	if len(words) < 2 || len(words) > 3 {
		return nil, errors.New(cronSyntax)
	}
	dur, err := time.ParseDuration(words[1])
	if err != nil {
		return nil, fmt.Errorf("duration %q: want a duration such as 4h or 90m", words[1])
	}
	loc, err := zoneWord(words[2:])
	if err != nil {
		return nil, err
	}
	return parseCron(words[0], dur, loc)
}

// parseWeeklyWords reads DAYS START-END [ZONE].
func parseWeeklyWords(words []string) (Recurrence, error) {
	if len(words) < 2 || len(words) > 3 {
		return nil, errors.New(weeklySyntax)
	}
	var w Window
	var err error
	if w.days, err = dayList(words[0]); err != nil {
		return nil, err
	}
	if w.start, w.end, err = hours(words[1]); err != nil {
		return nil, err
	}
	if w.loc, err = zoneWord(words[2:]); err != nil {
		return nil, err
	}
	return w, nil
}

// hours reads START-END, two times of day.
func hours(s string) (start, end time.Duration, err error) {
	from, until, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("hours %q: want START-END, e.g. 22:00-04:00", s)
	}
	if start, err = timeOfDay(from, false); err != nil {
		return 0, 0, fmt.Errorf("start %q %w", from, err)
	}
	if end, err = timeOfDay(until, true); err != nil {
		return 0, 0, fmt.Errorf("end %q %w", until, err)
	}
	if start == end {
		return 0, 0, fmt.Errorf("hours %q: start and end are equal, which would make an empty window "+
			"(use 00:00-24:00 for the whole day)", s)
	}
	return start, end, nil
}

// dayList reads DAYS: "*" or a comma list of days and day ranges. A range
// whose end comes first in the week wraps past Sunday: fri-mon.
func dayList(s string) ([7]bool, error) {
	if s == "*" {
		return [7]bool{true, true, true, true, true, true, true}, nil
	}
	var days [7]bool
	for _, item := range strings.Split(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		if !isRange {
			hi = lo
		}
		from, err := dayWord(lo)
		if err != nil {
			return days, err
		}
		to, err := dayWord(hi)
		if err != nil {
			return days, err
		}
		for d := from; ; d = (d + 1) % 7 {
			days[d] = true
			if d == to {
				break
			}
		}
	}
	return days, nil
}

func dayWord(s string) (time.Weekday, error) {
	d, ok := dayByName(strings.ToLower(s))
	if !ok {
		return 0, fmt.Errorf("unknown day %q (want mon, tue, wed, thu, fri, sat, sun, a range such as mon-fri, or *)", s)
	}
	return d, nil
}

// zoneWord reads the optional ZONE; without one the zone is UTC.
func zoneWord(words []string) (*time.Location, error) {
	if len(words) == 0 {
		return time.UTC, nil
	}
	loc, ok := loadZone(words[0])
	if !ok {
		return nil, fmt.Errorf("unknown time zone %q", words[0])
	}
	return loc, nil
}

// splitWords splits a value at white space; a part in double quotes is one
// word, so that a cron expression keeps its spaces.
func splitWords(s string) ([]string, error) {
	var words []string
	for {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
		if s == "" {
			return words, nil
		}
		var word string
		var err error
		if word, s, err = nextWord(s); err != nil {
			return nil, err
		}
		words = append(words, word)
	}
}

func nextWord(s string) (word, rest string, err error) {
	if s[0] == '"' {
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return "", "", errors.New("unterminated double quote")
		}
		return s[1 : 1+end], s[2+end:], nil
	}
	end := strings.IndexFunc(s, unicode.IsSpace)
	if end < 0 {
		end = len(s)
	}
	if word = s[:end]; strings.Contains(word, `"`) {
		return "", "", fmt.Errorf("stray double quote in %q", word)
	}
	return word, s[end:], nil
}
