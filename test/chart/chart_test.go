package chart_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// valueSets are the value combinations every test of rendering runs on: the
// defaults and the options that change what the chart renders.
var valueSets = map[string][]string{
	"defaults": nil,
	"tuned": {
		"--set", "agent.concurrency=3",
		"--set", "agent.window.days={sat,sun}",
		"--set", "agent.window.startTime=01:30",
		"--set", "agent.window.endTime=05:00",
		"--set", "agent.window.timeZone=Europe/Paris",
		"--set", "agent.patch.mode=all",
		"--set", "agent.patch.exclude={linux-image-amd64}",
		"--set", "agent.logFormat=json",
		"--set", "agent.dryRun=true",
		"--set", "priorityClassName=system-node-critical",
		"--set", "extraTolerations[0].operator=Exists",
	},
	"dnf-host": {
		"--set", "hostMounts.run.enabled=false",
		"--set", "agent.sentinel.command=dnf needs-restarting -r >/dev/null; test $? -eq 1",
		"--set", "agent.reboot.method=command",
		"--set", "agent.reboot.command=systemctl reboot",
	},
	"prometheus-operator": {
		"--api-versions", "monitoring.coreos.com/v1",
	},
	"pod-monitor": {
		"--set", "metrics.serviceMonitor.enabled=false",
		"--set", "metrics.podMonitor.enabled=true",
		"--set", "alerts.enabled=true",
	},
	"existing-service-account": {
		"--set", "serviceAccount.create=false",
		"--set", "serviceAccount.name=patcher",
		"--set", "rbac.create=false",
		"--set", "admissionPolicy.enabled=false",
		"--set", "image.digest=sha256:" + strings.Repeat("ab", 32),
	},
}

func TestLint(t *testing.T) {
	for name, set := range valueSets {
		t.Run(name, func(t *testing.T) {
			var args []string
			for i := 0; i < len(set); i += 2 {
				if set[i] == "--set" {
					args = append(args, set[i], set[i+1])
				}
			}
			args = append([]string{"lint", "--strict", ct.ChartDir(t), "--namespace", ct.Namespace,
				"--kube-version", ct.KubeVersion}, args...)
			out, stderr, err := ct.Run(t, args...)
			require.NoError(t, err, "helm lint:\n%s\n%s", out, stderr)
			require.Contains(t, out, "1 chart(s) linted, 0 chart(s) failed")
		})
	}
}

func TestRenderedObjects(t *testing.T) {
	cases := map[string][]string{
		"defaults": {"Deployment", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
		"tuned": {"Deployment", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
		"dnf-host": {"Deployment", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
		"prometheus-operator": {"Deployment", "PodDisruptionBudget", "PodMonitor", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "ServiceMonitor", "PrometheusRule", "ValidatingAdmissionPolicy",
			"ValidatingAdmissionPolicyBinding"},
		"pod-monitor": {"Deployment", "PodDisruptionBudget", "PodMonitor", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "PodMonitor", "PrometheusRule", "ValidatingAdmissionPolicy",
			"ValidatingAdmissionPolicyBinding"},
		"existing-service-account": {"Service", "DaemonSet", "Deployment", "PodDisruptionBudget"},
	}
	require.Len(t, cases, len(valueSets), "every value set needs its expected objects")
	for name, set := range valueSets {
		t.Run(name, func(t *testing.T) {
			var kinds []string
			for _, o := range ct.Objects(t, ct.Template(t, set...)) {
				kinds = append(kinds, o.Kind())
			}
			want := cases[name]
			slices.Sort(kinds)
			slices.Sort(want)
			require.Equal(t, want, kinds)
		})
	}
}

// agentFlags are the flags of `nodepatch agent` that the chart sets, each from one value.
var agentFlags = []string{
	"lock-name", "concurrency", "period", "lock-ttl", "sentinel-file", "sentinel-command",
	"boot-id-file", "reboot-method", "reboot-command", "reboot-timeout", "drain-timeout",
	"drain-grace-period", "drain-pod-selector", "drain-retry-backoff", "reboot-after-drain-timeout",
	"reboot-days", "start-time", "end-time", "time-zone", "metrics-address", "log-format",
	"dry-run", "host-root", "host-exec", "dbus-address", "patch", "patch-interval",
	"patch-timeout", "patch-exclude", "patch-under-lock", "output-dir", "min-reboot-interval",
	"max-repeated-reboots", "admission",
}

// agentArgs returns the agent container's flags as name → value, failing on a
// flag given twice.
func agentArgs(t *testing.T, objs []ct.Object) map[string]string {
	t.Helper()
	c := agentContainer(t, objs)
	require.Equal(t, []any{"/nodepatch"}, c["command"])
	args := c["args"].([]any)
	require.Equal(t, "agent", args[0])
	flags := map[string]string{}
	for _, a := range args[1:] {
		s := a.(string)
		require.True(t, strings.HasPrefix(s, "--"), "argument %q is not a flag", s)
		name, value, ok := strings.Cut(strings.TrimPrefix(s, "--"), "=")
		require.True(t, ok, "flag %q has no =value", s)
		_, dup := flags[name]
		require.False(t, dup, "flag --%s given twice", name)
		flags[name] = value
	}
	return flags
}

func agentContainer(t *testing.T, objs []ct.Object) map[string]any {
	t.Helper()
	ds := ct.Find(t, objs, "DaemonSet")
	containers := ct.Path(t, map[string]any(ds), "spec", "template", "spec", "containers").([]any)
	require.Len(t, containers, 1)
	return containers[0].(map[string]any)
}

func TestEveryAgentFlagComesFromAValue(t *testing.T) {
	flags := agentArgs(t, ct.Objects(t, ct.Template(t)))
	var names []string
	for n := range flags {
		names = append(names, n)
	}
	require.ElementsMatch(t, agentFlags, names)
	require.Equal(t, map[string]string{
		"lock-name": "nodepatch-lock", "concurrency": "1", "period": "1m", "lock-ttl": "0s",
		"sentinel-file": "/host/run/reboot-required", "sentinel-command": "",
		"boot-id-file": "/proc/sys/kernel/random/boot_id", "reboot-method": "systemd",
		"reboot-command": "", "reboot-timeout": "10m", "min-reboot-interval": "1h", "max-repeated-reboots": "3",
		"admission":          "controller",
		"drain-timeout":      "10m",
		"drain-grace-period": "-1", "drain-pod-selector": "", "drain-retry-backoff": "1m",
		"reboot-after-drain-timeout": "false", "reboot-days": "mon,tue,wed,thu,fri,sat,sun",
		"start-time": "00:00", "end-time": "24:00", "time-zone": "UTC", "metrics-address": ":8080",
		"log-format": "text", "dry-run": "false", "host-root": "/", "host-exec": "systemd",
		"dbus-address": "unix:path=/run/dbus/system_bus_socket", "patch": "security",
		"patch-interval": "24h", "patch-timeout": "30m",
		"patch-exclude":    "kubelet,kubeadm,kubectl,kubernetes-cni,cri-tools,containerd,containerd.io,cri-o,docker-ce,docker-ce-cli,docker.io,moby-engine,runc",
		"patch-under-lock": "false",
		"output-dir":       "/var/lib/nodepatch",
	}, flags)
}

func TestValuesReachTheirFlags(t *testing.T) {
	set := []string{
		"--set", "agent.lockName=np", "--set", "agent.concurrency=4", "--set", "agent.period=30s",
		"--set", "agent.lockTTL=2h", "--set", "agent.bootIdFile=/proc/x",
		"--set", "hostMounts.run.mountPath=/hr", "--set", "agent.sentinel.file=/hr/needs-reboot",
		"--set", "agent.sentinel.command=test -e /run/x",
		"--set", "agent.reboot.method=command", "--set", "agent.reboot.command=shutdown -r now",
		"--set", "agent.reboot.timeout=20m", "--set", "agent.reboot.afterDrainTimeout=true",
		"--set", "agent.reboot.minInterval=3h", "--set", "agent.reboot.maxRepeated=5",
		"--set", "agent.window.days={mon,fri}", "--set", "agent.window.startTime=22:00",
		"--set", "agent.window.endTime=23:59", "--set", "agent.window.timeZone=America/New_York",
		"--set", "agent.drain.timeout=5m", "--set", "agent.drain.gracePeriod=30",
		"--set", "agent.drain.podSelector=app!=db", "--set", "agent.drain.retryBackoff=2m",
		"--set", "agent.patch.mode=off", "--set", "agent.patch.interval=12h",
		"--set", "agent.patch.timeout=1h", "--set", "agent.patch.exclude={a,b}",
		"--set", "agent.patch.underLock=true", "--set", "agent.hostRoot=/host",
		"--set", "agent.hostExec=direct", "--set", "agent.dbusAddress=unix:path=/x/bus",
		"--set", "metrics.port=9090", "--set", "agent.logFormat=json", "--set", "agent.dryRun=true",
		"--set", "controller.enabled=false",
		"--set", "agent.extraArgs={--kubeconfig=/etc/k}", "--set", "hostMounts.state.hostPath=/srv/np",
	}
	objs := ct.Objects(t, ct.Template(t, set...))
	require.Equal(t, map[string]string{
		"lock-name": "np", "concurrency": "4", "period": "30s", "lock-ttl": "2h",
		"sentinel-file": "/hr/needs-reboot", "sentinel-command": "test -e /run/x",
		"boot-id-file": "/proc/x", "reboot-method": "command", "reboot-command": "shutdown -r now",
		"reboot-timeout": "20m", "min-reboot-interval": "3h", "max-repeated-reboots": "5", "admission": "none",
		"drain-timeout": "5m", "drain-grace-period": "30",
		"drain-pod-selector": "app!=db", "drain-retry-backoff": "2m",
		"reboot-after-drain-timeout": "true", "reboot-days": "mon,fri", "start-time": "22:00",
		"end-time": "23:59", "time-zone": "America/New_York", "metrics-address": ":9090",
		"log-format": "json", "dry-run": "true", "host-root": "/host", "host-exec": "direct",
		"dbus-address": "unix:path=/x/bus", "patch": "off", "patch-interval": "12h",
		"patch-timeout": "1h", "patch-exclude": "a,b", "patch-under-lock": "true",
		"kubeconfig": "/etc/k", "output-dir": "/srv/np",
	}, agentArgs(t, objs))
	port := ct.Path(t, agentContainer(t, objs), "ports", 0, "containerPort")
	require.EqualValues(t, 9090, port)
}

func TestDownwardAPI(t *testing.T) {
	env := agentContainer(t, ct.Objects(t, ct.Template(t)))["env"].([]any)
	require.Equal(t, []any{
		map[string]any{"name": "NODE_NAME", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "spec.nodeName"}}},
		map[string]any{"name": "POD_NAMESPACE", "valueFrom": map[string]any{"fieldRef": map[string]any{"fieldPath": "metadata.namespace"}}},
		map[string]any{"name": "NODEPATCH_CONFIG_GENERATION", "valueFrom": map[string]any{"fieldRef": map[string]any{
			"fieldPath": "metadata.labels['pod-template-generation']"}}},
	}, env)
}

func TestPodSecurity(t *testing.T) {
	for name, set := range valueSets {
		t.Run(name, func(t *testing.T) {
			objs := ct.Objects(t, ct.Template(t, set...))
			pod := ct.Path(t, map[string]any(ct.Find(t, objs, "DaemonSet")), "spec", "template", "spec").(map[string]any)
			for _, host := range []string{"hostPID", "hostIPC", "hostNetwork"} {
				require.Equal(t, false, pod[host], host)
			}
			require.NotContains(t, pod, "hostUsers", "uid 0 must be the host's uid 0 for the system bus")
			require.Equal(t, "RuntimeDefault", ct.Path(t, pod, "securityContext", "seccompProfile", "type"))

			c := agentContainer(t, objs)
			sc := c["securityContext"].(map[string]any)
			require.Equal(t, false, sc["privileged"])
			require.Equal(t, false, sc["allowPrivilegeEscalation"])
			require.Equal(t, true, sc["readOnlyRootFilesystem"])
			require.EqualValues(t, 0, sc["runAsUser"])
			require.Equal(t, false, sc["runAsNonRoot"])
			require.Equal(t, map[string]any{"drop": []any{"ALL"}}, sc["capabilities"], "no capability may be added")
			require.Equal(t, "RuntimeDefault", ct.Path(t, sc, "seccompProfile", "type"))
			require.NotContains(t, sc, "procMount")

			requireHostMounts(t, pod, c, set)
		})
	}
}

// requireHostMounts checks that the only host paths are the D-Bus folder and /run
// (both read-only) and the state folder.
func requireHostMounts(t *testing.T, pod, c map[string]any, set []string) {
	t.Helper()
	hostPaths := map[string]string{}
	for _, v := range pod["volumes"].([]any) {
		v := v.(map[string]any)
		if hp, ok := v["hostPath"].(map[string]any); ok {
			hostPaths[v["name"].(string)] = hp["path"].(string)
		}
	}
	want := map[string]string{"dbus": "/run/dbus", "host-run": "/run", "state": "/var/lib/nodepatch"}
	if slices.Contains(set, "hostMounts.run.enabled=false") {
		delete(want, "host-run")
	}
	require.Equal(t, want, hostPaths)
	for _, m := range c["volumeMounts"].([]any) {
		m := m.(map[string]any)
		switch m["name"] {
		case "dbus", "host-run":
			require.Equal(t, true, m["readOnly"], m["name"])
			require.Equal(t, "IfPossible", m["recursiveReadOnly"], m["name"])
			require.Equal(t, "None", m["mountPropagation"], m["name"])
		case "state", "tmp":
			require.NotContains(t, m, "mountPropagation")
		default:
			require.Fail(t, "unexpected volume mount", "%v", m)
		}
	}
}

func TestTolerations(t *testing.T) {
	ds := ct.Find(t, ct.Objects(t, ct.Template(t, valueSets["tuned"]...)), "DaemonSet")
	tol := ct.Path(t, map[string]any(ds), "spec", "template", "spec", "tolerations")
	require.Equal(t, []any{
		map[string]any{"key": "nodepatch.io/rebooting", "operator": "Exists", "effect": "NoSchedule"},
		map[string]any{"key": "node-role.kubernetes.io/control-plane", "operator": "Exists", "effect": "NoSchedule"},
		map[string]any{"operator": "Exists"},
	}, tol)
	require.Equal(t, "system-node-critical", ct.Path(t, map[string]any(ds), "spec", "template", "spec", "priorityClassName"))
	require.Equal(t, map[string]any{"type": "RollingUpdate", "rollingUpdate": map[string]any{"maxUnavailable": float64(1), "maxSurge": float64(0)}},
		ct.Path(t, map[string]any(ds), "spec", "updateStrategy"))
}

func TestRBAC(t *testing.T) {
	objs := ct.Objects(t, ct.Template(t))
	rule := func(groups, resources, verbs []any) map[string]any {
		return map[string]any{"apiGroups": groups, "resources": resources, "verbs": verbs}
	}
	require.Equal(t, []any{
		rule([]any{""}, []any{"nodes"}, []any{"get", "list", "watch", "patch", "update"}),
		rule([]any{""}, []any{"pods"}, []any{"get", "list"}),
		rule([]any{""}, []any{"pods/eviction"}, []any{"create"}),
		rule([]any{"apps"}, []any{"daemonsets"}, []any{"get"}),
		rule([]any{""}, []any{"events"}, []any{"create", "patch"}),
		rule([]any{"events.k8s.io"}, []any{"events"}, []any{"create", "patch"}),
	}, ct.FindNamed(t, objs, "ClusterRole", "nodepatch")["rules"])
	require.Equal(t, []any{
		rule([]any{"coordination.k8s.io"}, []any{"leases"}, []any{"get", "list", "watch", "create", "update", "patch"}),
	}, ct.FindNamed(t, objs, "Role", "nodepatch")["rules"])
	subject := []any{map[string]any{"kind": "ServiceAccount", "name": "nodepatch", "namespace": "nodepatch"}}
	require.Equal(t, subject, ct.FindNamed(t, objs, "ClusterRoleBinding", "nodepatch")["subjects"])
	require.Equal(t, subject, ct.FindNamed(t, objs, "RoleBinding", "nodepatch")["subjects"])
	require.Equal(t, "nodepatch", ct.FindNamed(t, objs, "Role", "nodepatch").Name())
	require.Equal(t, "nodepatch", ct.Path(t, map[string]any(ct.FindNamed(t, objs, "Role", "nodepatch")), "metadata", "namespace"))
}

func TestAdmissionPolicyMatchesOnlyTheAgent(t *testing.T) {
	objs := ct.Objects(t, ct.Template(t, "--set", "serviceAccount.name=np-agent"))
	policy := ct.Find(t, objs, "ValidatingAdmissionPolicy")
	require.Equal(t, []any{map[string]any{
		"name":       "nodepatch-agent",
		"expression": "request.userInfo.username == 'system:serviceaccount:nodepatch:np-agent'",
	}}, ct.Path(t, map[string]any(policy), "spec", "matchConditions"))
	require.Equal(t, "Fail", ct.Path(t, map[string]any(policy), "spec", "failurePolicy"))
	binding := ct.Find(t, objs, "ValidatingAdmissionPolicyBinding")
	require.Equal(t, policy.Name(), ct.Path(t, map[string]any(binding), "spec", "policyName"))
	require.Equal(t, []any{"Deny"}, ct.Path(t, map[string]any(binding), "spec", "validationActions"))
}

func TestMonitoringSwitches(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"auto without the API", nil, nil},
		// The controller's replicas are scraped by a PodMonitor of their own.
		{"auto with the API", []string{"--api-versions", "monitoring.coreos.com/v1"}, []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"}},
		{"forced without the API", []string{"--set", "metrics.serviceMonitor.enabled=true", "--set", "alerts.enabled=true"}, []string{"ServiceMonitor", "PodMonitor", "PrometheusRule"}},
		{"off with the API", []string{"--api-versions", "monitoring.coreos.com/v1", "--set", "metrics.serviceMonitor.enabled=false", "--set", "alerts.enabled=false"}, nil},
		{"pod monitor", []string{"--api-versions", "monitoring.coreos.com/v1", "--set", "metrics.serviceMonitor.enabled=false", "--set", "metrics.podMonitor.enabled=auto"}, []string{"PodMonitor", "PodMonitor", "PrometheusRule"}},
		{"no controller", []string{"--api-versions", "monitoring.coreos.com/v1", "--set", "controller.enabled=false"}, []string{"ServiceMonitor", "PrometheusRule"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, o := range ct.Objects(t, ct.Template(t, c.args...)) {
				if k := o.Kind(); k == "ServiceMonitor" || k == "PodMonitor" || k == "PrometheusRule" {
					got = append(got, k)
				}
			}
			require.ElementsMatch(t, c.want, got)
		})
	}
	sm := ct.Find(t, ct.Objects(t, ct.Template(t, "--set", "metrics.serviceMonitor.enabled=true")), "ServiceMonitor")
	require.Equal(t, "app.kubernetes.io/name", ct.Path(t, map[string]any(sm), "spec", "jobLabel"))
	require.Equal(t, "metrics", ct.Path(t, map[string]any(sm), "spec", "endpoints", 0, "port"))
}

// TestRenderRefusals covers the combinations the schema cannot express: the
// chart's own checks fail the render with a message naming the values.
func TestRenderRefusals(t *testing.T) {
	cases := []struct {
		name string
		set  []string
		want string
	}{
		{"sentinel outside the mount", []string{"agent.sentinel.file=/var/run/reboot-required"},
			`agent.sentinel.file "/var/run/reboot-required" is not inside hostMounts.run.mountPath "/host/run"`},
		{"no sentinel at all", []string{"hostMounts.run.enabled=false"},
			"agent.sentinel.command must be set when hostMounts.run.enabled is false"},
		{"reboot command missing", []string{"agent.reboot.method=command"},
			`agent.reboot.command must be set when agent.reboot.method is "command"`},
		{"two monitors", []string{"metrics.serviceMonitor.enabled=true", "metrics.podMonitor.enabled=true"},
			"metrics.serviceMonitor and metrics.podMonitor are both enabled"},
		{"service monitor without service", []string{"metrics.serviceMonitor.enabled=true", "metrics.service.enabled=false"},
			"metrics.serviceMonitor needs metrics.service.enabled"},
		{"existing service account without a name", []string{"serviceAccount.create=false"},
			"serviceAccount.name must name an existing ServiceAccount"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var args []string
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			_, stderr, err := ct.Run(t, ct.TemplateArgs(t, args...)...)
			require.Error(t, err)
			require.Contains(t, stderr, c.want)
		})
	}
}

// TestSchemaRejectsBadValues checks that values.schema.json refuses wrong types,
// unknown keys and malformed strings, and that helm's message names the value.
func TestSchemaRejectsBadValues(t *testing.T) {
	cases := []struct {
		name   string
		values string
		want   []string
	}{
		{"string for an integer", "agent:\n  concurrency: three\n",
			[]string{"/agent/concurrency", "got string, want integer"}},
		{"unknown top-level key", "replicas: 3\n",
			[]string{"additional properties 'replicas' not allowed"}},
		{"unknown nested key", "agent:\n  drain:\n    force: true\n",
			[]string{"/agent/drain", "additional properties 'force' not allowed"}},
		{"misspelt key", "agent:\n  concurency: 2\n",
			[]string{"/agent", "additional properties 'concurency' not allowed"}},
		{"bad enum", "agent:\n  patch:\n    mode: weekly\n",
			[]string{"at '/agent/patch/mode': value must be one of 'off', 'security', 'all'"}},
		{"bad duration", "agent:\n  period: 5 minutes\n",
			[]string{"/agent/period", "'5 minutes' does not match pattern"}},
		{"bad time", "agent:\n  window:\n    startTime: \"25:00\"\n",
			[]string{"/agent/window/startTime", "'25:00' does not match pattern"}},
		{"bad day", "agent:\n  window:\n    days: [monday]\n",
			[]string{"at '/agent/window/days/0': value must be one of 'mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'"}},
		{"zero concurrency", "agent:\n  concurrency: 0\n",
			[]string{"/agent/concurrency", "minimum: got 0, want 1"}},
		{"boolean as string", "agent:\n  dryRun: \"yes\"\n",
			[]string{"/agent/dryRun", "got string, want boolean"}},
		{"bad monitoring switch", "metrics:\n  serviceMonitor:\n    enabled: maybe\n",
			[]string{"at '/metrics/serviceMonitor/enabled': value must be one of 'auto', true, false"}},
		{"bad alert duration", "alerts:\n  nodeHeld:\n    threshold: 2 hours\n",
			[]string{"/alerts/nodeHeld/threshold", "does not match pattern"}},
		{"deny and warn", "admissionPolicy:\n  validationActions: [Deny, Warn]\n",
			[]string{"/admissionPolicy/validationActions"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "values.yaml")
			require.NoError(t, os.WriteFile(f, []byte(c.values), 0o644))
			_, stderr, err := ct.Run(t, ct.TemplateArgs(t, "-f", f)...)
			require.Error(t, err, "the schema accepted:\n%s", c.values)
			require.Contains(t, stderr, "values don't meet the specifications of the schema")
			for _, w := range c.want {
				require.Contains(t, stderr, w)
			}
		})
	}
}

func TestDefaultsPassTheSchemaUnchanged(t *testing.T) {
	// Every value written out explicitly must validate, so the schema and
	// values.yaml cannot drift apart.
	f := filepath.Join(ct.ChartDir(t), "values.yaml")
	out := ct.Template(t, "-f", f)
	require.Equal(t, ct.Template(t), out)
	require.NotContains(t, out, fmt.Sprintf("%%!")) // no printf formatting errors
}
