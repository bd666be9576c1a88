package prom

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func alert(name, state string, labels ...string) Alert {
	a := Alert{State: state, Labels: map[string]string{}}
	if name != "" {
		a.Labels["alertname"] = name
	}
	for i := 0; i+1 < len(labels); i += 2 {
		a.Labels[labels[i]] = labels[i+1]
	}
	return a
}

// testAlerts are what the rules of the real-Prometheus test make, and more.
var testAlerts = []Alert{
	alert("NodeOnFire", StateFiring, "node", "n1", "severity", "critical"),
	alert("DiskSlowlyFilling", StatePending, "node", "n1", "severity", "warning"),
	alert("OtherNodeDown", StateFiring, "node", "n2", "severity", "critical"),
	alert("Watchdog", StateFiring, "severity", "none"),
	alert("NodeOnFire", StateFiring, "node", "n1", "severity", "critical", "instance", "b"), // same name twice
	alert("", StateFiring, "severity", "critical"),                                          // no name: kured skips it
	alert("Resolved", "inactive", "node", "n1"),
}

func TestAlertFilter(t *testing.T) {
	cases := []struct {
		name string
		cfg  AlertConfig
		want []string
	}{
		{"every named active alert", AlertConfig{}, []string{"DiskSlowlyFilling", "NodeOnFire", "OtherNodeDown", "Watchdog"}},
		{"firing only", AlertConfig{FiringOnly: true}, []string{"NodeOnFire", "OtherNodeDown", "Watchdog"}},
		{"regexp exempts", AlertConfig{FilterRegexp: "^Watchdog$"}, []string{"DiskSlowlyFilling", "NodeOnFire", "OtherNodeDown"}},
		{"regexp is unanchored", AlertConfig{FilterRegexp: "Node"}, []string{"DiskSlowlyFilling", "Watchdog"}},
		{"match only", AlertConfig{FilterRegexp: "Node", FilterMatchOnly: true}, []string{"NodeOnFire", "OtherNodeDown"}},
		{"match only, firing only", AlertConfig{FilterRegexp: "Disk|Watch", FilterMatchOnly: true, FiringOnly: true}, []string{"Watchdog"}},
		{"match only without a regexp changes nothing", AlertConfig{FilterMatchOnly: true}, []string{"DiskSlowlyFilling", "NodeOnFire", "OtherNodeDown", "Watchdog"}},
		{"regexp matching all", AlertConfig{FilterRegexp: "."}, nil},
		{"matchers with $NODE n1", AlertConfig{NodeName: "n1", LabelMatchers: `severity="critical",node=~"$NODE"`}, []string{"NodeOnFire"}},
		{"matchers with $NODE n2", AlertConfig{NodeName: "n2", LabelMatchers: `severity="critical",node=~"$NODE"`}, []string{"OtherNodeDown"}},
		{"matchers with $NODE n3", AlertConfig{NodeName: "n3", LabelMatchers: `severity="critical",node=~"$NODE"`}, nil},
		{"node only, pending too", AlertConfig{NodeName: "n1", LabelMatchers: `node="$NODE"`}, []string{"DiskSlowlyFilling", "NodeOnFire"}},
		{"node only, firing only", AlertConfig{NodeName: "n1", LabelMatchers: `node="$NODE"`, FiringOnly: true}, []string{"NodeOnFire"}},
		{"this node or none", AlertConfig{NodeName: "n1", LabelMatchers: `node=~"$NODE|"`}, []string{"DiskSlowlyFilling", "NodeOnFire", "Watchdog"}},
		{"absent label is empty", AlertConfig{LabelMatchers: `node!="n1"`}, []string{"OtherNodeDown", "Watchdog"}},
		{"matchers and filter together", AlertConfig{FilterRegexp: "Fire", LabelMatchers: `severity="critical"`}, []string{"OtherNodeDown"}},
		{"matchers on alertname", AlertConfig{LabelMatchers: `alertname=~"Node.*"`}, []string{"NodeOnFire"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f, err := c.cfg.Filter()
			require.NoError(t, err)
			require.Equal(t, c.want, f.Blocking(testAlerts))
		})
	}
}

func TestAlertFilterBlocks(t *testing.T) {
	var zero AlertFilter
	require.True(t, zero.Blocks(alert("A", StatePending)))
	require.True(t, zero.Blocks(alert("A", "some-future-state")), "an unknown state blocks: the safe side")
	require.False(t, zero.Blocks(alert("", StateFiring)))
	require.False(t, zero.Blocks(alert("A", "inactive")))
	require.False(t, AlertFilter{FiringOnly: true}.Blocks(alert("A", "some-future-state")))
	require.Nil(t, zero.Blocking(nil))
}

func TestValidate(t *testing.T) {
	url := ClientConfig{URL: "http://127.0.0.1:9090"}
	cases := []struct {
		name string
		cfg  AlertConfig
		want []string // substrings of the error; none: valid
	}{
		{"minimal", AlertConfig{ClientConfig: url}, nil},
		{"https with a path", AlertConfig{ClientConfig: ClientConfig{URL: "https://mon.example/prometheus/"}}, nil},
		{"everything", AlertConfig{ClientConfig: ClientConfig{URL: "http://p:9090", Timeout: time.Second}, NodeName: "n1",
			FilterRegexp: "^Watchdog$", FilterMatchOnly: true, FiringOnly: true, LabelMatchers: `{node=~"$NODE"}`}, nil},
		{"no url", AlertConfig{}, []string{"--prometheus-url is required"}},
		{"no scheme", AlertConfig{ClientConfig: ClientConfig{URL: "prometheus:9090"}}, []string{`--prometheus-url "prometheus:9090": want an http:// or https:// URL`}},
		{"other scheme", AlertConfig{ClientConfig: ClientConfig{URL: "ftp://p"}}, []string{`--prometheus-url "ftp://p": want an http:// or https:// URL`}},
		{"no host", AlertConfig{ClientConfig: ClientConfig{URL: "http:///api"}}, []string{`--prometheus-url "http:///api": no host`}},
		{"query", AlertConfig{ClientConfig: ClientConfig{URL: "http://p:9090/?x=1"}}, []string{`--prometheus-url "http://p:9090/?x=1": a query string`}},
		{"fragment", AlertConfig{ClientConfig: ClientConfig{URL: "http://p:9090/#x"}}, []string{`--prometheus-url "http://p:9090/#x": a fragment`}},
		{"password redacted", AlertConfig{ClientConfig: ClientConfig{URL: "ftp://me:s3cret@p"}}, []string{`--prometheus-url "ftp://me:xxxxx@p"`}},
		{"unparsable, password redacted", AlertConfig{ClientConfig: ClientConfig{URL: "http://me:s3cret@p:port/"}}, []string{`--prometheus-url "http://xxxxx@p:port/": not a URL`}},
		{"negative timeout", AlertConfig{ClientConfig: ClientConfig{URL: "http://p", Timeout: -time.Second}}, []string{"--prometheus-timeout -1s: must not be negative"}},
		{"bad regexp", AlertConfig{ClientConfig: url, FilterRegexp: "("}, []string{`--alert-filter-regexp "(": error parsing regexp: missing closing )`}},
		{"bad matcher", AlertConfig{ClientConfig: url, LabelMatchers: `severity=critical`},
			[]string{`--alert-label-matchers "severity=critical": at column 10: expected a double-quoted value, found 'c'`}},
		{"$NODE without a node name", AlertConfig{ClientConfig: url, LabelMatchers: `node="$NODE"`},
			[]string{`--alert-label-matchers "node=\"$NODE\"": node="$NODE" uses $NODE but this node's name is not known`}},
		{"every problem at once", AlertConfig{FilterRegexp: "[", LabelMatchers: "x"},
			[]string{"--prometheus-url is required", `--alert-filter-regexp "["`, `--alert-label-matchers "x"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			_, newErr := NewAlertChecker(c.cfg)
			if len(c.want) == 0 {
				require.NoError(t, err)
				require.NoError(t, newErr)
				return
			}
			require.Error(t, err)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
			require.NotContains(t, err.Error(), "s3cret")
			require.EqualError(t, newErr, err.Error())
		})
	}
}

func TestQueryCheckerValidation(t *testing.T) {
	url := ClientConfig{URL: "http://127.0.0.1:9090"}
	_, err := NewQueryChecker(url, "  ")
	require.EqualError(t, err, `--block-while-query "  ": the query must not be empty`)
	_, err = NewHealthChecker(url, "")
	require.EqualError(t, err, `--health-query "": the query must not be empty`)
	_, err = NewHealthChecker(ClientConfig{}, "up")
	require.ErrorContains(t, err, "--health-query needs Prometheus: --prometheus-url is required")
	_, err = NewQueryChecker(ClientConfig{URL: "localhost:9090"}, "up")
	require.ErrorContains(t, err, `--block-while-query needs Prometheus: --prometheus-url "localhost:9090"`)
	q, err := NewQueryChecker(url, "up == 0")
	require.NoError(t, err)
	require.Equal(t, "up == 0", q.Expr())
}

func TestDetails(t *testing.T) {
	require.Equal(t, "", AlertsDetail(nil))
	require.Equal(t, "active alert A", AlertsDetail([]string{"A", "A"}))
	require.Equal(t, "active alerts A, B", AlertsDetail([]string{"B", "A"}))
	require.Equal(t, "active alerts A, B, C, D, E and 2 more", AlertsDetail([]string{"G", "F", "E", "D", "C", "B", "A", "A"}))

	names := []string{"c", "a", "b", "a"}
	require.Equal(t, "a and 2 more", ListNames(names, 1))
	require.Equal(t, "a and 2 more", ListNames(names, 0))
	require.Equal(t, "a, b, c", ListNames(names, 3))
	require.Equal(t, []string{"c", "a", "b", "a"}, names, "the caller's slice is left alone")
	require.Equal(t, "", ListNames(nil, 3))

	require.Equal(t, `query "up == 0" returned 2 series`, QueryDetail("up ==\n\t 0", 2))
	long := QuoteExpr(strings.Repeat("é", 150))
	require.Equal(t, `"`+strings.Repeat("é", 99)+`…"`, long)
}

func TestJudgeHealth(t *testing.T) {
	up := func(instance string, v float64) *model.Sample {
		return &model.Sample{Metric: model.Metric{"__name__": "up", "instance": model.LabelValue(instance)}, Value: model.SampleValue(v)}
	}
	cases := []struct {
		name    string
		value   model.Value
		healthy bool
		detail  string
	}{
		{"no series", model.Vector{}, false, "returned no series"},
		{"all one", model.Vector{up("a", 1), up("b", 1)}, true, "returned 2 series, none zero"},
		{"any non-zero counts", model.Vector{up("a", -2.5)}, true, "returned 1 series, none zero"},
		{"one zero", model.Vector{up("a", 1), up("b", 0)}, false, `returned 2 series, 1 of them zero or NaN: up{instance="b"}`},
		{"NaN is not true", model.Vector{up("a", math.NaN())}, false, `returned 1 series, 1 of them zero or NaN: up{instance="a"}`},
		{"scalar true", &model.Scalar{Value: 1}, true, "returned 1"},
		{"scalar false", &model.Scalar{Value: 0}, false, "returned 0, which is not true"},
		{"matrix, a zero inside", model.Matrix{
			{Metric: model.Metric{"instance": "a"}, Values: []model.SamplePair{{Value: 1}, {Value: 0}, {Value: 1}}},
			{Metric: model.Metric{"instance": "b"}, Values: []model.SamplePair{{Value: 1}}},
		}, false, `returned 2 series, 1 of them zero or NaN: {instance="a"}`},
		{"matrix all true", model.Matrix{{Metric: model.Metric{"instance": "a"}, Values: []model.SamplePair{{Value: 3}}}}, true, "returned 1 series, none zero"},
		{"empty matrix", model.Matrix{}, false, "returned no series"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			healthy, detail := judgeHealth(c.value)
			require.Equal(t, c.healthy, healthy)
			require.Equal(t, c.detail, detail)
		})
	}
}
