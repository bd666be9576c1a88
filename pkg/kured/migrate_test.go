package kured

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// nodeIDEnv is how every kured manifest and the kured chart pass the node.
var nodeIDEnv = corev1.EnvVar{Name: "KURED_NODE_ID", ValueFrom: &corev1.EnvVarSource{
	FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}

// sentinelMount is kured's manifests' and chart's: the host's /var/run at /sentinel.
func sentinelMount() ([]corev1.VolumeMount, []corev1.Volume) {
	return []corev1.VolumeMount{{Name: "sentinel", MountPath: "/sentinel", ReadOnly: true}},
		[]corev1.Volume{{Name: "sentinel", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/run"}}}}
}

// slackURL is a shoutrrr Slack URL with tokens of the form Slack's webhooks
// have, which the agent's shoutrrr checks (slack://a/b/c it refuses).
const slackURL = "slack://T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"

func kuredInput(args ...string) Input {
	mounts, volumes := sentinelMount()
	return Input{Command: []string{"/usr/bin/kured"}, Args: args, Env: []corev1.EnvVar{nodeIDEnv},
		VolumeMounts: mounts, Volumes: volumes, DaemonSetName: "kured", DaemonSetNamespace: "kube-system"}
}

// value walks a dotted path in the values; ok is false when a step is missing.
func value(values map[string]any, path string) (any, bool) {
	var v any = values
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, false
		}
		if v, ok = m[k]; !ok {
			return nil, false
		}
	}
	return v, true
}

// requireNote fails unless some note about flag contains every part.
func requireNote(t *testing.T, r Result, flag string, parts ...string) {
	t.Helper()
	for _, n := range r.Notes {
		if n.Flag != flag {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(n.Text, p)
		}
		if all {
			return
		}
	}
	require.Failf(t, "no such note", "no note on %q containing %q in:\n%s", flag, parts, notesText(r))
}

func notesText(r Result) string {
	var b strings.Builder
	for _, n := range r.Notes {
		b.WriteString(n.String() + "\n")
	}
	return b.String()
}

func TestMigrate(t *testing.T) {
	tests := []struct {
		name    string
		in      Input
		values  map[string]any      // path → value; nil value: the path must be absent
		notes   map[string][]string // flag → parts of one note
		noNotes []string            // flags that must have no note
	}{{
		name: "kured's own manifest",
		in:   kuredInput("--reboot-sentinel=/sentinel/reboot-required", "--period=1h"),
		values: map[string]any{
			"agent.period":           "1h",
			"agent.sentinel.file":    "/host/run/reboot-required",
			"agent.patch.mode":       "off",
			"agent.extraArgs":        nil,
			"agent.sentinel.command": nil,
			"agent.blockers.kured":   map[string]any{"daemonSet": "kube-system/kured", "lockAnnotation": "weave.works/kured-node-lock"},
		},
		notes: map[string][]string{
			"--drain-timeout": {"no time limit", "agent.drain.timeout"},
			"":                {"weave.works/kured-node-lock on DaemonSet kube-system/kured", "while kured holds it no nodepatch cycle starts"},
		},
		noNotes: []string{"--node-id", "--reboot-sentinel", "--period"},
	}, {
		name: "the kured chart's arguments, every mapped kind",
		in: kuredInput("--ds-name=kured", "--ds-namespace=kube-system",
			"--reboot-days=mon,tue", "--reboot-days=fri", "--start-time=22:00", "--end-time=5:59:59", "--time-zone=Europe/Berlin",
			"--lock-ttl=1h", "--concurrency=3", "--drain-timeout=15m", "--drain-grace-period=60", "--drain-pod-selector=app!=db",
			"--force-reboot", "--log-format=json", "--metrics-port=9100", "--annotate-nodes=true",
			"--prometheus-url=http://prometheus.monitoring:9090", "--alert-filter-regexp=^(Watchdog|RebootRequired)$",
			"--alert-firing-only=true", "--blocking-pod-selector=app=batch", "--blocking-pod-selector=runtime=long,cost=expensive",
			"--notify-url="+slackURL, "--message-template-drain=Draining %s now",
			"--pre-reboot-node-labels=kured=rebooting", "--post-reboot-node-labels=kured=done",
			"--drain-delay=30s", "--reboot-delay=1m", "--lock-release-delay=5m"),
		values: map[string]any{
			"agent.window.days":              []string{"mon", "tue", "fri"},
			"agent.window.startTime":         "22:00",
			"agent.window.endTime":           "06:00",
			"agent.window.timeZone":          "Europe/Berlin",
			"agent.lockTTL":                  "1h",
			"agent.concurrency":              3,
			"controller.maxUnavailable":      3,
			"agent.drain.timeout":            "15m",
			"agent.drain.gracePeriod":        60,
			"agent.drain.podSelector":        "app!=db",
			"agent.reboot.afterDrainTimeout": true,
			"agent.logFormat":                "json",
			"metrics.port":                   9100,
			"agent.reboot.delay":             "1m",
			"agent.drain.delay":              "30s",
			"agent.health.soak":              "5m",
			"agent.health.timeout":           nil,
			"agent.nodeLabels.preReboot":     []string{"kured=rebooting"},
			"agent.nodeLabels.postReboot":    []string{"kured=done"},
			"agent.blockers.podSelectors":    []string{"app=batch", "runtime=long,cost=expensive"},
			"agent.blockers.prometheus": map[string]any{
				"url":               "http://prometheus.monitoring:9090",
				"alertFilterRegexp": "^(Watchdog|RebootRequired)$",
				"alertFiringOnly":   true,
			},
			"agent.notify": map[string]any{
				"urls":             []string{slackURL},
				"messageTemplates": map[string]any{"drain": "Draining %s now"},
			},
			"agent.extraArgs": nil,
		},
		notes: map[string][]string{
			"--lock-ttl":       {"never renews"},
			"--concurrency":    {"controller.maxUnavailable"},
			"--force-reboot":   {"timed out"},
			"--annotate-nodes": {"no equivalent", "nodepatch.io/phase"},
		},
		noNotes: []string{"--drain-timeout", "--end-time"},
	}, {
		name: "KURED_ variables win over arguments for scalars and append to lists, as kured's LoadFromEnv sets them after the arguments",
		in: func() Input {
			in := kuredInput("--period=1h", "--reboot-days=mon", "--blocking-pod-selector=app=a", "--log-format=json")
			in.Env = append(in.Env,
				corev1.EnvVar{Name: "KURED_PERIOD", Value: "2h"},
				corev1.EnvVar{Name: "KURED_REBOOT_DAYS", Value: "sun,sa"},
				corev1.EnvVar{Name: "KURED_BLOCKING_POD_SELECTOR", Value: "app=b"},
				corev1.EnvVar{Name: "KURED_LOCK_TTL", Value: "45m"},
				corev1.EnvVar{Name: "KURED_FORCE_REBOOT", Value: "1"},
				corev1.EnvVar{Name: "KURED_CONCURRENCY", Value: "2"},
				corev1.EnvVar{Name: "KURED_CONCURRENCY", Value: "4"}, // the last definition is the one the container gets
			)
			return in
		}(),
		values: map[string]any{
			"agent.period":                   "2h",
			"agent.window.days":              []string{"mon", "sat", "sun"},
			"agent.lockTTL":                  "45m",
			"agent.reboot.afterDrainTimeout": true,
			"agent.concurrency":              4,
			"agent.logFormat":                "json",
			"agent.blockers.podSelectors":    []string{"app=a"},
			"agent.extraArgs":                nil,
		},
		notes: map[string][]string{
			"KURED_BLOCKING_POD_SELECTOR": {"Unsupported flag type"},
			"KURED_PERIOD":                {"overrides --period=1h", `"2h"`, "older viper-based main let the argument win"},
			"KURED_REBOOT_DAYS":           {"appended to --reboot-days"},
		},
	}, {
		name: "values from Secrets: the notification URL stays in its Secret, the others are noted",
		in: func() Input {
			in := kuredInput()
			secret := func(key string) *corev1.EnvVarSource {
				return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: "kured"}, Key: key}}
			}
			in.Env = append(in.Env,
				corev1.EnvVar{Name: "KURED_NOTIFY_URL", ValueFrom: secret("notify")},
				corev1.EnvVar{Name: "KURED_PROMETHEUS_URL", ValueFrom: secret("prom")},
				corev1.EnvVar{Name: "KURED_LOCK_TTL", ValueFrom: secret("ttl")},
				corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://proxy:3128"},
			)
			return in
		}(),
		values: map[string]any{
			"agent.extraEnv": []any{
				map[string]any{"name": "NODEPATCH_NOTIFY_URL", "valueFrom": map[string]any{"secretKeyRef": map[string]any{"name": "kured", "key": "notify"}}},
			},
			"agent.lockTTL":             nil,
			"agent.blockers.prometheus": nil,
			"agent.notify":              nil,
			"agent.extraArgs":           nil,
		},
		notes: map[string][]string{
			"--notify-url":     {"KURED_NOTIFY_URL", "Secret kured, key notify", "NODEPATCH_NOTIFY_URL"},
			"--prometheus-url": {"KURED_PROMETHEUS_URL", "set agent.blockers.prometheus.url yourself"},
			"--lock-ttl":       {"KURED_LOCK_TTL", "Secret kured, key ttl", "set agent.lockTTL yourself"},
			"HTTPS_PROXY":      {"not carried", "agent.extraEnv"},
		},
	}, {
		name: "pflag's other spellings: --x y, a bare boolean, a boolean that does not take the next word",
		in:   kuredInput("--period", "2h", "--force-reboot", "false", "--drain-timeout", "20m", "--", "--period=9h"),
		values: map[string]any{
			"agent.period":                   "2h",
			"agent.reboot.afterDrainTimeout": true,
			"agent.drain.timeout":            "20m",
		},
		notes: map[string][]string{"": {`positional argument "false"`}},
	}, {
		name:   "reboot through systemd's signal",
		in:     kuredInput("--reboot-method=signal"),
		values: map[string]any{"agent.reboot.method": "systemd", "agent.reboot.command": nil},
		notes:  map[string][]string{"--reboot-method": {"SIGRTMIN+5", "reboot.target"}},
	}, {
		name:   "another signal has no equivalent",
		in:     kuredInput("--reboot-method=signal", "--reboot-signal=40"),
		values: map[string]any{"agent.reboot.method": nil},
		notes:  map[string][]string{"--reboot-signal": {"signal 40"}},
	}, {
		name:   "a reboot command of one's own",
		in:     kuredInput("--reboot-command=/usr/sbin/shutdown -r now"),
		values: map[string]any{"agent.reboot.method": "command", "agent.reboot.command": "/usr/sbin/shutdown -r now"},
		notes:  map[string][]string{"--reboot-command": {"/bin/sh -c"}},
	}, {
		name:   "kured's default reboot command spelt out is nodepatch's systemd method",
		in:     kuredInput("--reboot-method=command", "--reboot-command=systemctl  reboot"),
		values: map[string]any{"agent.reboot.method": "systemd", "agent.reboot.command": nil},
	}, {
		name:   "a sentinel command replaces the file in kured, and joins it in nodepatch",
		in:     kuredInput("--reboot-sentinel=/sentinel/other", "--reboot-sentinel-command=sh -c \"test -f /var/run/reboot-required\""),
		values: map[string]any{"agent.sentinel.command": "sh -c \"test -f /var/run/reboot-required\"", "agent.sentinel.file": nil},
		notes: map[string][]string{
			"--reboot-sentinel-command": {"/bin/sh -c", "either asks"},
			"--reboot-sentinel":         {"ignores it"},
		},
	}, {
		name: "a sentinel outside the host's /run is checked with a command",
		in: func() Input {
			in := kuredInput("--reboot-sentinel=/host-etc/it's-time")
			in.VolumeMounts = append(in.VolumeMounts, corev1.VolumeMount{Name: "etc", MountPath: "/host-etc"})
			in.Volumes = append(in.Volumes, corev1.Volume{Name: "etc", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/etc"}}})
			return in
		}(),
		values: map[string]any{"agent.sentinel.command": `test -e '/etc/it'\''s-time'`, "agent.sentinel.file": nil},
		notes:  map[string][]string{"--reboot-sentinel": {"outside /run"}},
	}, {
		name: "a sentinel elsewhere in /run, through a subPath mount",
		in: func() Input {
			in := kuredInput("--reboot-sentinel=/s/flag")
			in.VolumeMounts[0].MountPath, in.VolumeMounts[0].SubPath = "/s", "myapp"
			return in
		}(),
		values: map[string]any{"agent.sentinel.file": "/host/run/myapp/flag"},
	}, {
		name: "a sentinel in a volume that is not the host's",
		in: func() Input {
			in := kuredInput("--reboot-sentinel=/scratch/reboot-required")
			in.VolumeMounts = append(in.VolumeMounts, corev1.VolumeMount{Name: "scratch", MountPath: "/scratch"})
			in.Volumes = append(in.Volumes, corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
			return in
		}(),
		values: map[string]any{"agent.sentinel.file": nil, "agent.sentinel.command": nil},
		notes:  map[string][]string{"--reboot-sentinel": {"not a host folder"}},
	}, {
		name:   "an unmounted sentinel path is read as the host's",
		in:     kuredInput("--reboot-sentinel=/var/run/reboot-needed"),
		values: map[string]any{"agent.sentinel.file": "/host/run/reboot-needed"},
		notes:  map[string][]string{"--reboot-sentinel": {"mounts no host folder"}},
	}, {
		name:   "a TTL shorter than a drain and a reboot is raised to what nodepatch accepts",
		in:     kuredInput("--lock-ttl=10m", "--drain-timeout=30m"),
		values: map[string]any{"agent.lockTTL": "40m", "agent.drain.timeout": "30m"},
		notes:  map[string][]string{"--lock-ttl": {"carried as 40m"}},
	}, {
		name:   "the deprecated Slack hook becomes the notify URL kured derives",
		in:     kuredInput("--slack-hook-url=https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", "--slack-username=prod", "--slack-channel=ops"),
		values: map[string]any{"agent.notify.urls": []string{slackURL}, "agent.extraArgs": nil},
		notes: map[string][]string{
			"--slack-hook-url": {slackURL, "agent.notify.urls"},
			"--slack-username": {"no equivalent"},
			"--slack-channel":  {"no equivalent"},
		},
	}, {
		name: "notification URLs and templates the agent or the chart refuses are noted, not carried",
		in: kuredInput("--slack-hook-url=https://hooks.slack.com/services/T0/B0/XyZ",
			"--message-template-reboot=Rebooting %s (%d left)", "--message-template-uncordon=%s is back: 100%"),
		values: map[string]any{"agent.notify": nil, "agent.extraArgs": nil},
		notes: map[string][]string{
			"--slack-hook-url":            {"refuses", "slack", "not carried"},
			"--message-template-reboot":   {"refuses", "%d is not a placeholder", `stays "Rebooting node %s"`},
			"--message-template-uncordon": {"refuses", "lone %"},
		},
	}, {
		name:   "a URL whose scheme is not lower case",
		in:     kuredInput("--notify-url=Slack://T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
		values: map[string]any{"agent.notify": nil},
		notes:  map[string][]string{"--notify-url": {"lower-case scheme", "not carried"}},
	}, {
		name:    "kured strips one pair of quotes from the URL; an empty URL sends nothing",
		in:      kuredInput(`--notify-url='` + slackURL + `'`),
		values:  map[string]any{"agent.notify.urls": []string{slackURL}},
		noNotes: []string{"--notify-url"},
	}, {
		name:    "an empty URL sends nothing",
		in:      kuredInput("--notify-url="),
		values:  map[string]any{"agent.notify": nil, "agent.extraEnv": nil},
		noNotes: []string{"--notify-url"},
	}, {
		name: "a message template from a ConfigMap is noted: the chart's flag would win over a variable",
		in: func() Input {
			in := kuredInput("--message-template-drain=Node %s drains")
			in.Env = append(in.Env, corev1.EnvVar{Name: "KURED_MESSAGE_TEMPLATE_REBOOT", ValueFrom: &corev1.EnvVarSource{
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "kured"}, Key: "reboot"}}})
			return in
		}(),
		values: map[string]any{"agent.notify.messageTemplates": map[string]any{"drain": "Node %s drains"}, "agent.extraEnv": nil},
		notes:  map[string][]string{"--message-template-reboot": {"ConfigMap kured, key reboot", "set agent.notify.messageTemplates.reboot yourself"}},
	}, {
		name:   "times of day in kured's other layouts",
		in:     kuredInput("--start-time=9:30:15", "--end-time=3pm"),
		values: map[string]any{"agent.window.startTime": "09:31", "agent.window.endTime": "15:00"},
		notes:  map[string][]string{"--start-time": {"09:31"}},
	}, {
		name:   "kured's whole day ends at 24:00",
		in:     kuredInput("--start-time=0:00", "--end-time=23:59:59"),
		values: map[string]any{"agent.window.startTime": "00:00", "agent.window.endTime": "24:00"},
	}, {
		name:   "equal start and end have no nodepatch window",
		in:     kuredInput("--start-time=02:00", "--end-time=2:00"),
		values: map[string]any{"agent.window.startTime": nil, "agent.window.endTime": nil},
		notes:  map[string][]string{"--start-time": {"refuses"}},
	}, {
		name:   "numbers and names for days, in any case",
		in:     kuredInput("--reboot-days=0,6,Wednesday,TH"),
		values: map[string]any{"agent.window.days": []string{"wed", "thu", "sat", "sun"}},
	}, {
		name:   "no day at all",
		in:     kuredInput("--reboot-days="),
		values: map[string]any{"agent.window.days": nil},
		notes:  map[string][]string{"--reboot-days": {"never reboots"}},
	}, {
		name:   "flags this migration does not know, and words kured ignores",
		in:     kuredInput("--shiny-new-flag", "value", "--other=1", "stray"),
		values: map[string]any{"agent.extraArgs": nil},
		notes: map[string][]string{
			"--shiny-new-flag": {"value \"value\"", "not carried"},
			"--other":          {"not carried"},
			"":                 {"positional argument \"stray\""},
		},
	}, {
		name:   "kured's lock on another DaemonSet",
		in:     kuredInput("--ds-name=kured-lock", "--lock-annotation=example.com/lock"),
		values: map[string]any{"agent.blockers.kured": map[string]any{"daemonSet": "kube-system/kured-lock", "lockAnnotation": "example.com/lock"}},
		notes:  map[string][]string{"--ds-name": {"kube-system/kured-lock, not on this one (kube-system/kured)"}, "": {"example.com/lock on DaemonSet kube-system/kured-lock"}},
	}, {
		name:   "kured's lock where no lock can be",
		in:     kuredInput("--ds-namespace=Kube_System"),
		values: map[string]any{"agent.blockers.kured": nil},
		notes:  map[string][]string{"--ds-name": {`"Kube_System/kured" is no DaemonSet's namespace and name`}},
	}, {
		name: "flags at kured's defaults need nothing",
		in: kuredInput("--drain-delay=0", "--alert-firing-only=false", "--prometheus-url=", "--metrics-host=",
			"--message-template-reboot=Rebooting node %s", "--skip-wait-for-delete-timeout=0", "--debug=false"),
		values:  map[string]any{"agent.extraArgs": nil},
		noNotes: []string{"--drain-delay", "--metrics-host", "--skip-wait-for-delete-timeout", "--debug", "--message-template-reboot"},
	}, {
		name:   "flags with no equivalent",
		in:     kuredInput("--metrics-host=127.0.0.1", "--prefer-no-schedule-taint=kured", "--debug", "--kubeconfig=/k", "--annotate-nodes"),
		values: map[string]any{"agent.extraArgs": nil},
		notes: map[string][]string{
			"--metrics-host":             {"no equivalent"},
			"--prefer-no-schedule-taint": {"no equivalent", "NoSchedule"},
			"--debug":                    {"no equivalent"},
			"--kubeconfig":               {"no equivalent"},
			"--annotate-nodes":           {"no equivalent"},
		},
	}, {
		name:   "the drain's other settings",
		in:     kuredInput("--skip-wait-for-delete-timeout=30", "--drain-delay=-1s", "--reboot-delay=0"),
		values: map[string]any{"agent.drain.skipWaitForDeleteTimeout": 30, "agent.drain.delay": nil, "agent.reboot.delay": nil},
		notes:  map[string][]string{"--drain-delay": {"above 0"}},
	}, {
		name:   "a long lock release delay raises the health timeout above the soak",
		in:     kuredInput("--lock-release-delay=15m"),
		values: map[string]any{"agent.health.soak": "15m", "agent.health.timeout": "25m"},
		notes:  map[string][]string{"--lock-release-delay": {"raised to 25m"}},
	}, {
		name:   "alert flags without a Prometheus",
		in:     kuredInput("--alert-firing-only", "--alert-filter-regexp=x"),
		values: map[string]any{"agent.blockers": map[string]any{"kured": map[string]any{"daemonSet": "kube-system/kured", "lockAnnotation": "weave.works/kured-node-lock"}}},
		notes:  map[string][]string{"--alert-firing-only": {"only with --prometheus-url"}, "--alert-filter-regexp": {"only with --prometheus-url"}},
	}, {
		name:   "a Prometheus address nodepatch cannot take",
		in:     kuredInput("--prometheus-url=prometheus:9090", "--alert-firing-only"),
		values: map[string]any{"agent.blockers.prometheus": nil},
		notes:  map[string][]string{"--prometheus-url": {"not an http:// or https:// URL"}},
	}, {
		name: "labels and selectors nodepatch would refuse are left out",
		in: kuredInput("--pre-reboot-node-labels=good=yes,novalue,nodepatch.io/x=y,bad key=v", "--post-reboot-node-labels=good=no,good=no",
			"--blocking-pod-selector=", "--blocking-pod-selector=a in (b", "--blocking-pod-selector=app=x", "--blocking-pod-selector=app=x"),
		values: map[string]any{
			"agent.nodeLabels.preReboot":  []string{"good=yes"},
			"agent.nodeLabels.postReboot": []string{"good=no"},
			"agent.blockers.podSelectors": []string{"app=x"},
		},
		notes: map[string][]string{
			"--pre-reboot-node-labels": {`"novalue": not KEY=VALUE`},
			"--blocking-pod-selector":  {"an empty selector"},
		},
	}, {
		name: "values nodepatch bounds differently",
		in:   kuredInput("--concurrency=0", "--drain-grace-period=-5", "--drain-timeout=0", "--log-format=xml", "--period=0s", "--drain-pod-selector=a in (b"),
		values: map[string]any{"agent.concurrency": 1, "agent.drain.gracePeriod": -1, "agent.drain.timeout": nil, "agent.logFormat": "text",
			"agent.period": nil, "agent.drain.podSelector": nil},
		notes: map[string][]string{
			"--concurrency":        {"carried as 1"},
			"--drain-grace-period": {"carried as -1"},
			"--drain-timeout":      {"no time limit"},
			"--log-format":         {"falls back to text"},
			"--period":             {"never runs"},
			"--drain-pod-selector": {"not a label selector"},
		},
	}, {
		name: "the pods' scheduling is carried",
		in: func() Input {
			in := kuredInput()
			in.NodeSelector = map[string]string{"kubernetes.io/os": "linux", "pool": "workers"}
			in.Tolerations = []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}}
			in.PriorityClassName = "system-node-critical"
			return in
		}(),
		values: map[string]any{
			"nodeSelector":      map[string]string{"kubernetes.io/os": "linux", "pool": "workers"},
			"tolerations":       []any{map[string]any{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}},
			"priorityClassName": "system-node-critical",
			"affinity":          nil,
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Migrate(tc.in)
			require.NoError(t, err)
			for path, want := range tc.values {
				got, ok := value(r.Values, path)
				if want == nil {
					require.False(t, ok, "%s is set to %v", path, got)
					continue
				}
				require.True(t, ok, "%s is not set in %v", path, r.Values)
				require.Equal(t, want, got, path)
			}
			for flag, parts := range tc.notes {
				requireNote(t, r, flag, parts...)
			}
			for _, flag := range tc.noNotes {
				for _, n := range r.Notes {
					require.NotEqual(t, flag, n.Flag, "unexpected note: %s", n)
				}
			}
			_, err = r.YAML()
			require.NoError(t, err)
		})
	}
}

func TestMigrateRefusesWhatKuredRefuses(t *testing.T) {
	tests := []struct {
		name  string
		in    Input
		parts []string // in the error's text: the flag (or variable) and the value
	}{
		{"a bad duration", kuredInput("--period=abc"), []string{"--period", `"abc"`}},
		{"the next word taken as a value", kuredInput("--drain-timeout", "--weird"), []string{"--drain-timeout", `"--weird"`}},
		{"a missing value", kuredInput("--period"), []string{"--period", "needs a value"}},
		{"a bad integer", kuredInput("--concurrency=two"), []string{"--concurrency", `"two"`}},
		{"a bad boolean", kuredInput("--force-reboot=maybe"), []string{"--force-reboot", `"maybe"`}},
		{"a bad regexp", kuredInput("--alert-filter-regexp=("), []string{"--alert-filter-regexp", `"("`}},
		{"a bad day", kuredInput("--reboot-days=mon,funday"), []string{"--reboot-days", "funday"}},
		{"a day number out of range", kuredInput("--reboot-days=7"), []string{"--reboot-days", "out of range"}},
		{"a bad time", kuredInput("--start-time=noon"), []string{"--start-time", `"noon"`}},
		{"a bad zone", kuredInput("--time-zone=Mars/Olympus"), []string{"--time-zone", `"Mars/Olympus"`}},
		{"a reboot method kured does not know", kuredInput("--reboot-method=kexec"), []string{"--reboot-method", `"kexec"`}},
		{"a single-dash flag", kuredInput("-period=1h"), []string{"-period=1h", "single-dash"}},
		{"a bad variable", func() Input {
			in := kuredInput()
			in.Env = append(in.Env, corev1.EnvVar{Name: "KURED_CONCURRENCY", Value: "0x2"}) // LoadFromEnv uses Atoi
			return in
		}(), []string{"KURED_CONCURRENCY", `"0x2"`, "--concurrency"}},
		{"an empty boolean variable", func() Input {
			in := kuredInput()
			in.Env = append(in.Env, corev1.EnvVar{Name: "KURED_FORCE_REBOOT"})
			return in
		}(), []string{"KURED_FORCE_REBOOT", "--force-reboot"}},
		{"a container that does not run kured", Input{Command: []string{"/bin/sh", "-c", "kured --period=1h"}}, []string{"/bin/sh -c", "not kured"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Migrate(tc.in)
			require.Error(t, err)
			require.ErrorIs(t, err, ErrKuredConfig)
			var fe *FlagError
			require.True(t, errors.As(err, &fe))
			for _, p := range tc.parts {
				require.Contains(t, err.Error(), p)
			}
		})
	}
}

func TestArgumentsWithIntegerPrefixesAsPflagReadsThem(t *testing.T) {
	// pflag reads an int argument with base 0 (0x10 is 16); kured's LoadFromEnv
	// reads a variable in base 10 only (the variable case is an error above).
	r, err := Migrate(kuredInput("--concurrency=0x4"))
	require.NoError(t, err)
	got, _ := value(r.Values, "agent.concurrency")
	require.Equal(t, 4, got)
}

func TestFromDaemonSet(t *testing.T) {
	ds := func(containers ...corev1.Container) *appsv1.DaemonSet {
		return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "kured", Namespace: "kube-system"},
			Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: containers,
				NodeSelector: map[string]string{"kubernetes.io/os": "linux"}}}}}
	}
	in, err := FromDaemonSet(ds(corev1.Container{Name: "sidecar"}, corev1.Container{Name: "kured", Args: []string{"--period=1h"}}))
	require.NoError(t, err)
	require.Equal(t, []string{"--period=1h"}, in.Args)
	require.Equal(t, "kured", in.DaemonSetName)
	require.Equal(t, "kube-system", in.DaemonSetNamespace)
	require.Equal(t, map[string]string{"kubernetes.io/os": "linux"}, in.NodeSelector)

	in, err = FromDaemonSet(ds(corev1.Container{Name: "reboot-daemon", Args: []string{"--period=2h"}}))
	require.NoError(t, err)
	require.Equal(t, []string{"--period=2h"}, in.Args)

	_, err = FromDaemonSet(ds(corev1.Container{Name: "a"}, corev1.Container{Name: "b"}))
	require.ErrorIs(t, err, ErrNoKuredContainer)
	require.Contains(t, err.Error(), `"a" "b"`)
	require.Contains(t, err.Error(), "kube-system/kured")
}

func TestYAMLPutsTheNotesFirstAsComments(t *testing.T) {
	r, err := Migrate(kuredInput("--period=1h", "--notify-url="+slackURL, "--metrics-host=10.0.0.1"))
	require.NoError(t, err)
	out, err := r.YAML()
	require.NoError(t, err)
	text := string(out)

	header, body, ok := strings.Cut(text, "\n\n")
	require.True(t, ok, "a blank line between the comments and the values:\n%s", text)
	for _, line := range strings.Split(header, "\n") {
		require.True(t, strings.HasPrefix(line, "#"), "header line %q is not a comment", line)
	}
	require.Contains(t, header, "# - --metrics-host: \"10.0.0.1\" has no equivalent")
	require.NotContains(t, body, "#")

	var values map[string]any
	require.NoError(t, yaml.Unmarshal(out, &values), "the whole output is a values file")
	got, _ := value(values, "agent.period")
	require.Equal(t, "1h", got)
	got, _ = value(values, "agent.notify.urls")
	require.Equal(t, []any{slackURL}, got)
}
