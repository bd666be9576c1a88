package chart_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/nodepatch/nodepatch/pkg/kured"
	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// The chart takes kured's chart values (configuration.*) and converts each as
// pkg/kured converts the kured flag it stands for. These tests hold the chart
// to pkg/kured: for the same kured configuration, the chart given
// configuration.* must render the agent flags the chart renders from
// `nodepatch migrate from-kured`'s values.

// kuredValuesFile is a kured user's values file. helm runs in the
// repository's root, so the path is absolute.
func kuredValuesFile(t *testing.T) string {
	return filepath.Join(ct.RepoRoot(t), "test", "chart", "testdata", "kured-values.yaml")
}

// kuredFlagsByKey indexes kured's flags by their name in kured's chart:
// configuration.rebootDays is --reboot-days.
func kuredFlagsByKey() map[string]kured.Flag {
	flags := map[string]kured.Flag{}
	for _, f := range kured.Flags() {
		parts := strings.Split(f.Name, "-")
		for i := 1; i < len(parts); i++ {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
		flags[strings.Join(parts, "")] = f
	}
	return flags
}

// notAFlag are configuration keys of kured's chart that are no kured flag.
var notAFlag = map[string]string{
	"useRebootSentinelHostPath": "whether kured's chart mounts the sentinel's host folder",
}

// kuredSet says whether kured's chart passes a value's flag to kured: its
// templates test each value with `if`, which is false for nil, "", 0, false
// and an empty list.
func kuredSet(v any) bool {
	if v == nil {
		return false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Slice {
		return rv.Len() > 0
	}
	return !rv.IsZero()
}

// kuredInput is the kured container kured's chart renders from configuration:
// one flag per set key (list keys once per item), and, while
// useRebootSentinelHostPath (default true), the sentinel's host folder mounted
// at /sentinel with --reboot-sentinel pointing into it and no sentinel command.
func kuredInput(t *testing.T, conf map[string]any) kured.Input {
	t.Helper()
	flags := kuredFlagsByKey()
	hostPathMode := true
	if v, ok := conf["useRebootSentinelHostPath"]; ok {
		hostPathMode = v.(bool)
	}
	in := kured.Input{Command: []string{"/usr/bin/kured"}}
	for _, key := range slices.Sorted(maps.Keys(conf)) {
		v := conf[key]
		if _, ok := notAFlag[key]; ok || !kuredSet(v) {
			continue
		}
		f, ok := flags[key]
		require.True(t, ok, "configuration.%s is no kured flag", key)
		switch {
		case key == "rebootSentinelCommand" && hostPathMode:
			continue
		case key == "rebootSentinel" && hostPathMode:
			p := v.(string)
			in.Args = append(in.Args, "--reboot-sentinel=/sentinel/"+path.Base(p))
			in.VolumeMounts = []corev1.VolumeMount{{Name: "sentinel", MountPath: "/sentinel", ReadOnly: true}}
			in.Volumes = []corev1.Volume{{Name: "sentinel", VolumeSource: corev1.VolumeSource{
				HostPath: &corev1.HostPathVolumeSource{Path: path.Dir(p)}}}}
			continue
		}
		if items, ok := v.([]any); ok {
			for _, item := range items {
				in.Args = append(in.Args, fmt.Sprintf("--%s=%v", f.Name, item))
			}
			continue
		}
		in.Args = append(in.Args, fmt.Sprintf("--%s=%v", f.Name, v))
	}
	return in
}

// writeValues writes values to a file for helm's -f.
func writeValues(t *testing.T, values map[string]any) string {
	t.Helper()
	b, err := yaml.Marshal(values)
	require.NoError(t, err)
	f := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(f, b, 0o644))
	return f
}

// renderedFlags are the flags a render gives the agent and the controller.
type renderedFlags struct {
	Agent      map[string]string
	Repeated   map[string][]string
	Controller map[string]string
}

func flagsOf(t *testing.T, objs []ct.Object) renderedFlags {
	t.Helper()
	r := renderedFlags{Agent: agentArgs(t, objs), Repeated: agentRepeatedArgs(t, objs), Controller: map[string]string{}}
	for _, a := range ct.Path(t, map[string]any(ct.FindNamed(t, objs, "Deployment", ct.Release+"-controller")),
		"spec", "template", "spec", "containers", 0, "args").([]any)[1:] {
		name, value, _ := strings.Cut(strings.TrimPrefix(a.(string), "--"), "=")
		r.Controller[name] = value
	}
	// The agent and the schema read any spelling of a duration ("1h0m0s",
	// "60m"), and the chart and pkg/kured may write them differently.
	for _, m := range []map[string]string{r.Agent, r.Controller} {
		for k, v := range m {
			if d, err := time.ParseDuration(v); err == nil {
				m[k] = d.String()
			}
		}
	}
	return r
}

// migratedFlags renders the chart with the values pkg/kured makes of the kured
// container kured's chart renders from conf, less the values that come from
// no configuration key: agent.patch (kured never patches; the chart keeps
// nodepatch's default) and agent.blockers.kured.daemonSet (kured's own
// DaemonSet, which kured's chart names after its release).
func migratedFlags(t *testing.T, conf map[string]any) renderedFlags {
	t.Helper()
	r, err := kured.Migrate(kuredInput(t, conf))
	require.NoError(t, err)
	agent := r.Values["agent"].(map[string]any)
	delete(agent, "patch")
	delete(agent["blockers"].(map[string]any)["kured"].(map[string]any), "daemonSet")
	return flagsOf(t, ct.Objects(t, ct.Template(t, "-f", writeValues(t, r.Values))))
}

// configurationFlags renders the chart with conf as configuration, with the
// chart's values.yaml given explicitly first: the chart's mapping assumes the
// defaults of values.yaml (a template cannot read them), and one it has wrong
// would make the explicit default look set by the user and fail the render.
func configurationFlags(t *testing.T, conf map[string]any) renderedFlags {
	t.Helper()
	return flagsOf(t, ct.Objects(t, ct.Template(t, "-f", filepath.Join(ct.ChartDir(t), "values.yaml"),
		"-f", writeValues(t, map[string]any{"configuration": conf}))))
}

func readKuredValues(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(kuredValuesFile(t))
	require.NoError(t, err)
	var values map[string]any
	require.NoError(t, yaml.Unmarshal(b, &values))
	return values
}

// kuredCases are kured configurations, each key alone and in the combinations
// whose conversions read each other, that the chart must render as pkg/kured
// converts them.
func kuredCases(t *testing.T) map[string]map[string]any {
	const slackURL = "slack://T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"
	cases := map[string]map[string]any{
		"the kured values file":       readKuredValues(t)["configuration"].(map[string]any),
		"period":                      {"period": "90s"},
		"period zero":                 {"period": "0s"},
		"sentinel under /var/run":     {"rebootSentinel": "/var/run/kured/needs-reboot"},
		"sentinel under /run":         {"rebootSentinel": "/run/reboot-required"},
		"sentinel elsewhere":          {"rebootSentinel": "/etc/kured/reboot-needed"},
		"sentinel without host path":  {"useRebootSentinelHostPath": false, "rebootSentinel": "/var/run/reboot-needed"},
		"sentinel command":            {"useRebootSentinelHostPath": false, "rebootSentinelCommand": "test -f /var/run/reboot-required", "rebootSentinel": "/x"},
		"signal method":               {"rebootMethod": "signal"},
		"signal 39":                   {"rebootMethod": "signal", "rebootSignal": 39, "rebootCommand": "/bin/systemctl reboot"},
		"reboot command":              {"rebootCommand": "/usr/sbin/shutdown -r now"},
		"systemctl reboot":            {"rebootMethod": "command", "rebootCommand": "systemctl  reboot"},
		"reboot delay":                {"rebootDelay": "2m"},
		"force reboot":                {"forceReboot": true},
		"days in kured's spellings":   {"rebootDays": []any{"su", "Saturday", "3", "FRI"}},
		"days in one item":            {"rebootDays": []any{"mo,tu", "we"}},
		"days as numbers":             {"rebootDays": []any{0, 6}},
		"start seconds round up":      {"startTime": "23:59:30"},
		"twelve-hour clock":           {"startTime": "03pm", "endTime": "11:30pm"},
		"end seconds":                 {"endTime": "7:30:10"},
		"midnight":                    {"startTime": "12am", "endTime": "4"},
		"hour as a number":            {"startTime": 22},
		"fractional seconds":          {"startTime": "1:00:00.5", "endTime": "2:59:59,9"},
		"time zone":                   {"timeZone": "America/New_York"},
		"concurrency":                 {"concurrency": 4},
		"concurrency above the bound": {"concurrency": 5000},
		"concurrency below 1":         {"concurrency": -3},
		"short lock TTL":              {"lockTtl": "5m"},
		"lock TTL":                    {"lockTtl": "2h"},
		"lock TTL zero":               {"lockTtl": "0s"},
		"lock TTL and drain timeout":  {"lockTtl": "20m", "drainTimeout": "15m"},
		"lock release delay":          {"lockReleaseDelay": "5m"},
		"long lock release delay":     {"lockReleaseDelay": "20m"},
		"lock annotation":             {"lockAnnotation": "example.com/kured-lock"},
		"drain timeout zero":          {"drainTimeout": "0s"},
		"grace period below -1":       {"drainGracePeriod": -5},
		"grace period as a string":    {"drainGracePeriod": "30"},
		"drain pod selector":          {"drainPodSelector": "app notin (db,cache)"},
		"drain delay":                 {"drainDelay": "45s"},
		"skip wait":                   {"skipWaitForDeleteTimeout": 60},
		"negative skip wait":          {"skipWaitForDeleteTimeout": -2},
		"node labels":                 {"preRebootNodeLabels": []any{"a.example/x=1,b=2"}, "postRebootNodeLabels": []any{"b=3", "b=3"}},
		"blocking pods":               {"blockingPodSelector": []any{"app=batch", "tier in (db,cache)", "app=batch"}},
		"prometheus":                  {"prometheusUrl": "https://prom.example:9090", "alertFilterRegexp": "^Watchdog$", "alertFilterMatchOnly": true, "alertFiringOnly": true},
		"alert filters alone":         {"alertFilterRegexp": "^Watchdog$", "alertFiringOnly": true},
		"notify URL in quotes":        {"notifyUrl": `"` + slackURL + `"`},
		"slack hook":                  {"slackHookUrl": "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"},
		"slack hook and notify URL":   {"slackHookUrl": "https://hooks.slack.com/services/T1/B1/X1", "notifyUrl": slackURL, "slackChannel": "ops", "slackUsername": "kured"},
		"message templates":           {"messageTemplateDrain": "Draining %s", "messageTemplateReboot": "Rebooting node %s", "messageTemplateUncordon": "%s is back (100%%)"},
		"ignored keys":                {"annotateNodes": true, "preferNoScheduleTaint": "weave.works/kured-node-reboot", "metricsHost": ""},
		"metrics port":                {"metricsPort": 9100},
		"log format":                  {"logFormat": "json"},
	}
	return cases
}

// TestKuredValuesMatchTheMigration: for each kured configuration, the chart's
// configuration.* renders the flags pkg/kured's conversion of the same kured
// renders; and between them the cases set every key of the schema's
// configuration, so a key the chart newly takes is held to pkg/kured too.
func TestKuredValuesMatchTheMigration(t *testing.T) {
	covered := map[string]bool{}
	for name, conf := range kuredCases(t) {
		for k, v := range conf {
			if kuredSet(v) {
				covered[k] = true
			}
		}
		t.Run(name, func(t *testing.T) {
			require.Equal(t, migratedFlags(t, conf), configurationFlags(t, conf))
		})
	}
	// metricsHost is refused when set (TestKuredRefusals).
	covered["metricsHost"] = true
	require.ElementsMatch(t, slices.Collect(maps.Keys(configurationSchema(t))), slices.Collect(maps.Keys(covered)))
}

// TestKuredValuesFile installs the chart with a kured user's values file as it
// is, and checks the flags it gives the agent and the controller.
func TestKuredValuesFile(t *testing.T) {
	objs := ct.Objects(t, ct.Template(t, "-f", kuredValuesFile(t)))
	flags := agentArgs(t, objs)
	want := map[string]string{
		"concurrency": "2", "period": "5m", "lock-ttl": "1h",
		"sentinel-file": "/host/run/reboot-required", "sentinel-command": "",
		"reboot-method": "systemd", "reboot-command": "", "reboot-after-drain-timeout": "true", "reboot-delay": "1m",
		"reboot-days": "mon,tue,wed,thu", "start-time": "22:00", "end-time": "06:00", "time-zone": "Europe/Berlin",
		"drain-timeout": "15m", "drain-grace-period": "60", "drain-pod-selector": "app!=db", "drain-delay": "30s",
		"skip-wait-for-delete-timeout": "120",
		"pre-reboot-node-labels":       "example.com/maintenance=true",
		"post-reboot-node-labels":      "example.com/maintenance=false,example.com/patched=yes",
		"prometheus-url":               "http://prometheus-operated.monitoring:9090",
		"alert-filter-regexp":          "^(Watchdog|InfoInhibitor)$", "alert-filter-match-only": "false", "alert-firing-only": "true",
		"kured-lock-annotation": "weave.works/kured-node-lock",
		"soak":                  "5m", "health-timeout": "10m",
		"message-template-drain": "Draining node %s for OS updates", "message-template-reboot": "Rebooting node %s",
		"message-template-uncordon": "Node %s is back",
		"metrics-address":           ":9100", "log-format": "json",
	}
	for k, v := range want {
		require.Equal(t, v, flags[k], "--%s", k)
	}
	require.Equal(t, map[string][]string{
		"blocking-pod-selector": {"app=batch-runner", "app.kubernetes.io/part-of=ci,app.kubernetes.io/component=runner"},
		"notify-url":            {"slack://T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"},
	}, agentRepeatedArgs(t, objs))

	// The mapped values reach every template that renders them, not only the
	// agent's arguments.
	require.EqualValues(t, 9100, ct.Path(t, agentContainer(t, objs), "ports", 0, "containerPort"))
	require.EqualValues(t, 9100, ct.Path(t, map[string]any(ct.FindNamed(t, objs, "Service", ct.Release+"-metrics")), "spec", "ports", 0, "port"))
	controller := flagsOf(t, objs).Controller
	require.Equal(t, "2", controller["max-unavailable"])
	require.Equal(t, ":9100", controller["metrics-address"])
	require.Equal(t, "json", controller["log-format"])
	policy := ct.FindNamed(t, objs, "ValidatingAdmissionPolicy", "nodepatch-own-node")
	var keys string
	for _, v := range ct.Path(t, map[string]any(policy), "spec", "variables").([]any) {
		if v := v.(map[string]any); v["name"] == "labelKeys" {
			keys = v["expression"].(string)
		}
	}
	require.Equal(t, `["example.com/maintenance","example.com/patched","node.kubernetes.io/exclude-from-external-load-balancers"]`, keys)
	// What the kured file has outside configuration and the chart shares.
	pod := ct.Path(t, map[string]any(ct.Find(t, objs, "DaemonSet")), "spec", "template", "spec").(map[string]any)
	require.Equal(t, "system-node-critical", pod["priorityClassName"])

	// The explicit defaults of values.yaml change nothing: the mapping's
	// assumed defaults are values.yaml's.
	require.Equal(t, ct.Template(t, "-f", kuredValuesFile(t)),
		ct.Template(t, "-f", filepath.Join(ct.ChartDir(t), "values.yaml"), "-f", kuredValuesFile(t)))
}

// TestKuredAndNodepatchValuesTogether: a configuration key and the nodepatch
// value it maps to may both be set only to the same value; otherwise the
// render fails naming both.
func TestKuredAndNodepatchValuesTogether(t *testing.T) {
	cases := []struct {
		name   string
		values string
		want   string // empty: the render succeeds
	}{
		{"concurrency and agent.concurrency", "configuration: {concurrency: 3}\nagent: {concurrency: 2}\n",
			"configuration.concurrency (a kured chart value) sets agent.concurrency to 3, but agent.concurrency is set to 2: set one of them"},
		{"concurrency and the controller's limit", "configuration: {concurrency: 3}\ncontroller: {maxUnavailable: 10%}\n",
			`configuration.concurrency (a kured chart value) sets controller.maxUnavailable to 3, but controller.maxUnavailable is set to "10%"`},
		{"days", "configuration: {rebootDays: [sa]}\nagent: {window: {days: [sun]}}\n",
			`configuration.rebootDays (a kured chart value) sets agent.window.days to ["sat"], but agent.window.days is set to ["sun"]`},
		{"period", "configuration: {period: 5m}\nagent: {period: 2m}\n",
			`configuration.period (a kured chart value) sets agent.period to "5m", but agent.period is set to "2m"`},
		{"metrics port", "configuration: {metricsPort: 9100}\nmetrics: {port: 9200}\n",
			"configuration.metricsPort (a kured chart value) sets metrics.port to 9100, but metrics.port is set to 9200"},
		{"notification URL", "configuration: {notifyUrl: 'teams://a@b/c'}\nagent: {notify: {urls: ['slack://x/y/z']}}\n",
			`configuration.notifyUrl (a kured chart value) sets agent.notify.urls to ["teams://a@b/c"]`},
		{"reboot command", "configuration: {rebootCommand: shutdown -r now}\nagent: {reboot: {method: command, command: reboot}}\n",
			`configuration.rebootCommand (a kured chart value) sets agent.reboot.command to "shutdown -r now", but agent.reboot.command is set to "reboot"`},
		{"sentinel outside /run", "configuration: {rebootSentinel: /etc/needs-reboot}\nagent: {sentinel: {command: 'true'}}\n",
			`configuration.rebootSentinel (a kured chart value) sets agent.sentinel.command to "test -e '/etc/needs-reboot'", but agent.sentinel.command is set to "true"`},
		{"the same value twice", "configuration: {concurrency: 3, period: 5m}\nagent: {concurrency: 3, period: 5m}\ncontroller: {maxUnavailable: 3}\n", ""},
		{"kured's defaults beside nodepatch's values", "configuration: {metricsPort: 8080, rebootCommand: /bin/systemctl reboot, logFormat: text}\n" +
			"agent: {concurrency: 4, logFormat: text}\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "values.yaml")
			require.NoError(t, os.WriteFile(f, []byte(c.values), 0o644))
			_, stderr, err := ct.Run(t, ct.TemplateArgs(t, "-f", f)...)
			if c.want == "" {
				require.NoError(t, err, stderr)
				return
			}
			require.Error(t, err)
			require.Contains(t, stderr, c.want)
			require.Contains(t, stderr, "docs/migrating-from-kured.md")
		})
	}
}

// TestKuredRefusals: misspelt keys and values kured refuses fail the schema;
// keys nodepatch has no place for, and combinations it cannot take as kured
// meant them, fail the render with a message naming the key.
func TestKuredRefusals(t *testing.T) {
	cases := []struct {
		name, values string
		want         []string
	}{
		{"misspelt key", "configuration: {rebootDay: [mo]}\n",
			[]string{"values don't meet the specifications of the schema", "at '/configuration': additional properties 'rebootDay' not allowed"}},
		{"kured's old name", "configuration: {annotationTtl: 1h}\n",
			[]string{"at '/configuration': additional properties 'annotationTtl' not allowed"}},
		{"boolean as a string", "configuration: {forceReboot: 'yes'}\n",
			[]string{"/configuration/forceReboot", "got string, want boolean"}},
		{"unknown day", "configuration: {rebootDays: [mo, tues]}\n", []string{"/configuration/rebootDays/1"}},
		{"duration without a unit", "configuration: {drainTimeout: '15'}\n", []string{"/configuration/drainTimeout"}},
		{"unknown reboot method", "configuration: {rebootMethod: kexec}\n", []string{"/configuration/rebootMethod"}},
		{"time with a one-digit hour before pm", "configuration: {startTime: '3:04pm'}\n", []string{"/configuration/startTime"}},
		{"hour past the day", "configuration: {startTime: '24:00'}\n",
			[]string{`configuration.startTime "24:00" is not a time of day kured reads`}},
		{"minute out of range", "configuration: {endTime: '5:60'}\n",
			[]string{`configuration.endTime "5:60" is not a time of day kured reads`}},
		{"a window of a second", "configuration: {startTime: '22:00', endTime: '21:59:30'}\n",
			[]string{`configuration.startTime "22:00" and configuration.endTime "21:59:30"`, "nodepatch's window needs a start and an end that differ"}},
		{"metrics host", "configuration: {metricsHost: 127.0.0.1}\n",
			[]string{`configuration.metricsHost "127.0.0.1" has no nodepatch equivalent`, "docs/migrating-from-kured.md"}},
		{"another signal", "configuration: {rebootMethod: signal, rebootSignal: 15}\n",
			[]string{"configuration.rebootSignal 15: nodepatch has no signal method", "docs/migrating-from-kured.md"}},
		{"sentinel command with the host path", "configuration: {rebootSentinelCommand: 'test -f /run/x'}\n",
			[]string{"configuration.rebootSentinelCommand is set while configuration.useRebootSentinelHostPath is true", "docs/migrating-from-kured.md"}},
		{"empty pod selector", "configuration: {blockingPodSelector: ['']}\n", []string{"/configuration/blockingPodSelector/0"}},
		{"nodepatch's own label", "configuration: {preRebootNodeLabels: ['a=b,nodepatch.io/x=y']}\n", []string{"/configuration/preRebootNodeLabels/0"}},
		{"slack hook of another form", "configuration: {slackHookUrl: 'https://hooks.slack.com/A/B'}\n", []string{"/configuration/slackHookUrl"}},
		{"notify URL without a scheme", "configuration: {notifyUrl: hooks.example/x}\n", []string{"/configuration/notifyUrl"}},
		{"a template kured would garble", "configuration: {messageTemplateDrain: 'Draining %d'}\n", []string{"/configuration/messageTemplateDrain"}},
		{"metrics port out of range", "configuration: {metricsPort: 0}\n", []string{"/configuration/metricsPort"}},
		// The agent's own checks run on the values the configuration gave.
		{"the soak of an explicit health timeout", "configuration: {lockReleaseDelay: 20m}\nagent: {health: {timeout: 15m}}\n",
			[]string{`agent.health.soak "20m" is not shorter than agent.health.timeout "15m"`}},
		{"force reboot and a quarantining drain", "configuration: {forceReboot: true}\nagent: {drain: {timeoutAction: quarantine}}\n",
			[]string{`agent.reboot.afterDrainTimeout and agent.drain.timeoutAction "quarantine"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "values.yaml")
			require.NoError(t, os.WriteFile(f, []byte(c.values), 0o644))
			_, stderr, err := ct.Run(t, ct.TemplateArgs(t, "-f", f)...)
			require.Error(t, err, "the chart took:\n%s", c.values)
			for _, w := range c.want {
				require.Contains(t, stderr, w)
			}
		})
	}
}

func configurationSchema(t *testing.T) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(ct.ChartDir(t), "values.schema.json"))
	require.NoError(t, err)
	var schema map[string]any
	require.NoError(t, json.Unmarshal(raw, &schema))
	conf := ct.Path(t, schema, "properties", "configuration").(map[string]any)
	require.Equal(t, false, conf["additionalProperties"], "a misspelt key must be refused")
	return conf["properties"].(map[string]any)
}

// TestKuredKeysAreKuredFlags: every configuration key the schema accepts is a
// kured flag of pkg/kured's table (by kured's chart's name for it), and its
// description says what the table says: the chart values the flag maps to, or,
// for a flag without an equivalent, that the key is ignored or refused, and
// where to read why.
func TestKuredKeysAreKuredFlags(t *testing.T) {
	flags := kuredFlagsByKey()
	props := configurationSchema(t)
	require.Greater(t, len(props), 30)
	for key, p := range props {
		desc, _ := p.(map[string]any)["description"].(string)
		require.NotEmpty(t, desc, "configuration.%s", key)
		if _, ok := notAFlag[key]; ok {
			_, isFlag := flags[key]
			require.False(t, isFlag, "configuration.%s is a kured flag after all", key)
			continue
		}
		f, ok := flags[key]
		require.True(t, ok, "configuration.%s is no flag of kured.Flags()", key)
		require.True(t, strings.HasPrefix(desc, "--"+f.Name), "configuration.%s: %q does not name --%s first", key, desc, f.Name)
		if len(f.Paths) == 0 {
			require.Regexp(t, `Accepted and ignored|Refused when set`, desc, "configuration.%s has no equivalent (%s)", key, f.NoEquivalent)
			require.Contains(t, desc, "docs/migrating-from-kured.md", key)
			continue
		}
		for _, p := range f.Paths {
			if p == "agent.extraEnv" {
				continue // pkg/kured's place for a URL kured reads from a Secret, which configuration cannot hold
			}
			require.Contains(t, desc, p, "configuration.%s maps to %s", key, p)
		}
	}
	// The check can fail: a key pkg/kured's table does not know.
	_, ok := flags["rebootDay"]
	require.False(t, ok)
}

// FuzzKuredWindowMatchesTheMigration: for any start and end time, the chart
// refuses the window exactly when kured refuses it or pkg/kured cannot carry it
// (equal ends), and otherwise renders the times pkg/kured converts it to. Each
// input runs helm up to three times, so the seeds run with go test and fuzzing
// is slow.
func FuzzKuredWindowMatchesTheMigration(f *testing.F) {
	for _, seed := range [][2]string{
		{"0:00", "23:59:59"}, {"22:00", "5:59:59"}, {"03pm", "11:30pm"}, {"3pm", "12am"}, {"12pm", "00am"},
		{"7", "19"}, {"23:59:30", ""}, {"", "0:00:01"}, {"1:00:00.5", "2:59:59,9"}, {"10:00", "09:59:30"},
		{"3:04pm", "5"}, {"24:00", "1"}, {"1:60", "2"}, {"13pm", "1"}, {"10:00:60", "1"}, {"1:2", "3"},
		{"9PM", "1"}, {" 1", "2"}, {"+1", "2"}, {"01:00", "1:00"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, start, end string) {
		// Values files are UTF-8: pkg/kured must read the string helm does.
		start, end = strings.ToValidUTF8(start, "?"), strings.ToValidUTF8(end, "?")
		require.True(t, utf8.ValidString(start) && utf8.ValidString(end))
		conf := map[string]any{"startTime": start, "endTime": end}
		migrated, err := kured.Migrate(kuredInput(t, conf))
		var window any
		if err == nil {
			window = migrated.Values["agent"].(map[string]any)["window"]
		}
		// kured refuses the time, or the window is carried by neither end.
		refused := err != nil || (kuredSet(start) || kuredSet(end)) && window == nil
		_, stderr, renderErr := ct.Run(t, ct.TemplateArgs(t, "--show-only", "templates/daemonset.yaml",
			"-f", writeValues(t, map[string]any{"configuration": conf}))...)
		if refused {
			require.Error(t, renderErr, "kured refuses %q to %q (%v), the chart took it", start, end, err)
			require.Regexp(t, `configuration[./](startTime|endTime)`, stderr)
			return
		}
		require.NoError(t, renderErr, "kured takes %q to %q, the chart refused: %s", start, end, stderr)
		want := migratedFlags(t, conf).Agent
		got := configurationFlags(t, conf).Agent
		require.Equal(t, want["start-time"], got["start-time"], "%q to %q", start, end)
		require.Equal(t, want["end-time"], got["end-time"], "%q to %q", start, end)
	})
}
