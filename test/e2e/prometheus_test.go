package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/state"
	"github.com/nodepatch/nodepatch/test/chart/charttest"
	"github.com/nodepatch/nodepatch/test/harness"
)

// Debian's prometheus package (installed by .ci/run) provides both.
const (
	prometheusPath = harness.PrometheusBinary
	promtoolPath   = "/usr/bin/promtool"
	// alertJob is the job label the chart's rules select by default: the chart's name.
	alertJob = "nodepatch"
)

// TestPrometheusAlertsOnPendingReboot runs a real Prometheus that scrapes two
// real agents and evaluates the chart's own alert rules (thresholds made tiny):
// a blocked node that needs a reboot fires NodepatchRebootPending and
// NodepatchRebootBlocked{reason="annotation"}, the idle node fires nothing, and
// once the node is unblocked and rebooted the alerts resolve.
func TestPrometheusAlertsOnPendingReboot(t *testing.T) {
	requireFile(t, prometheusPath)
	requireFile(t, promtoolPath)
	ports := freePortsT(t, 2)
	agentAddr := map[string]string{
		nodeName(0): fmt.Sprintf("127.0.0.1:%d", ports[0]),
		nodeName(1): fmt.Sprintf("127.0.0.1:%d", ports[1]),
	}
	c := newCluster(t, setup{nodes: 2, nodeFlags: map[string][]string{
		nodeName(0): {"--metrics-address=" + agentAddr[nodeName(0)]},
		nodeName(1): {"--metrics-address=" + agentAddr[nodeName(1)]},
	}})
	page := waitMetricsPage(c, agentAddr[nodeName(0)])
	checkMetricsWithPromtool(t, page)

	rules := charttest.AlertRules(t, "--set", "alerts.rebootPending.for=1s", "--set", "alerts.rebootBlocked.for=1s")
	prom := startPrometheus(t, rules, []string{agentAddr[nodeName(0)], agentAddr[nodeName(1)]})

	// Blocked first, so the reboot stays pending long enough to be scraped.
	reason := "e2e: hold for the alert"
	c.annotate(nodeName(0), state.AnnotationBlockReboot, &reason)
	c.needReboot(nodeName(0))
	c.waitFor("NodepatchRebootPending and NodepatchRebootBlocked{reason=annotation} firing for node-0", 60*time.Second, func() bool {
		alerts := prom.alerts(t)
		requireNoAlertFor(t, alerts, nodeName(1))
		return hasAlert(alerts, "firing", map[string]string{"alertname": "NodepatchRebootPending", "node": nodeName(0), "severity": "warning"}) &&
			hasAlert(alerts, "firing", map[string]string{"alertname": "NodepatchRebootBlocked", "node": nodeName(0), "reason": "annotation"})
	})
	require.Zero(t, c.sup.Reboots(nodeName(0)), "a blocked node rebooted")

	c.annotate(nodeName(0), state.AnnotationBlockReboot, nil)
	c.waitRebooted(1, nodeName(0))
	// A failed scrape (the agent is down while its host reboots) also ends an
	// alert: wait for a scrape of the rebooted agent that says no reboot is needed.
	c.waitFor("node-0's alerts to resolve after a scrape of its rebooted agent", 60*time.Second, func() bool {
		alerts := prom.alerts(t)
		requireNoAlertFor(t, alerts, nodeName(1))
		return prom.query(t, fmt.Sprintf(`nodepatch_reboot_required{job=%q, node=%q} == 0`, alertJob, nodeName(0))) == 1 &&
			prom.query(t, fmt.Sprintf(`up{job=%q, instance=%q} == 1`, alertJob, agentAddr[nodeName(0)])) == 1 &&
			!hasAlert(alerts, "", map[string]string{"node": nodeName(0)})
	})
	require.Equal(t, 1, c.sup.Reboots(nodeName(0)))
}

func requireFile(t *testing.T, path string) {
	t.Helper()
	_, err := os.Stat(path)
	require.NoError(t, err, "%s is missing: install Debian's prometheus package (.ci/run does)", path)
}

// freePortsT asks the kernel for n distinct free ports on 127.0.0.1. They are
// released before use, so another process could take one in between; the
// component using it then fails to start and says so.
func freePortsT(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// waitMetricsPage waits for the agent at addr to serve /metrics and returns the page.
func waitMetricsPage(c *cluster, addr string) []byte {
	c.t.Helper()
	var page []byte
	var lastErr error
	c.waitFor("the agent's /metrics on "+addr, 30*time.Second, func() bool {
		page, lastErr = httpGet(c.ctx, "http://"+addr+"/metrics")
		return lastErr == nil
	})
	require.Contains(c.t, string(page), "nodepatch_reboot_required{", "last error: %v", lastErr)
	return page
}

func httpGet(ctx context.Context, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: read body: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("GET %s: %s: %s", u, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// checkMetricsWithPromtool lints a real /metrics page with `promtool check
// metrics`, which exits non-zero on any problem it reports.
func checkMetricsWithPromtool(t *testing.T, page []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, promtoolPath, "check", "metrics")
	cmd.Stdin = bytes.NewReader(page)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics found problems in the agent's /metrics:\n%s", out)
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Logf("promtool check metrics said (exit 0):\n%s", s)
	}
}

// prometheus is a running Prometheus server.
type prometheus struct {
	url string // http://127.0.0.1:port
}

// startPrometheus runs Prometheus (through the harness) with 1s scrape and
// evaluation intervals, the given rule file, and the agents as targets of the
// job the rules select. It is stopped (its process group) when the test ends;
// its targets, alerts and log are shown when the test failed.
func startPrometheus(t *testing.T, rules []byte, targets []string) *prometheus {
	t.Helper()
	p := harness.StartPrometheusT(t, harness.PrometheusOptions{
		Binary:    prometheusPath,
		RuleFiles: map[string][]byte{"nodepatch.rules.yaml": rules},
		Jobs:      []harness.ScrapeJob{{Name: alertJob, Targets: targets}},
	})
	return &prometheus{url: p.URL}
}

// alert is one entry of /api/v1/alerts.
type alert struct {
	Labels map[string]string `json:"labels"`
	State  string            `json:"state"` // pending or firing
}

// apiGet fetches a Prometheus API path and decodes its data field into data.
func (p *prometheus) apiGet(t *testing.T, path string, data any) {
	t.Helper()
	body, err := httpGet(t.Context(), p.url+path)
	require.NoError(t, err)
	var resp struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  string          `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &resp), "answer to %s: %s", path, body)
	require.Equal(t, "success", resp.Status, "answer to %s: %s", path, resp.Error)
	require.NoError(t, json.Unmarshal(resp.Data, data), "data of %s: %s", path, resp.Data)
}

func (p *prometheus) alerts(t *testing.T) []alert {
	t.Helper()
	var data struct {
		Alerts []alert `json:"alerts"`
	}
	p.apiGet(t, "/api/v1/alerts", &data)
	return data.Alerts
}

// query runs an instant query and returns how many series it gave.
func (p *prometheus) query(t *testing.T, expr string) int {
	t.Helper()
	var data struct {
		ResultType string            `json:"resultType"`
		Result     []json.RawMessage `json:"result"`
	}
	p.apiGet(t, "/api/v1/query?query="+url.QueryEscape(expr), &data)
	require.Equal(t, "vector", data.ResultType, "query %s", expr)
	return len(data.Result)
}

// hasAlert: an alert in state (any when empty) carries all the labels.
func hasAlert(alerts []alert, state string, labels map[string]string) bool {
	for _, a := range alerts {
		if state != "" && a.State != state {
			continue
		}
		match := true
		for k, v := range labels {
			if a.Labels[k] != v {
				match = false
			}
		}
		if match {
			return true
		}
	}
	return false
}

// requireNoAlertFor fails when any alert, pending or firing, names node.
func requireNoAlertFor(t *testing.T, alerts []alert, node string) {
	t.Helper()
	for _, a := range alerts {
		require.NotEqual(t, node, a.Labels["node"], "unexpected alert for %s: %v (%s)", node, a.Labels, a.State)
	}
}
