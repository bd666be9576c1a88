package bench

import (
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const page = `# TYPE nodepatch_controller_decision_seconds histogram
nodepatch_controller_decision_seconds_bucket{le="0.001"} 2
nodepatch_controller_decision_seconds_bucket{le="0.002"} 6
nodepatch_controller_decision_seconds_bucket{le="0.004"} 8
nodepatch_controller_decision_seconds_bucket{le="+Inf"} 10
nodepatch_controller_decision_seconds_sum 0.1
nodepatch_controller_decision_seconds_count 10
# TYPE nodepatch_api_requests_total counter
nodepatch_api_requests_total{code="200",resource="leases",verb="update"} 7
nodepatch_api_requests_total{code="409",resource="leases",verb="update"} 2
nodepatch_api_requests_total{code="201",resource="events",verb="create"} 3
`

func TestScrapedFigures(t *testing.T) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	r := requestsIn(families, agentRequestsMetric)
	if r.total() != 12 || r.conflicts() != 2 {
		t.Errorf("total %v, conflicts %v; want 12 and 2", r.total(), r.conflicts())
	}
	if got := r.top(1, 2); got != "update leases 200 3.50" {
		t.Errorf("top: %q", got)
	}
	h, ok := histogramIn(families, decisionMetric)
	if !ok {
		t.Fatal("no histogram")
	}
	for _, c := range []struct {
		q    float64
		want float64
	}{{0.1, 0.0005}, {0.4, 0.0015}, {0.7, 0.003}, {0.95, 0.004}} {
		if got := h.quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := h.quantileText(0.95); got != ">= 4ms" {
		t.Errorf("quantileText(0.95) = %q: past the last finite bound", got)
	}
	if d := h.minus(h); d.count != 0 || !math.IsNaN(d.quantile(0.5)) {
		t.Errorf("h - h: count %v, median %v", d.count, d.quantile(0.5))
	}
	ds := []time.Duration{5, 1, 4, 2, 3}
	if percentile(ds, 0.5) != 3 || percentile(ds, 0.95) != 5 || percentile(nil, 0.5) != 0 {
		t.Errorf("percentiles of %v: %v %v", ds, percentile(ds, 0.5), percentile(ds, 0.95))
	}
}

func TestProcessUsage(t *testing.T) {
	u, err := processUsage(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if u.peakRSS < 1<<20 || u.cpu < 0 {
		t.Errorf("this test process: peak RSS %d bytes, CPU %s", u.peakRSS, u.cpu)
	}
}
