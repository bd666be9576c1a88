package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/test/chart/charttest"
	"github.com/nodepatch/nodepatch/test/harness"
)

// TestDashboardQueriesReturnData runs every query of the chart's Grafana
// dashboard against a real Prometheus that scrapes two real agents, one of
// which has been through a reboot cycle (so its counters and histograms have
// samples), and requires each query to answer with at least one finite value:
// an empty answer or NaN (a quantile of no observations) is a panel that shows
// nothing. The queries are read from the chart's file, not copied.
func TestDashboardQueriesReturnData(t *testing.T) {
	requireFile(t, prometheusPath)
	dash, _ := charttest.LoadDashboard(t)
	type query struct{ panel, refID, expr string }
	var queries []query
	for _, p := range dash.AllPanels() {
		for _, q := range p.Targets {
			queries = append(queries, query{panel: p.Title, refID: q.RefID, expr: q.Expr})
		}
	}
	require.NotEmpty(t, queries, "the dashboard has no queries")

	ports := freePortsT(t, 2)
	agentAddr := map[string]string{
		nodeName(0): fmt.Sprintf("127.0.0.1:%d", ports[0]),
		nodeName(1): fmt.Sprintf("127.0.0.1:%d", ports[1]),
	}
	// The agent that drains its node observes the drain's duration, and the
	// reboot then ends that process: --reboot-delay keeps it up for a few
	// scrapes (1 s apart) after the drain, as a real cluster's 30 s scrapes
	// would catch a real drain of minutes.
	c := newCluster(t, setup{nodes: 2, flags: []string{"--reboot-delay=3s"}, nodeFlags: map[string][]string{
		nodeName(0): {"--metrics-address=" + agentAddr[nodeName(0)]},
		nodeName(1): {"--metrics-address=" + agentAddr[nodeName(1)]},
	}})
	waitMetricsPage(c, agentAddr[nodeName(0)])
	waitMetricsPage(c, agentAddr[nodeName(1)])
	p := harness.StartPrometheusT(t, harness.PrometheusOptions{
		Binary: prometheusPath,
		Jobs:   []harness.ScrapeJob{{Name: alertJob, Targets: []string{agentAddr[nodeName(0)], agentAddr[nodeName(1)]}}},
	})
	prom := &prometheus{url: p.URL}
	c.waitFor("Prometheus to scrape both agents", 30*time.Second, func() bool {
		return prom.query(t, fmt.Sprintf(`up{job=%q} == 1`, alertJob)) == 2
	})

	c.needReboot(nodeName(0))
	c.waitRebooted(1, nodeName(0))

	// All queries are asked together until each has answered with data once,
	// so one slow query does not eat the others' time.
	const timeout = 60 * time.Second
	deadline := time.Now().Add(timeout)
	pending := queries
	last := map[string]string{}
	for len(pending) > 0 && time.Now().Before(deadline) {
		var still []query
		for _, q := range pending {
			values, err := instantQuery(c, p.URL, q.expr)
			if err != nil {
				// A query Prometheus refuses never gets better.
				t.Fatalf("panel %q, query %s: %s: %v", q.panel, q.refID, q.expr, err)
			}
			if !hasFinite(values) {
				last[q.expr] = fmt.Sprint(values)
				still = append(still, q)
				continue
			}
			t.Logf("panel %q, query %s: %v", q.panel, q.refID, values)
		}
		pending = still
		if len(pending) > 0 {
			select {
			case <-c.ctx.Done():
				t.Fatalf("test context ended with %d dashboard queries still without data", len(pending))
			case <-time.After(250 * time.Millisecond):
			}
		}
	}
	for _, q := range pending {
		t.Errorf("panel %q, query %s returned no data within %s: %s (last values: %s)",
			q.panel, q.refID, timeout, q.expr, last[q.expr])
	}
}

// instantQuery evaluates expr now and returns the values of the vector it
// gives (NaN and ±Inf as Prometheus writes them).
func instantQuery(c *cluster, base, expr string) ([]float64, error) {
	body, err := httpGet(c.ctx, base+"/api/v1/query?query="+url.QueryEscape(expr))
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string `json:"resultType"`
			Result     []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if jerr := json.Unmarshal(body, &resp); jerr != nil {
		return nil, fmt.Errorf("answer %q: %w (request: %v)", body, jerr, err)
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("prometheus: %s", resp.Error)
	}
	if err != nil {
		return nil, err
	}
	if resp.Data.ResultType != "vector" {
		return nil, fmt.Errorf("result type %s, want vector (a panel shows series)", resp.Data.ResultType)
	}
	values := make([]float64, 0, len(resp.Data.Result))
	for _, r := range resp.Data.Result {
		s, ok := r.Value[1].(string)
		if !ok {
			return nil, fmt.Errorf("sample value %v is not a string", r.Value[1])
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return nil, fmt.Errorf("sample value %q: %w", s, err)
		}
		values = append(values, v)
	}
	return values, nil
}

func hasFinite(values []float64) bool {
	for _, v := range values {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			return true
		}
	}
	return false
}
