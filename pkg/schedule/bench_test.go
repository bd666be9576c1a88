package schedule

import (
	"testing"
	"time"
)

// The costliest queries: a stretch merged across the whole horizon, and a
// cycle that fits no window, so that every window of the horizon is tried.
func BenchmarkQueries(b *testing.B) {
	at := local(b, "Europe/Berlin", "2025-06-02 12:00:00")
	for _, bc := range []struct {
		name    string
		windows []string
		query   func(Schedule)
	}{
		{"CloseAfter/cron-always-open", []string{`cron "0 */6 * * *" 7h Europe/Berlin`},
			func(s Schedule) { s.CloseAfter(at) }},
		{"NextFit/cron-never-fits", []string{`cron "30 2 * * *" 1h Europe/Berlin`},
			func(s Schedule) { s.NextFit(at, 2*time.Hour) }},
		{"NextFit/hourly-cron-never-fits", []string{`cron "0 * * * *" 30m Europe/Berlin`},
			func(s Schedule) { s.NextFit(at, 2*time.Hour) }},
		{"NextFit/weekly-never-fits", []string{"mon-fri 02:30-03:30 Europe/Berlin"},
			func(s Schedule) { s.NextFit(at, 2*time.Hour) }},
		{"NextFit/weekly", []string{"sat 22:00-04:00 Europe/Berlin", `cron "0 2 * * sun" 4h Europe/Berlin`},
			func(s Schedule) { s.NextFit(at, 5*time.Hour) }},
	} {
		s := mustSchedule(b, bc.windows)
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				bc.query(s)
			}
		})
	}
}
