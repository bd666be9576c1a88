package chart_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/metrics"
	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// TestDashboardConfigMap renders the dashboard's ConfigMap: by default with
// the kube-prometheus-stack sidecar's label and the file as it is; with the
// label, folder and namespace set; and not at all when disabled.
func TestDashboardConfigMap(t *testing.T) {
	_, file := ct.LoadDashboard(t)
	cmName := ct.Release + "-dashboard"

	cm := ct.FindNamed(t, ct.Objects(t, ct.Template(t)), "ConfigMap", cmName)
	md := ct.Path(t, map[string]any(cm), "metadata").(map[string]any)
	require.Equal(t, ct.Namespace, md["namespace"])
	require.Equal(t, "1", ct.Path(t, md, "labels", "grafana_dashboard"))
	require.Equal(t, ct.Release, ct.Path(t, md, "labels", "app.kubernetes.io/instance"))
	require.NotContains(t, md, "annotations", "no folder annotation without a folder")
	require.Equal(t, string(file), ct.Path(t, map[string]any(cm), "data", "nodepatch.json"), "the ConfigMap holds the file byte for byte")

	cm = ct.FindNamed(t, ct.Objects(t, ct.Template(t, "--set", "dashboard.label=example.com/dashboard", "--set", "dashboard.labelValue=nodes",
		"--set", "dashboard.folder=Platform Ops", "--set", "dashboard.folderAnnotation=example.com/folder", "--set", "dashboard.namespace=monitoring")),
		"ConfigMap", cmName)
	md = ct.Path(t, map[string]any(cm), "metadata").(map[string]any)
	require.Equal(t, "monitoring", md["namespace"])
	require.Equal(t, "nodes", ct.Path(t, md, "labels", "example.com/dashboard"))
	require.NotContains(t, md["labels"], "grafana_dashboard")
	require.Equal(t, map[string]any{"example.com/folder": "Platform Ops"}, md["annotations"])

	for _, o := range ct.Objects(t, ct.Template(t, "--set", "dashboard.enabled=false")) {
		if o.Name() == "nodepatch-pools" { // the rollout controller's, not a dashboard
			continue
		}
		require.NotEqual(t, "ConfigMap", o.Kind(), "dashboard.enabled=false rendered %s", o.Name())
	}
}

func TestDashboardSchemaRejectsBadValues(t *testing.T) {
	cases := []struct{ name, values, want string }{
		{"label with a space", "dashboard:\n  label: grafana dashboard\n", "/dashboard/label"},
		{"label value with a slash", "dashboard:\n  labelValue: a/b\n", "/dashboard/labelValue"},
		{"folder annotation empty", "dashboard:\n  folderAnnotation: \"\"\n", "/dashboard/folderAnnotation"},
		{"namespace not a DNS label", "dashboard:\n  namespace: Monitoring_NS\n", "/dashboard/namespace"},
		{"enabled as a string", "dashboard:\n  enabled: \"yes\"\n", "/dashboard/enabled"},
		{"unknown key", "dashboard:\n  folderUid: x\n", "additional properties 'folderUid' not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "values.yaml")
			require.NoError(t, os.WriteFile(f, []byte(c.values), 0o600))
			_, stderr, err := ct.Run(t, ct.TemplateArgs(t, "-f", f)...)
			require.Error(t, err, "the schema accepted:\n%s", c.values)
			require.Contains(t, stderr, "values don't meet the specifications of the schema")
			require.Contains(t, stderr, c.want)
		})
	}
}

// TestDashboardIsSound checks what Grafana would not: every panel and query
// uses the ${datasource} variable, panels do not overlap on the grid, each
// query has a unique refId, a table shows one instant answer, and every metric
// a query names is one the agent registers (so a renamed metric cannot leave
// an empty panel behind). test/e2e/dashboard_test.go runs the queries.
func TestDashboardIsSound(t *testing.T) {
	d, _ := ct.LoadDashboard(t)
	require.NotEmpty(t, d.Title)
	require.Regexp(t, `^[A-Za-z0-9_-]{1,40}$`, d.UID, "Grafana's uid: at most 40 letters, digits, - and _")
	require.GreaterOrEqual(t, d.SchemaVersion, 36, "a schema version of Grafana 9.3 or later (with the datasource uid references)")
	require.LessOrEqual(t, d.SchemaVersion, 41)

	var dsVar []ct.DashboardVariable
	for _, v := range d.Templating.List {
		if v.Name == "datasource" {
			dsVar = append(dsVar, v)
		}
	}
	require.Equal(t, []ct.DashboardVariable{{Name: "datasource", Type: "datasource", Query: "prometheus"}}, dsVar)
	want := &ct.Datasource{Type: "prometheus", UID: "${datasource}"}

	families := agentMetricFamilies(t)
	metricName := regexp.MustCompile(`\bnodepatch_[a-z0-9_]+`)
	ids := map[int]string{}
	var placed []ct.Panel
	queries := 0
	for _, p := range d.AllPanels() {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		require.NotEmpty(t, p.Title, "panel %d has no title", p.ID)
		require.NotContains(t, ids, p.ID, "%s: id already used by %q", where, ids[p.ID])
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		require.Equal(t, want, p.Datasource, where)
		g := p.GridPos
		require.True(t, g.X >= 0 && g.Y >= 0 && g.W > 0 && g.H > 0 && g.X+g.W <= 24, "%s: gridPos %+v is off Grafana's 24-column grid", where, g)
		for _, o := range placed {
			h := o.GridPos
			overlap := g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H
			require.False(t, overlap, "%s at %+v overlaps panel %d %q at %+v", where, g, o.ID, o.Title, h)
		}
		placed = append(placed, p)

		require.NotEmpty(t, p.Targets, "%s has no query", where)
		refIDs := map[string]bool{}
		for _, q := range p.Targets {
			queries++
			require.NotEmpty(t, q.RefID, where)
			require.False(t, refIDs[q.RefID], "%s: refId %s twice", where, q.RefID)
			refIDs[q.RefID] = true
			require.Equal(t, want, q.Datasource, "%s query %s", where, q.RefID)
			require.NotEmpty(t, strings.TrimSpace(q.Expr), "%s query %s", where, q.RefID)
			if p.Type == "table" {
				require.True(t, q.Instant && q.Format == "table", "%s query %s: a table shows one instant answer (instant, format table)", where, q.RefID)
			}
			names := metricName.FindAllString(q.Expr, -1)
			require.NotEmpty(t, names, "%s query %s names no nodepatch metric: %s", where, q.RefID, q.Expr)
			for _, n := range names {
				require.True(t, isAgentSeries(families, n), "%s query %s: %s is not a metric the agent exports (%s)", where, q.RefID, n, q.Expr)
			}
		}
	}
	require.GreaterOrEqual(t, queries, 7)

	// The metric check can fail.
	require.False(t, isAgentSeries(families, "nodepatch_reboots_total_bucket"))
	require.False(t, isAgentSeries(families, "nodepatch_phase_count"))
	require.True(t, isAgentSeries(families, "nodepatch_drain_duration_seconds_bucket"))
}

// agentMetricFamilies are the agent's metric families by name, with their types.
func agentMetricFamilies(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	mfs, err := metrics.New("node-0", "test").Registry.Gather()
	require.NoError(t, err)
	families := map[string]dto.MetricType{}
	for _, mf := range mfs {
		families[mf.GetName()] = mf.GetType()
	}
	return families
}

// isAgentSeries: name is an agent metric, or a _bucket, _sum or _count series
// of one of its histograms.
func isAgentSeries(families map[string]dto.MetricType, name string) bool {
	if _, ok := families[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok {
			if typ, ok := families[base]; ok && typ == dto.MetricType_HISTOGRAM {
				return true
			}
		}
	}
	return false
}
