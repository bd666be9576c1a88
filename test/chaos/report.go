package chaos

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Result is what one run found.
type Result struct {
	Seed       uint64
	Elapsed    time.Duration
	Dir        string         // the run's folder, kept when it failed
	Schedule   string         // the world and the faults drawn from the seed
	Faults     map[string]int // injected, by kind
	Violations []string
	Halts      []string // nodes that halted, and what they said
	Notes      []string // reboot requests excused, and the like
}

func (r *run) result() Result {
	res := Result{Schedule: r.cfg.describe(), Faults: map[string]int{}}
	r.mu.Lock()
	maps.Copy(res.Faults, r.counts)
	for _, n := range slices.Sorted(maps.Keys(r.halts)) {
		res.Halts = append(res.Halts, n+": "+strings.Join(r.halts[n], "; "))
	}
	r.mu.Unlock()
	if r.proxy != nil {
		for k, v := range r.proxy.Counts() {
			res.Faults[k] += v
		}
	}
	if r.watcher != nil {
		for _, v := range r.watcher.Violations() {
			res.Violations = append(res.Violations, v.String())
		}
		checks, excused := r.watcher.RebootChecks()
		res.Notes = append(res.Notes, fmt.Sprintf("%d reboot requests checked against the API server", checks))
		res.Notes = append(res.Notes, excused...)
	}
	return res
}

// Line is the run's one-line report.
func (res Result) Line() string {
	return fmt.Sprintf("seed %d: %d violations, faults: %s, %d halts, in %s",
		res.Seed, len(res.Violations), formatCounts(res.Faults), len(res.Halts), res.Elapsed.Round(100*time.Millisecond))
}

// Totals add up runs.
type Totals struct {
	Seeds      int
	Violations int
	Failed     []uint64 // seeds with violations or harness errors
	Faults     map[string]int
	Elapsed    time.Duration
}

// Add counts one run in; harnessFailed marks a run the harness could not
// carry out.
func (t *Totals) Add(res Result, harnessFailed bool) {
	if t.Faults == nil {
		t.Faults = map[string]int{}
	}
	t.Seeds++
	t.Violations += len(res.Violations)
	if harnessFailed || len(res.Violations) > 0 {
		t.Failed = append(t.Failed, res.Seed)
	}
	for k, v := range res.Faults {
		t.Faults[k] += v
	}
	t.Elapsed += res.Elapsed
}

// Summary is the line to quote.
func (t Totals) Summary() string {
	s := fmt.Sprintf("chaos: %d seeds, %d violations, faults: %s in %.0fs", t.Seeds, t.Violations,
		formatCounts(t.Faults), t.Elapsed.Seconds())
	if len(t.Failed) > 0 {
		s += fmt.Sprintf("; failed seeds %v", t.Failed)
	}
	return s
}

// formatCounts lists the top-level kinds (not the per-write breakdown of
// kill-after-write) as k=v, sorted.
func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !strings.Contains(k, ":") {
			parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
		}
	}
	return strings.Join(parts, " ")
}

// Breakdown lists the kill-after-write faults by write kind.
func (t Totals) Breakdown() string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(t.Faults)) {
		if after, ok := strings.CutPrefix(k, faultKillAfterWrite+":"); ok {
			parts = append(parts, fmt.Sprintf("%q=%d", after, t.Faults[k]))
		}
	}
	return "kill-after-write by write: " + strings.Join(parts, " ")
}

// ReplayCommand is the one line that runs the seed again.
func ReplayCommand(seed uint64) string { return fmt.Sprintf("make chaos SEED=%d", seed) }
