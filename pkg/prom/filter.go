package prom

import (
	"regexp"
	"slices"
)

// Alert is one active alert, as /api/v1/alerts gives it.
type Alert struct {
	Labels map[string]string
	State  string // "pending" or "firing"
}

// Alert states as Prometheus names them.
const (
	StatePending  = "pending"
	StateFiring   = "firing"
	stateInactive = "inactive"
)

// Name is the alert's alertname label.
func (a Alert) Name() string { return a.Labels["alertname"] }

// AlertFilter says which alerts block, by kured's rules (see the package
// doc) and the label matchers. The zero value lets every named alert block.
type AlertFilter struct {
	Regexp     *regexp.Regexp // --alert-filter-regexp; nil: no name filter
	MatchOnly  bool           // --alert-filter-match-only
	FiringOnly bool           // --alert-firing-only
	Matchers   []Matcher      // --alert-label-matchers, $NODE already replaced
}

// Blocks reports whether the alert holds a reboot.
func (f AlertFilter) Blocks(a Alert) bool {
	name := a.Name()
	switch {
	case name == "":
		return false // kured only counts series that carry an alertname
	case a.State == stateInactive:
		return false // a resolved alert is not active
	case f.FiringOnly && a.State != StateFiring:
		return false
	case f.Regexp != nil && f.Regexp.MatchString(name) != f.MatchOnly:
		// By default a match exempts the alert; with MatchOnly a match is
		// what makes it count.
		return false
	}
	for _, m := range f.Matchers {
		if !m.Matches(a.Labels) {
			return false
		}
	}
	return true
}

// Blocking returns the names of the alerts that block, sorted, each once.
func (f AlertFilter) Blocking(alerts []Alert) []string {
	var names []string
	for _, a := range alerts {
		if f.Blocks(a) {
			names = append(names, a.Name())
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
