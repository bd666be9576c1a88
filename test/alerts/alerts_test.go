// Package alerts_test checks nodepatch's alerting rules with the real promtool:
// the rules the chart renders are the rules shipped in manifests/, they load,
// and promtool's unit tests show every alert firing and not firing.
package alerts_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// alertNames are the alerts the chart defines with its defaults.
var alertNames = []string{
	"NodepatchRebootPending", "NodepatchRebootBlocked", "NodepatchNodeHeld",
	"NodepatchRebootFailed", "NodepatchPatchFailed", "NodepatchAgentDown", "NodepatchRebootLoop",
	"NodepatchBootIDMismatch", "NodepatchControllerDown", "NodepatchRolloutStalled", "NodepatchFailureBudgetSpent",
	"NodepatchPoolsInvalid",
	"NodepatchNodeQuarantined", "NodepatchHealthGateFailed",
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []rule `json:"rules"`
	} `json:"groups"`
}

type rule struct {
	Alert       string            `json:"alert"`
	Expr        string            `json:"expr"`
	For         string            `json:"for"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
}

func (f ruleFile) rules() []rule {
	var all []rule
	for _, g := range f.Groups {
		all = append(all, g.Rules...)
	}
	return all
}

func parseRules(t *testing.T, b []byte) ruleFile {
	t.Helper()
	var f ruleFile
	require.NoError(t, yaml.UnmarshalStrict(b, &f))
	return f
}

// promtool runs Debian's promtool (package prometheus, installed by .ci/run).
func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool not found: install Debian's prometheus package (.ci/run does)")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func shippedRulesPath(t *testing.T) string {
	return filepath.Join(ct.RepoRoot(t), "manifests", "prometheus", "nodepatch-alerts.rules.yaml")
}

// TestShippedRulesAreTheChart makes sure promtool tests what the chart installs:
// the shipped rule file equals the PrometheusRule's spec rendered now.
func TestShippedRulesAreTheChart(t *testing.T) {
	shipped, err := os.ReadFile(shippedRulesPath(t))
	require.NoError(t, err)
	require.Equal(t, parseRules(t, ct.AlertRules(t)), parseRules(t, shipped),
		"manifests/prometheus/nodepatch-alerts.rules.yaml is out of date: run manifests/render.sh")
}

func TestDefaultRules(t *testing.T) {
	out := promtool(t, ct.RepoRoot(t), "check", "rules", shippedRulesPath(t))
	require.Contains(t, out, "SUCCESS: 14 rules found")
	out = promtool(t, filepath.Join(ct.RepoRoot(t), "test", "alerts", "testdata"), "test", "rules", "default.test.yaml")
	require.Contains(t, out, "SUCCESS")
}

// TestEveryAlertFiresAndStaysQuiet reads the promtool test file and checks that
// each alert has a case where it fires and one where it does not.
func TestEveryAlertFiresAndStaysQuiet(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(ct.RepoRoot(t), "test", "alerts", "testdata", "default.test.yaml"))
	require.NoError(t, err)
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	require.NoError(t, yaml.Unmarshal(b, &tests))
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, name := range alertNames {
		require.True(t, fires[name], "no test case where %s fires", name)
		require.True(t, quiet[name], "no test case where %s stays quiet", name)
	}
}

func TestAlertsAreDocumented(t *testing.T) {
	rules := parseRules(t, ct.AlertRules(t)).rules()
	var names []string
	docs, err := os.ReadFile(filepath.Join(ct.RepoRoot(t), "docs", "operations.md"))
	require.NoError(t, err)
	for _, r := range rules {
		names = append(names, r.Alert)
		require.NotEmpty(t, r.Labels["severity"], r.Alert)
		require.NotEmpty(t, r.Annotations["summary"], r.Alert)
		require.NotEmpty(t, r.Annotations["description"], r.Alert)
		base, anchor, ok := strings.Cut(r.Annotations["runbook_url"], "#")
		require.True(t, ok, "%s: runbook_url has no anchor", r.Alert)
		require.Equal(t, "https://github.com/nodepatch/nodepatch/blob/main/docs/operations.md", base)
		require.Equal(t, strings.ToLower(r.Alert), anchor)
		require.Contains(t, string(docs), `<a id="`+anchor+`"></a>`, "docs/operations.md has no runbook anchor for %s", r.Alert)
		require.Contains(t, string(docs), "### "+r.Alert+"\n", "docs/operations.md has no runbook section for %s", r.Alert)
	}
	require.ElementsMatch(t, alertNames, names)
}

// TestCustomRules renders the rules with non-default values and runs promtool
// tests written for those values: each value reaches the rules.
func TestCustomRules(t *testing.T) {
	testdata := filepath.Join(ct.RepoRoot(t), "test", "alerts", "testdata")
	rules := ct.AlertRules(t, "-f", filepath.Join(testdata, "custom-values.yaml"))
	var names []string
	for _, r := range parseRules(t, rules).rules() {
		names = append(names, r.Alert)
	}
	require.NotContains(t, names, "NodepatchPatchFailed", "alerts.patchFailed.enabled=false must drop the rule")

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644))
	test, err := os.ReadFile(filepath.Join(testdata, "custom.test.yaml"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "custom.test.yaml"), test, 0o644))
	require.Contains(t, promtool(t, dir, "check", "rules", "rules.yaml"), "SUCCESS: 13 rules found")
	require.Contains(t, promtool(t, dir, "test", "rules", "custom.test.yaml"), "SUCCESS")
}

// TestThresholdSeconds checks the chart's duration-to-seconds conversion that
// NodepatchNodeHeld compares time() against.
func TestThresholdSeconds(t *testing.T) {
	cases := map[string]string{"90s": "90", "2h": "7200", "1h30m": "5400", "1d": "86400", "1w2d3h4m5s": "788645"}
	number := regexp.MustCompile(`time\(\) - max by \(node\) \(nodepatch_cycle_start_timestamp_seconds\{job="nodepatch"\}\) > (\d+)\n`)
	for in, want := range cases {
		rules := parseRules(t, ct.AlertRules(t, "--set", "alerts.nodeHeld.threshold="+in)).rules()
		var expr string
		for _, r := range rules {
			if r.Alert == "NodepatchNodeHeld" {
				expr = r.Expr
			}
		}
		m := number.FindStringSubmatch(expr)
		require.NotNil(t, m, "threshold %s: no comparison in %q", in, expr)
		require.Equal(t, want, m[1], "threshold %s", in)
	}
}
