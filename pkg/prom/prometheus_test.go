package prom

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/test/harness"
)

// testRules fire at once (for: 0s), stay pending (for: 1h), name another
// node, or name none (an always-firing Watchdog, which blocks as in kured).
const testRules = `groups:
  - name: nodepatch-prom-test
    rules:
      - alert: NodeOnFire
        expr: vector(1)
        for: 0s
        labels: {node: "n1", severity: "critical"}
      - alert: DiskSlowlyFilling
        expr: vector(1)
        for: 1h
        labels: {node: "n1", severity: "warning"}
      - alert: OtherNodeDown
        expr: vector(1)
        for: 0s
        labels: {node: "n2", severity: "critical"}
      - alert: Watchdog
        expr: vector(1)
        labels: {severity: "none"}
`

// startTestPrometheus runs the real Prometheus with testRules, evaluated every
// second, and waits until its API shows every alert in its state.
func startTestPrometheus(t *testing.T) ClientConfig {
	t.Helper()
	_, err := os.Stat(harness.PrometheusBinary)
	require.NoError(t, err, "the tests need the real Prometheus: run hack/install-deps.sh (as root) to install Debian's prometheus package")
	p := harness.StartPrometheusT(t, harness.PrometheusOptions{
		RuleFiles: map[string][]byte{"alerts.rules.yaml": []byte(testRules)},
		Interval:  time.Second,
	})
	cfg := ClientConfig{URL: p.URL}
	all, err := NewAlertChecker(AlertConfig{ClientConfig: cfg})
	require.NoError(t, err)
	count, err := NewQueryChecker(cfg, `count(ALERTS) == 4`)
	require.NoError(t, err)
	want := map[string]string{"NodeOnFire": StateFiring, "DiskSlowlyFilling": StatePending, "OtherNodeDown": StateFiring, "Watchdog": StateFiring}
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		alerts, err := all.Alerts(t.Context())
		require.NoError(c, err)
		got := map[string]string{}
		for _, a := range alerts {
			got[a.Name()] = a.State
		}
		require.Equal(c, want, got)
		// The ALERTS series are committed after the rule group's evaluation,
		// a moment after the alerts show in the API.
		detail, err := count.Check(t.Context())
		require.NoError(c, err)
		require.NotEmpty(c, detail, "the ALERTS series")
	}, 30*time.Second, 200*time.Millisecond, "the test rules' alerts in /api/v1/alerts and as ALERTS series")
	return cfg
}

func TestAgainstPrometheus(t *testing.T) {
	cfg := startTestPrometheus(t)

	t.Run("alerts", func(t *testing.T) {
		cases := []struct {
			name string
			cfg  AlertConfig
			want string
		}{
			{"every active alert blocks", AlertConfig{}, "active alerts DiskSlowlyFilling, NodeOnFire, OtherNodeDown, Watchdog"},
			{"filter regexp exempts", AlertConfig{FilterRegexp: "^Watchdog$"}, "active alerts DiskSlowlyFilling, NodeOnFire, OtherNodeDown"},
			{"filter regexp is unanchored", AlertConfig{FilterRegexp: "Node"}, "active alerts DiskSlowlyFilling, Watchdog"},
			{"match only", AlertConfig{FilterRegexp: "Node", FilterMatchOnly: true}, "active alerts NodeOnFire, OtherNodeDown"},
			{"firing only ignores pending", AlertConfig{FiringOnly: true, FilterRegexp: "Disk", FilterMatchOnly: true}, ""},
			{"pending blocks by default", AlertConfig{FilterRegexp: "Disk", FilterMatchOnly: true}, "active alert DiskSlowlyFilling"},
			{"matchers with $NODE: n1", AlertConfig{NodeName: "n1", LabelMatchers: `severity="critical",node=~"$NODE"`}, "active alert NodeOnFire"},
			{"matchers with $NODE: n2", AlertConfig{NodeName: "n2", LabelMatchers: `severity="critical",node=~"$NODE"`}, "active alert OtherNodeDown"},
			{"matchers with $NODE: n3", AlertConfig{NodeName: "n3", LabelMatchers: `severity="critical",node=~"$NODE"`}, ""},
			{"this node, firing only", AlertConfig{NodeName: "n1", LabelMatchers: `node="$NODE"`, FiringOnly: true}, "active alert NodeOnFire"},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				c.cfg.ClientConfig = cfg
				checker, err := NewAlertChecker(c.cfg)
				require.NoError(t, err)
				detail, err := checker.Check(t.Context())
				require.NoError(t, err)
				require.Equal(t, c.want, detail)
			})
		}
	})

	t.Run("block while query", func(t *testing.T) {
		cases := []struct{ expr, want string }{
			{`ALERTS{alertname="NodeOnFire"}`, `query "ALERTS{alertname=\"NodeOnFire\"}" returned 1 series`},
			{`ALERTS{alertstate="firing"}`, `query "ALERTS{alertstate=\"firing\"}" returned 3 series`},
			{`ALERTS{alertname="NoSuchAlert"}`, ""},
			{`vector(1) == 0`, ""},
			{`ALERTS{alertname="Watchdog"}[10m]`, `query "ALERTS{alertname=\"Watchdog\"}[10m]" returned 1 series`},
			{`scalar(vector(0))`, ""},
			{`scalar(vector(2))`, `query "scalar(vector(2))" returned 2`},
		}
		for _, c := range cases {
			t.Run(c.expr, func(t *testing.T) {
				q, err := NewQueryChecker(cfg, c.expr)
				require.NoError(t, err)
				detail, err := q.Check(t.Context())
				require.NoError(t, err)
				require.Equal(t, c.want, detail)
			})
		}
	})

	t.Run("health query", func(t *testing.T) {
		cases := []struct {
			expr    string
			healthy bool
			detail  string
		}{
			{`vector(1)`, true, `health query "vector(1)" returned 1 series, none zero`},
			{`ALERTS{alertname="NodeOnFire"} == 1`, true, `health query "ALERTS{alertname=\"NodeOnFire\"} == 1" returned 1 series, none zero`},
			{`count(ALERTS{alertstate="firing"}) == bool 3`, true, `health query "count(ALERTS{alertstate=\"firing\"}) == bool 3" returned 1 series, none zero`},
			{`count(ALERTS{alertstate="firing"}) == bool 4`, false, `health query "count(ALERTS{alertstate=\"firing\"}) == bool 4" returned 1 series, 1 of them zero or NaN: {}`},
			{`vector(0)`, false, `health query "vector(0)" returned 1 series, 1 of them zero or NaN: {}`},
			{`ALERTS{alertname="NoSuchAlert"}`, false, `health query "ALERTS{alertname=\"NoSuchAlert\"}" returned no series`},
		}
		for _, c := range cases {
			t.Run(c.expr, func(t *testing.T) {
				h, err := NewHealthChecker(cfg, c.expr)
				require.NoError(t, err)
				healthy, detail, err := h.Healthy(t.Context())
				require.NoError(t, err)
				require.Equal(t, c.healthy, healthy)
				require.Equal(t, c.detail, detail)
			})
		}
	})

	t.Run("bad query", func(t *testing.T) {
		for _, expr := range []string{`sum(up`, `up{`, `rate(up)`, `"a string"`} {
			q, err := NewQueryChecker(cfg, expr)
			require.NoError(t, err)
			_, err = q.Check(t.Context())
			require.ErrorIs(t, err, ErrBadQuery, expr)
			require.False(t, IsUnreachable(err), expr)
			require.ErrorContains(t, err, "--block-while-query "+QuoteExpr(expr), expr)

			h, err := NewHealthChecker(cfg, expr)
			require.NoError(t, err)
			_, _, err = h.Healthy(t.Context())
			require.ErrorIs(t, err, ErrBadQuery, expr)
			require.ErrorContains(t, err, "--health-query "+QuoteExpr(expr), expr)
		}
	})

	t.Run("a path prefix that is not Prometheus's", func(t *testing.T) {
		c, err := NewAlertChecker(AlertConfig{ClientConfig: ClientConfig{URL: cfg.URL + "/not-prometheus"}})
		require.NoError(t, err)
		_, err = c.Check(t.Context())
		require.ErrorIs(t, err, ErrBadResponse)
	})
}
