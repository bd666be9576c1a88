package kured

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/nodepatch/nodepatch/test/chart/charttest"
)

// These tests hold the table and the migration's output to the chart as it is:
// every value path named must exist in charts/nodepatch/values.yaml, every
// value produced must pass values.schema.json, and the real helm must render
// the chart with the output.

func readChartFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "charts", "nodepatch", name))
	require.NoError(t, err)
	return b
}

func chartValues(t testing.TB) map[string]any {
	t.Helper()
	var values map[string]any
	require.NoError(t, yaml.Unmarshal(readChartFile(t, "values.yaml"), &values))
	return values
}

// requireChartPath fails unless the dotted path exists in the chart's values.
// Below a value that is not a map with keys (a list, {} or a scalar), the
// chart takes anything, so the walk stops there.
func requireChartPath(t *testing.T, chart map[string]any, path string) {
	t.Helper()
	require.NoError(t, chartPathError(chart, path))
}

func chartPathError(chart map[string]any, path string) error {
	var node any = chart
	for _, k := range strings.Split(path, ".") {
		m, ok := node.(map[string]any)
		if !ok || len(m) == 0 {
			return nil
		}
		next, ok := m[k]
		if !ok {
			return fmt.Errorf("chart value %s: no key %q in charts/nodepatch/values.yaml (keys there: %v)", path, k, keysOf(m))
		}
		node = next
	}
	return nil
}

func keysOf(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// leafPaths lists the dotted paths of the non-map values in v.
func leafPaths(prefix string, v any) []string {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		return []string{prefix}
	}
	var paths []string
	for k, child := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		paths = append(paths, leafPaths(p, child)...)
	}
	sort.Strings(paths)
	return paths
}

func TestEveryTablePathIsAChartValue(t *testing.T) {
	chart := chartValues(t)
	seen := 0
	for _, f := range Flags() {
		for _, p := range f.Paths {
			requireChartPath(t, chart, p)
			seen++
		}
		if len(f.Paths) == 0 {
			require.NotEmpty(t, f.NoEquivalent, "--%s maps to nothing and says not why", f.Name)
		}
	}
	require.Greater(t, seen, 20)
	// The check can fail.
	require.Error(t, chartPathError(chart, "agent.nosuchvalue"))
	require.Error(t, chartPathError(chart, "agent.window.nosuchvalue"))
	require.NoError(t, chartPathError(chart, "affinity.nodeAffinity"), "below {} anything goes")
}

func TestTheTableNamesEachFlagOnce(t *testing.T) {
	names := map[string]bool{}
	for _, f := range Flags() {
		require.False(t, names[f.Name], "--%s twice", f.Name)
		names[f.Name] = true
		require.NotEmpty(t, f.Kind, "--%s", f.Name)
		if f.With != "" {
			require.True(t, slices.ContainsFunc(Flags(), func(o Flag) bool { return o.Name == f.With && o.convert != nil }),
				"--%s goes with --%s, which converts nothing", f.Name, f.With)
		}
		require.NotEqual(t, len(f.Paths) > 0, f.NoEquivalent != "" && len(f.Paths) == 0,
			"--%s: exactly one of chart values or no equivalent", f.Name)
	}
}

// richInput sets every flag that reaches a chart value, and the scheduling.
func richInput() Input {
	in := kuredInput("--period=5m", "--reboot-days=mon,tue,fri", "--start-time=22:00", "--end-time=5:59:59", "--time-zone=Europe/Berlin",
		"--lock-ttl=1h", "--concurrency=3", "--drain-timeout=15m", "--drain-grace-period=60", "--drain-pod-selector=app!=db",
		"--force-reboot", "--log-format=json", "--metrics-port=9100", "--reboot-command=/usr/sbin/shutdown -r now",
		"--reboot-sentinel=/sentinel/kured/needs-reboot",
		"--prometheus-url=http://prometheus.monitoring:9090", "--blocking-pod-selector=app=batch", "--notify-url="+slackURL,
		"--message-template-drain=Draining %s for patches", "--message-template-reboot=%s reboots", "--message-template-uncordon=%s is back (100%%)",
		"--pre-reboot-node-labels=kured=rebooting", "--post-reboot-node-labels=kured=done", "--drain-delay=30s", "--reboot-delay=1m",
		"--skip-wait-for-delete-timeout=30", "--lock-release-delay=5m", "--alert-filter-regexp=^Watchdog$", "--alert-firing-only",
		"--alert-filter-match-only=false", "--ds-name=kured-lock")
	in.NodeSelector = map[string]string{"kubernetes.io/os": "linux"}
	in.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	in.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "pool", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}}}}}}
	in.PriorityClassName = "system-node-critical"
	return in
}

func TestEveryProducedValueIsAChartValueTheSchemaAccepts(t *testing.T) {
	r, err := Migrate(richInput())
	require.NoError(t, err)
	paths := leafPaths("", r.Values)
	require.Greater(t, len(paths), 20, "%v", paths)
	chart := chartValues(t)
	for _, p := range paths {
		requireChartPath(t, chart, p)
	}

	var schema map[string]any
	require.NoError(t, json.Unmarshal(readChartFile(t, "values.schema.json"), &schema))
	v := validator{root: schema}
	// Through JSON, as helm hands the values to its schema check.
	var values any
	b, err := json.Marshal(r.Values)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &values))
	require.Empty(t, v.check("", schema, values), "the migration's values against values.schema.json")

	// The checker finds what the schema refuses.
	bad := map[string]any{"agent": map[string]any{"period": "1 hour", "window": map[string]any{"days": []any{"su"}}, "nosuch": 1,
		"nodeLabels": map[string]any{"preReboot": []any{"nodepatch.io/x=y", "a=b", "a=b"}}}}
	require.Len(t, v.check("", schema, bad), 5, "%v", v.check("", schema, bad))
}

// validator checks values against the parts of JSON Schema (draft 7) that
// charts/nodepatch/values.schema.json uses.
type validator struct{ root map[string]any }

func (v validator) resolve(s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		name := strings.TrimPrefix(ref, "#/definitions/")
		s = v.root["definitions"].(map[string]any)[name].(map[string]any)
	}
}

func (v validator) check(at string, s map[string]any, value any) []string {
	s = v.resolve(s)
	var errs []string
	bad := func(format string, args ...any) { errs = append(errs, at+": "+fmt.Sprintf(format, args...)) }
	if oneOf, ok := s["oneOf"].([]any); ok {
		matched := 0
		for _, alt := range oneOf {
			if len(v.check(at, alt.(map[string]any), value)) == 0 {
				matched++
			}
		}
		if matched != 1 {
			bad("%v matches %d of oneOf", value, matched)
		}
	}
	if anyOf, ok := s["anyOf"].([]any); ok && !slices.ContainsFunc(anyOf, func(alt any) bool { return len(v.check(at, alt.(map[string]any), value)) == 0 }) {
		bad("%v matches none of anyOf", value)
	}
	if not, ok := s["not"].(map[string]any); ok && len(v.check(at, not, value)) == 0 {
		bad("%v matches what the schema forbids (not)", value)
	}
	if enum, ok := s["enum"].([]any); ok && !slices.Contains(enum, value) {
		bad("%v not in %v", value, enum)
	}
	switch typ, _ := s["type"].(string); typ {
	case "object":
		if _, ok := value.(map[string]any); !ok {
			bad("%v is not an object", value)
		}
	case "array":
		if _, ok := value.([]any); !ok {
			bad("%v is not an array", value)
		}
	case "string":
		if _, ok := value.(string); !ok {
			bad("%v is not a string", value)
		}
	case "integer":
		if f, ok := value.(float64); !ok || f != math.Trunc(f) {
			bad("%v is not an integer", value)
		}
	case "boolean":
		if _, ok := value.(bool); !ok {
			bad("%v is not a boolean", value)
		}
	}
	switch x := value.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for k, child := range x {
			if ps, ok := props[k].(map[string]any); ok {
				errs = append(errs, v.check(at+"."+k, ps, child)...)
			} else if additional, ok := s["additionalProperties"].(map[string]any); ok {
				errs = append(errs, v.check(at+"."+k, additional, child)...)
			} else if s["additionalProperties"] == false {
				bad("unknown key %q", k)
			}
		}
	case []any:
		if n, ok := s["minItems"].(float64); ok && float64(len(x)) < n {
			bad("fewer than %v items", n)
		}
		if s["uniqueItems"] == true {
			for i := range x {
				if slices.ContainsFunc(x[:i], func(y any) bool { return reflect.DeepEqual(x[i], y) }) {
					bad("item %d repeats %v", i, x[i])
				}
			}
		}
		if items, ok := s["items"].(map[string]any); ok {
			for i, item := range x {
				errs = append(errs, v.check(fmt.Sprintf("%s[%d]", at, i), items, item)...)
			}
		}
	case string:
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(x) {
			bad("%q does not match %s", x, p)
		}
		if n, ok := s["minLength"].(float64); ok && float64(len(x)) < n {
			bad("%q shorter than %v", x, n)
		}
	case float64:
		if n, ok := s["minimum"].(float64); ok && x < n {
			bad("%v below %v", x, n)
		}
		if n, ok := s["maximum"].(float64); ok && x > n {
			bad("%v above %v", x, n)
		}
	}
	return errs
}

// TestHelmRendersTheMigratedValues renders the chart with the real helm and
// the migration's output as a values file, and reads the agent's and the
// controller's arguments back.
func TestHelmRendersTheMigratedValues(t *testing.T) {
	r, err := Migrate(richInput())
	require.NoError(t, err)
	out, err := r.YAML()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(file, out, 0o600))

	objs := charttest.Objects(t, charttest.Template(t, "-f", file))
	ds := charttest.Find(t, objs, "DaemonSet")
	container := charttest.Path(t, map[string]any(ds), "spec", "template", "spec", "containers", 0).(map[string]any)
	var args []string
	for _, a := range container["args"].([]any) {
		args = append(args, a.(string))
	}
	for _, want := range []string{
		"--period=5m", "--reboot-days=mon,tue,fri", "--start-time=22:00", "--end-time=06:00", "--time-zone=Europe/Berlin",
		"--lock-ttl=1h", "--concurrency=3", "--drain-timeout=15m", "--drain-grace-period=60", "--drain-pod-selector=app!=db",
		"--reboot-after-drain-timeout=true", "--log-format=json", "--metrics-address=:9100",
		"--reboot-method=command", "--reboot-command=/usr/sbin/shutdown -r now",
		"--sentinel-file=/host/run/kured/needs-reboot", "--patch=off",
		"--prometheus-url=http://prometheus.monitoring:9090", "--blocking-pod-selector=app=batch", "--notify-url=" + slackURL,
		"--message-template-drain=Draining %s for patches", "--message-template-reboot=%s reboots", "--message-template-uncordon=%s is back (100%%)",
		"--pre-reboot-node-labels=kured=rebooting", "--post-reboot-node-labels=kured=done", "--drain-delay=30s", "--reboot-delay=1m",
		"--skip-wait-for-delete-timeout=30", "--soak=5m", "--alert-filter-regexp=^Watchdog$", "--alert-firing-only=true",
		"--kured-daemonset=kube-system/kured-lock", "--kured-lock-annotation=weave.works/kured-node-lock",
	} {
		require.Contains(t, args, want)
	}
	spec := charttest.Path(t, map[string]any(ds), "spec", "template", "spec").(map[string]any)
	require.Equal(t, "system-node-critical", spec["priorityClassName"])
	require.Contains(t, spec["tolerations"], map[string]any{"operator": "Exists"})
	require.NotNil(t, spec["affinity"])

	controller := charttest.FindNamed(t, objs, "Deployment", charttest.Release+"-controller")
	cargs := charttest.Path(t, map[string]any(controller), "spec", "template", "spec", "containers", 0, "args").([]any)
	require.Contains(t, cargs, "--max-unavailable=3")
}

// TestHelmRendersANotificationURLFromASecret: kured's URL from a Secret
// becomes NODEPATCH_NOTIFY_URL from the same Secret, and the chart then
// renders no --notify-url that would win over it.
func TestHelmRendersANotificationURLFromASecret(t *testing.T) {
	in := kuredInput("--message-template-drain=Draining %s")
	in.Env = append(in.Env, corev1.EnvVar{Name: "KURED_NOTIFY_URL", ValueFrom: &corev1.EnvVarSource{
		SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "kured"}, Key: "url"}}})
	r, err := Migrate(in)
	require.NoError(t, err)
	out, err := r.YAML()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(file, out, 0o600))

	ds := charttest.Find(t, charttest.Objects(t, charttest.Template(t, "-f", file)), "DaemonSet")
	container := charttest.Path(t, map[string]any(ds), "spec", "template", "spec", "containers", 0).(map[string]any)
	require.Contains(t, charttest.Path(t, container, "env"), map[string]any{"name": "NODEPATCH_NOTIFY_URL",
		"valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "kured", "key": "url"}}})
	for _, a := range container["args"].([]any) {
		require.False(t, strings.HasPrefix(a.(string), "--notify-url"), "%s would win over NODEPATCH_NOTIFY_URL", a)
	}
	require.Contains(t, container["args"], "--message-template-drain=Draining %s")
}

// TestTheChartsNotificationDefaultsAreKureds: the migration carries nothing
// for a kured message template at its default, which is right only while the
// chart's defaults are kured's; and its check of a URL is the schema's.
func TestTheChartsNotificationDefaultsAreKureds(t *testing.T) {
	chart := chartValues(t)
	seen := 0
	for _, f := range Flags() {
		if !strings.HasPrefix(f.Name, "message-template-") {
			continue
		}
		seen++
		require.Len(t, f.Paths, 1)
		var node any = chart
		for _, k := range strings.Split(f.Paths[0], ".") {
			node = node.(map[string]any)[k]
		}
		require.Equal(t, f.Default, node, "the chart's %s is not kured's default of --%s", f.Paths[0], f.Name)
	}
	require.Equal(t, 3, seen)

	var schema any
	require.NoError(t, json.Unmarshal(readChartFile(t, "values.schema.json"), &schema))
	items := charttest.Path(t, schema, "properties", "agent", "properties", "notify", "properties", "urls", "items").(map[string]any)
	require.Equal(t, items["pattern"], chartNotifyURL.String(), "chartNotifyURL is not values.schema.json's agent.notify.urls pattern")
}
