package bench

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// requestKey is one series of a requests counter.
type requestKey struct{ verb, resource, code string }

// requests tallies API requests by verb, resource and status code.
type requests map[requestKey]float64

func (r requests) add(other requests, sign float64) {
	for k, v := range other {
		r[k] += sign * v
	}
}

func (r requests) total() float64 {
	sum := 0.0
	for _, v := range r {
		sum += v
	}
	return sum
}

// conflicts counts the 409s on Leases: two writers raced for one Lease.
func (r requests) conflicts() float64 {
	return r[requestKey{"update", "leases", "409"}] + r[requestKey{"create", "leases", "409"}] +
		r[requestKey{"patch", "leases", "409"}] + r[requestKey{"delete", "leases", "409"}]
}

// top renders the largest series, each divided by per: "patch nodes 200 4.1, ...".
func (r requests) top(n int, per float64) string {
	keys := make([]requestKey, 0, len(r))
	for k, v := range r {
		if v != 0 {
			keys = append(keys, k)
		}
	}
	sort.Slice(keys, func(i, j int) bool {
		if r[keys[i]] != r[keys[j]] {
			return r[keys[i]] > r[keys[j]]
		}
		return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j])
	})
	var parts []string
	for _, k := range keys[:min(n, len(keys))] {
		parts = append(parts, fmt.Sprintf("%s %s %s %.2f", k.verb, k.resource, k.code, r[k]/per))
	}
	return strings.Join(parts, ", ")
}

// requestsIn reads the counter name{verb,resource,code} from scraped families.
func requestsIn(families map[string]*dto.MetricFamily, name string) requests {
	r := requests{}
	fam := families[name]
	if fam == nil {
		return r
	}
	for _, m := range fam.GetMetric() {
		k := requestKey{}
		for _, l := range m.GetLabel() {
			switch l.GetName() {
			case "verb":
				k.verb = l.GetValue()
			case "resource":
				k.resource = l.GetValue()
			case "code":
				k.code = l.GetValue()
			}
		}
		r[k] += m.GetCounter().GetValue()
	}
	return r
}

// gaugeIn reads an unlabelled gauge; ok is false when it is missing.
func gaugeIn(families map[string]*dto.MetricFamily, name string) (float64, bool) {
	fam := families[name]
	if fam == nil || len(fam.GetMetric()) == 0 {
		return 0, false
	}
	return fam.GetMetric()[0].GetGauge().GetValue(), true
}

// scraper reads /metrics pages.
type scraper struct{ client *http.Client }

func newScraper() scraper {
	// Many small pages from many servers: keep few idle connections.
	transport := &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: 5 * time.Second, DisableKeepAlives: true}
	return scraper{client: &http.Client{Timeout: 10 * time.Second, Transport: transport}}
}

// scrape reads and parses http://addr/metrics.
func (s scraper) scrape(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", addr, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	return families, nil
}

// ready reports whether http://addr/readyz answers 200.
func (s scraper) ready(ctx context.Context, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return false
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// eachLimited runs fn for every item, at most workers at once, and returns
// the errors joined.
func eachLimited(items []string, workers int, fn func(string) error) error {
	slots := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, item := range items {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			if err := fn(item); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("%d of %d failed, first: %w", len(errs), len(items), errs[0])
	}
	return nil
}

// histogram is a scraped Prometheus histogram, less an earlier reading.
type histogram struct {
	count float64
	sum   float64
	upper []float64 // bucket upper bounds, ascending
	cum   []float64 // cumulative counts per bucket
}

func histogramIn(families map[string]*dto.MetricFamily, name string) (histogram, bool) {
	fam := families[name]
	if fam == nil || len(fam.GetMetric()) == 0 {
		return histogram{}, false
	}
	h := fam.GetMetric()[0].GetHistogram()
	out := histogram{count: float64(h.GetSampleCount()), sum: h.GetSampleSum()}
	for _, b := range h.GetBucket() {
		out.upper = append(out.upper, b.GetUpperBound())
		out.cum = append(out.cum, float64(b.GetCumulativeCount()))
	}
	return out, true
}

// minus is h's observations since earlier (the same buckets).
func (h histogram) minus(earlier histogram) histogram {
	out := histogram{count: h.count - earlier.count, sum: h.sum - earlier.sum, upper: slices.Clone(h.upper), cum: slices.Clone(h.cum)}
	if len(earlier.cum) == len(h.cum) {
		for i := range out.cum {
			out.cum[i] -= earlier.cum[i]
		}
	}
	return out
}

func (h histogram) mean() float64 {
	if h.count == 0 {
		return math.NaN()
	}
	return h.sum / h.count
}

// quantile interpolates within the bucket as Prometheus' histogram_quantile
// does: a figure good to the bucket's width, no better.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 {
		return math.NaN()
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, upper := range h.upper {
		if math.IsInf(upper, 1) {
			break // past the last finite bound: only that bound is known
		}
		if h.cum[i] >= rank {
			inBucket := h.cum[i] - below
			if inBucket <= 0 {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/inBucket
		}
		lower, below = upper, h.cum[i]
	}
	return lower // beyond the last finite bucket
}

// quantileText is quantile as a duration, ">= B" when beyond the last finite
// bound B.
func (h histogram) quantileText(q float64) string {
	v := h.quantile(q)
	if math.IsNaN(v) || len(h.upper) == 0 || h.cum[len(h.cum)-1] == 0 {
		return seconds(v)
	}
	last := 0.0
	for _, u := range h.upper {
		if !math.IsInf(u, 1) {
			last = u
		}
	}
	if v >= last {
		return ">= " + seconds(last)
	}
	return seconds(v)
}

// percentile is the q-quantile of ds (nearest rank); 0 when empty.
func percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
