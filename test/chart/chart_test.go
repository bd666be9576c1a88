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
	// The drain policy that needs more rights (delete on pods, a second admission
	// policy), node labels that widen the admission policy, and every hold.
	"forced-drain": {
		"--set", "agent.drain.timeoutAction=force",
		"--set", "agent.nodeLabels.preReboot={example.com/maintenance=true}",
		"--set", "agent.nodeLabels.postReboot={example.com/patched=yes}",
		"--set", "agent.blockers.podSelectors={app=batch}",
		"--set", "agent.blockers.prometheus.url=http://prometheus.monitoring:9090",
		"--set", "agent.blockers.kured.daemonSet=kube-system/kured",
		"--set", "agent.health.query=up{job=\"node\"}",
		"--set", "agent.health.soak=5m",
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
		"defaults": {"ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
		"tuned": {"ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
		"dnf-host": {"ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
		"prometheus-operator": {"ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "PodMonitor", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "ServiceMonitor", "PrometheusRule", "ValidatingAdmissionPolicy",
			"ValidatingAdmissionPolicyBinding"},
		"pod-monitor": {"ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "PodMonitor", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "PodMonitor", "PrometheusRule", "ValidatingAdmissionPolicy",
			"ValidatingAdmissionPolicyBinding"},
		"forced-drain": {"ConfigMap", "ConfigMap", "Deployment", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
			"Service", "DaemonSet", "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
			"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"},
		"existing-service-account": {"ConfigMap", "ConfigMap", "Service", "DaemonSet", "Deployment", "PodDisruptionBudget"},
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
	// Drain policy, delays and node labels.
	"delete-emptydir-data", "force", "skip-wait-for-delete-timeout", "drain-timeout-action",
	"force-drain-grace-period", "drain-delay", "reboot-delay", "pre-reboot-node-labels",
	"post-reboot-node-labels", "exclude-from-load-balancers",
	// Holds from outside the node and the health gate.
	"blocking-pod-selector", "prometheus-url", "prometheus-timeout", "alert-filter-regexp",
	"alert-filter-match-only", "alert-firing-only", "alert-label-matchers", "block-while-query",
	"kured-daemonset", "kured-lock-annotation", "health-daemonsets", "ready-pod-selector",
	"health-query", "soak", "health-timeout",
	// Approval gates, and the schedule.
	"gate", "window", "blackout",
	// Notifications.
	"notify-url", "message-template-drain", "message-template-reboot", "message-template-uncordon",
	"notify-webhook", "notify-webhook-template", "notify-blocked-after",
}

// repeatableFlags are the agentFlags given once per list item (stringArray
// flags), and not at all for an empty list.
var repeatableFlags = []string{"blocking-pod-selector", "gate", "window", "blackout", "notify-url", "notify-webhook-template"}

// unsetFlags are agentFlags the chart gives only when their value is set: an
// empty flag would shadow the NODEPATCH_* variable that may give it from a
// Secret instead.
var unsetFlags = []string{"notify-webhook"}

// alwaysFlags are the agentFlags the chart always gives, once.
func alwaysFlags() []string {
	var always []string
	for _, f := range agentFlags {
		if !slices.Contains(repeatableFlags, f) && !slices.Contains(unsetFlags, f) {
			always = append(always, f)
		}
	}
	return always
}

// agentArgs returns the agent container's flags, but repeatableFlags, as
// name → value, failing on any other flag given twice.
func agentArgs(t *testing.T, objs []ct.Object) map[string]string {
	t.Helper()
	flags := map[string]string{}
	for _, f := range agentFlagList(t, objs) {
		if slices.Contains(repeatableFlags, f[0]) {
			continue
		}
		_, dup := flags[f[0]]
		require.False(t, dup, "flag --%s given twice", f[0])
		flags[f[0]] = f[1]
	}
	return flags
}

// agentRepeatedArgs returns the values of each of repeatableFlags, in order.
func agentRepeatedArgs(t *testing.T, objs []ct.Object) map[string][]string {
	t.Helper()
	flags := map[string][]string{}
	for _, f := range agentFlagList(t, objs) {
		if slices.Contains(repeatableFlags, f[0]) {
			flags[f[0]] = append(flags[f[0]], f[1])
		}
	}
	return flags
}

// agentFlagList returns the agent container's flags as [name, value] pairs in
// their order.
func agentFlagList(t *testing.T, objs []ct.Object) [][2]string {
	t.Helper()
	c := agentContainer(t, objs)
	require.Equal(t, []any{"/nodepatch"}, c["command"])
	args := c["args"].([]any)
	require.Equal(t, "agent", args[0])
	var flags [][2]string
	for _, a := range args[1:] {
		s := a.(string)
		require.True(t, strings.HasPrefix(s, "--"), "argument %q is not a flag", s)
		name, value, ok := strings.Cut(strings.TrimPrefix(s, "--"), "=")
		require.True(t, ok, "flag %q has no =value", s)
		flags = append(flags, [2]string{name, value})
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
	objs := ct.Objects(t, ct.Template(t))
	flags := agentArgs(t, objs)
	var names []string
	for n := range flags {
		names = append(names, n)
	}
	require.ElementsMatch(t, alwaysFlags(), names)
	// An empty --blocking-pod-selector would select every pod and hold every
	// reboot: with no selectors, there is no flag.
	require.Empty(t, agentRepeatedArgs(t, objs))
	for _, f := range unsetFlags {
		require.NotContains(t, flags, f)
	}
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
		// The agent's own defaults, but for nothing.
		"delete-emptydir-data": "true", "force": "false", "skip-wait-for-delete-timeout": "0",
		"drain-timeout-action": "retry", "force-drain-grace-period": "30", "drain-delay": "0s",
		"reboot-delay": "0s", "pre-reboot-node-labels": "", "post-reboot-node-labels": "",
		"exclude-from-load-balancers": "true",
		"prometheus-url":              "", "prometheus-timeout": "10s", "alert-filter-regexp": "",
		"alert-filter-match-only": "false", "alert-firing-only": "false", "alert-label-matchers": "",
		"block-while-query": "", "kured-daemonset": "", "kured-lock-annotation": "weave.works/kured-node-lock",
		"health-daemonsets": "true", "ready-pod-selector": "", "health-query": "", "soak": "0s",
		"health-timeout":         "10m",
		"message-template-drain": "Draining node %s", "message-template-reboot": "Rebooting node %s",
		"message-template-uncordon": "Node %s rebooted & uncordoned successfully!", "notify-blocked-after": "1h",
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
		"--set", "agent.drain.deleteEmptyDirData=false", "--set", "agent.drain.force=true",
		// timeoutAction stays retry: afterDrainTimeout=true above excludes the others
		// (TestPodDeleteOnlyForAForcedDrain renders them).
		"--set", "agent.drain.skipWaitForDeleteTimeout=120",
		"--set", "agent.drain.forceGracePeriod=5", "--set", "agent.drain.delay=30s",
		"--set", "agent.reboot.delay=1m",
		"--set", "agent.nodeLabels.preReboot={example.com/maintenance=true,example.com/owner=}",
		"--set", "agent.nodeLabels.postReboot={example.com/patched=yes}",
		"--set", "agent.nodeLabels.excludeFromLoadBalancers=false",
		"--set", "agent.blockers.podSelectors={app=batch,tier in (db\\,cache)}",
		"--set", "agent.blockers.prometheus.url=https://prom.example:9090/",
		"--set", "agent.blockers.prometheus.timeout=3s",
		"--set", "agent.blockers.prometheus.alertFilterRegexp=^(Watchdog|Info.*)$",
		"--set", "agent.blockers.prometheus.alertFilterMatchOnly=true",
		"--set", "agent.blockers.prometheus.alertFiringOnly=true",
		"--set-string", `agent.blockers.prometheus.alertLabelMatchers=severity="critical"\,node=~"$NODE"`,
		"--set-string", `agent.blockers.prometheus.blockWhileQuery=sum(kube_job_status_active{namespace="batch"}) > 0`,
		"--set", "agent.blockers.kured.daemonSet=kube-system/kured",
		"--set", "agent.blockers.kured.lockAnnotation=example.com/kured-lock",
		"--set", "agent.health.daemonSets=false", "--set", "agent.health.readyPodSelector=app=ingress",
		"--set-string", `agent.health.query=up{job="ingress"}`,
		"--set", "agent.health.soak=2m", "--set", "agent.health.timeout=15m",
		"--set", `agent.gates={change-ticket@before-drain,storage@after-reboot\,timeout=1h30m\,on-timeout=fail}`,
		"--set-json", `agent.schedule.blackouts=["2026-12-24..2027-01-02 Europe/Berlin"]`,
		"--set-json", `agent.notify.urls=["slack://a/b/c","teams://x@y/z"]`,
		"--set", "agent.notify.messageTemplates.drain=Draining %s (100%% planned)",
		"--set", "agent.notify.messageTemplates.reboot=Rebooting",
		"--set", "agent.notify.messageTemplates.uncordon=%s is back",
		"--set", "agent.notify.webhook=https://hooks.example/np",
		"--set-json", `agent.notify.webhookTemplates=["failed={\"text\":{{json .Text}}}"]`,
		"--set", "agent.notify.blockedAfter=0s",
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
		"delete-emptydir-data": "false", "force": "true", "skip-wait-for-delete-timeout": "120",
		"drain-timeout-action": "retry", "force-drain-grace-period": "5", "drain-delay": "30s",
		"reboot-delay":            "1m",
		"pre-reboot-node-labels":  "example.com/maintenance=true,example.com/owner=",
		"post-reboot-node-labels": "example.com/patched=yes", "exclude-from-load-balancers": "false",
		"prometheus-url": "https://prom.example:9090/", "prometheus-timeout": "3s",
		"alert-filter-regexp": "^(Watchdog|Info.*)$", "alert-filter-match-only": "true",
		"alert-firing-only": "true", "alert-label-matchers": `severity="critical",node=~"$NODE"`,
		"block-while-query": `sum(kube_job_status_active{namespace="batch"}) > 0`,
		"kured-daemonset":   "kube-system/kured", "kured-lock-annotation": "example.com/kured-lock",
		"health-daemonsets": "false", "ready-pod-selector": "app=ingress",
		"health-query": `up{job="ingress"}`, "soak": "2m", "health-timeout": "15m",
		"message-template-drain": "Draining %s (100%% planned)", "message-template-reboot": "Rebooting",
		"message-template-uncordon": "%s is back", "notify-webhook": "https://hooks.example/np",
		"notify-blocked-after": "0s",
	}, agentArgs(t, objs))
	require.Equal(t, map[string][]string{
		"blocking-pod-selector":   {"app=batch", "tier in (db,cache)"},
		"gate":                    {"change-ticket@before-drain", "storage@after-reboot,timeout=1h30m,on-timeout=fail"},
		"blackout":                {"2026-12-24..2027-01-02 Europe/Berlin"},
		"notify-url":              {"slack://a/b/c", "teams://x@y/z"},
		"notify-webhook-template": {`failed={"text":{{json .Text}}}`},
	}, agentRepeatedArgs(t, objs))

	// Several windows replace the one of agent.window, left at its defaults.
	windows := ct.Objects(t, ct.Template(t, "--set-json",
		`agent.schedule.windows=["mon-fri 22:00-04:00 Europe/Berlin","cron \"0 2 * * sat\" 4h UTC"]`))
	require.Equal(t, map[string][]string{"window": {"mon-fri 22:00-04:00 Europe/Berlin", `cron "0 2 * * sat" 4h UTC`}},
		agentRepeatedArgs(t, windows))
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

func rbacRule(groups, resources, verbs []any) map[string]any {
	return map[string]any{"apiGroups": groups, "resources": resources, "verbs": verbs}
}

func TestRBAC(t *testing.T) {
	objs := ct.Objects(t, ct.Template(t))
	rule := rbacRule
	require.Equal(t, []any{
		rule([]any{""}, []any{"nodes"}, []any{"get", "list", "watch", "patch", "update"}),
		rule([]any{""}, []any{"pods"}, []any{"get", "list"}),
		rule([]any{""}, []any{"pods/eviction"}, []any{"create"}),
		rule([]any{"policy"}, []any{"poddisruptionbudgets"}, []any{"list", "watch"}),
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

// TestPodDeleteOnlyForAForcedDrain: the agent may delete pods only when a timed-out
// drain is to be forced, and then only on its own Node (a second admission policy).
func TestPodDeleteOnlyForAForcedDrain(t *testing.T) {
	deletes := func(objs []ct.Object) bool {
		for _, r := range ct.FindNamed(t, objs, "ClusterRole", "nodepatch")["rules"].([]any) {
			r := r.(map[string]any)
			if slices.Contains(r["resources"].([]any), any("pods")) && slices.Contains(r["verbs"].([]any), any("delete")) {
				return true
			}
		}
		return false
	}
	policyNames := func(objs []ct.Object) []string {
		var names []string
		for _, p := range ct.FindAll(objs, "ValidatingAdmissionPolicy") {
			names = append(names, p.Name())
		}
		return names
	}
	for _, action := range []string{"retry", "quarantine"} {
		objs := ct.Objects(t, ct.Template(t, "--set", "agent.drain.timeoutAction="+action))
		require.Equal(t, action, agentArgs(t, objs)["drain-timeout-action"])
		require.False(t, deletes(objs), "timeoutAction %s grants delete on pods", action)
		require.Equal(t, []string{"nodepatch-own-node"}, policyNames(objs), action)
	}

	objs := ct.Objects(t, ct.Template(t, "--set", "agent.drain.timeoutAction=force"))
	require.Equal(t, "force", agentArgs(t, objs)["drain-timeout-action"])
	require.True(t, deletes(objs))
	require.Contains(t, ct.FindNamed(t, objs, "ClusterRole", "nodepatch")["rules"],
		rbacRule([]any{""}, []any{"pods"}, []any{"delete"}))
	require.ElementsMatch(t, []string{"nodepatch-own-node", "nodepatch-own-node-pods"}, policyNames(objs))
	pods := ct.FindNamed(t, objs, "ValidatingAdmissionPolicy", "nodepatch-own-node-pods")
	require.Equal(t, []any{map[string]any{"apiGroups": []any{""}, "apiVersions": []any{"v1"},
		"operations": []any{"DELETE"}, "resources": []any{"pods"}}},
		ct.Path(t, map[string]any(pods), "spec", "matchConstraints", "resourceRules"))
	require.Equal(t, []any{map[string]any{
		"name":       "nodepatch-agent",
		"expression": "request.userInfo.username == 'system:serviceaccount:nodepatch:nodepatch'",
	}}, ct.Path(t, map[string]any(pods), "spec", "matchConditions"))
	var bindings []string
	for _, b := range ct.FindAll(objs, "ValidatingAdmissionPolicyBinding") {
		bindings = append(bindings, ct.Path(t, map[string]any(b), "spec", "policyName").(string))
	}
	require.ElementsMatch(t, []string{"nodepatch-own-node", "nodepatch-own-node-pods"}, bindings)

	objs = ct.Objects(t, ct.Template(t, "--set", "agent.drain.timeoutAction=force", "--set", "admissionPolicy.enabled=false"))
	require.Empty(t, ct.FindAll(objs, "ValidatingAdmissionPolicy"))
}

// TestAdmissionPolicyLabelKeys: the label keys outside nodepatch.io/ that the
// policy lets the agent change are exactly those its flags set.
func TestAdmissionPolicyLabelKeys(t *testing.T) {
	const lb = "node.kubernetes.io/exclude-from-external-load-balancers"
	cases := []struct {
		name string
		set  []string
		want string
	}{
		{"defaults", nil, `["` + lb + `"]`},
		{"no load balancer label", []string{"agent.nodeLabels.excludeFromLoadBalancers=false"}, "[]"},
		{"pre and post labels, once each", []string{
			"agent.nodeLabels.preReboot={example.com/maintenance=true,zeta=1}",
			"agent.nodeLabels.postReboot={example.com/maintenance=false,example.com/patched=}",
			"agent.nodeLabels.excludeFromLoadBalancers=false",
		}, `["example.com/maintenance","example.com/patched","zeta"]`},
		{"both", []string{"agent.nodeLabels.postReboot={example.com/patched=yes}"},
			`["example.com/patched","` + lb + `"]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var args []string
			for _, s := range c.set {
				args = append(args, "--set", s)
			}
			policy := ct.FindNamed(t, ct.Objects(t, ct.Template(t, args...)), "ValidatingAdmissionPolicy", "nodepatch-own-node")
			var keys string
			for _, v := range ct.Path(t, map[string]any(policy), "spec", "variables").([]any) {
				if v := v.(map[string]any); v["name"] == "labelKeys" {
					keys = v["expression"].(string)
				}
			}
			require.Equal(t, c.want, keys)
		})
	}
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
		{"alert filter without prometheus", []string{"agent.blockers.prometheus.alertFilterRegexp=Watchdog"},
			`agent.blockers.prometheus.alertFilterRegexp "Watchdog" needs agent.blockers.prometheus.url`},
		{"label matchers without prometheus", []string{`agent.blockers.prometheus.alertLabelMatchers=severity="critical"`},
			`agent.blockers.prometheus.alertLabelMatchers "severity=\"critical\"" needs agent.blockers.prometheus.url`},
		{"block-while query without prometheus", []string{"agent.blockers.prometheus.blockWhileQuery=vector(1)"},
			`agent.blockers.prometheus.blockWhileQuery "vector(1)" needs agent.blockers.prometheus.url`},
		{"health query without prometheus", []string{"agent.health.query=vector(1)"},
			`agent.health.query "vector(1)" needs agent.blockers.prometheus.url`},
		{"soak as long as the health timeout", []string{"agent.health.soak=10m"},
			`agent.health.soak "10m" is not shorter than agent.health.timeout "10m"`},
		{"health timeout zero", []string{"agent.health.timeout=0s"},
			`agent.health.timeout "0s" must be a positive duration`},
		{"several windows and the one-window shorthand", []string{"agent.schedule.windows={sat 01:00-05:00 UTC}", "agent.window.startTime=01:00"},
			"agent.schedule.windows and agent.window both set the maintenance window"},
		{"several windows and the days of the shorthand", []string{"agent.schedule.windows={sat 01:00-05:00 UTC}", "agent.window.days={sat,sun}"},
			"agent.schedule.windows and agent.window both set the maintenance window"},
		{"a gate given twice", []string{`agent.gates={ticket@before-drain,ticket@after-reboot}`},
			`agent.gates "ticket@after-reboot": gate ticket is given twice`},
		{"a gate without time", []string{`agent.gates={ticket@before-drain\,timeout=0s}`},
			`agent.gates "ticket@before-drain,timeout=0s": timeout=0s: the timeout must be a positive duration`},
		{"reboot after a drain timeout and quarantine", []string{"agent.reboot.afterDrainTimeout=true", "agent.drain.timeoutAction=quarantine"},
			`agent.reboot.afterDrainTimeout and agent.drain.timeoutAction "quarantine" both say what a timed-out drain leads to`},
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
		{"unknown nested key", "agent:\n  drain:\n    forceful: true\n",
			[]string{"/agent/drain", "additional properties 'forceful' not allowed"}},
		{"unknown key in a new section", "agent:\n  blockers:\n    prometheus:\n      address: http://p\n",
			[]string{"/agent/blockers/prometheus", "additional properties 'address' not allowed"}},
		{"bad drain timeout action", "agent:\n  drain:\n    timeoutAction: reboot\n",
			[]string{"at '/agent/drain/timeoutAction': value must be one of 'retry', 'quarantine', 'force'"}},
		{"negative skip-wait timeout", "agent:\n  drain:\n    skipWaitForDeleteTimeout: -1\n",
			[]string{"/agent/drain/skipWaitForDeleteTimeout", "minimum: got -1, want 0"}},
		{"negative forced grace period", "agent:\n  drain:\n    forceGracePeriod: -1\n",
			[]string{"/agent/drain/forceGracePeriod", "minimum: got -1, want 0"}},
		{"bad drain delay", "agent:\n  drain:\n    delay: soon\n",
			[]string{"/agent/drain/delay", "'soon' does not match pattern"}},
		{"bad reboot delay", "agent:\n  reboot:\n    delay: 1 minute\n",
			[]string{"/agent/reboot/delay", "does not match pattern"}},
		{"node label without a value", "agent:\n  nodeLabels:\n    preReboot: [example.com/maintenance]\n",
			[]string{"/agent/nodeLabels/preReboot/0", "does not match pattern"}},
		{"node label with a bad key", "agent:\n  nodeLabels:\n    postReboot: [\"-bad/key=x\"]\n",
			[]string{"/agent/nodeLabels/postReboot/0", "does not match pattern"}},
		{"node label with a bad value", "agent:\n  nodeLabels:\n    postReboot: [\"example.com/x=has space\"]\n",
			[]string{"/agent/nodeLabels/postReboot/0", "does not match pattern"}},
		{"nodepatch's own label", "agent:\n  nodeLabels:\n    preReboot: [nodepatch.io/quarantined=true]\n",
			[]string{"/agent/nodeLabels/preReboot/0", "'not' failed"}},
		{"the load balancer label", "agent:\n  nodeLabels:\n    preReboot: [node.kubernetes.io/exclude-from-external-load-balancers=true]\n",
			[]string{"/agent/nodeLabels/preReboot/0", "'not' failed"}},
		{"load balancer switch as string", "agent:\n  nodeLabels:\n    excludeFromLoadBalancers: \"no\"\n",
			[]string{"/agent/nodeLabels/excludeFromLoadBalancers", "got string, want boolean"}},
		{"pod selectors as a string", "agent:\n  blockers:\n    podSelectors: app=db\n",
			[]string{"/agent/blockers/podSelectors", "got string, want array"}},
		{"empty pod selector", "agent:\n  blockers:\n    podSelectors: [\" \"]\n",
			[]string{"/agent/blockers/podSelectors/0", "does not match pattern"}},
		{"prometheus url without scheme", "agent:\n  blockers:\n    prometheus:\n      url: prometheus:9090\n",
			[]string{"/agent/blockers/prometheus/url", "'prometheus:9090' does not match pattern"}},
		{"bad prometheus timeout", "agent:\n  blockers:\n    prometheus:\n      timeout: 10\n",
			[]string{"/agent/blockers/prometheus/timeout", "got number, want string"}},
		{"kured daemonset without namespace", "agent:\n  blockers:\n    kured:\n      daemonSet: kured\n",
			[]string{"/agent/blockers/kured/daemonSet", "'kured' does not match pattern"}},
		{"kured annotation empty", "agent:\n  blockers:\n    kured:\n      lockAnnotation: \"\"\n",
			[]string{"/agent/blockers/kured/lockAnnotation", "does not match pattern"}},
		{"bad soak", "agent:\n  health:\n    soak: 5 minutes\n",
			[]string{"/agent/health/soak", "'5 minutes' does not match pattern"}},
		{"windows as a string", "agent:\n  schedule:\n    windows: sat 01:00-05:00 UTC\n",
			[]string{"/agent/schedule/windows", "got string, want array"}},
		{"empty blackout", "agent:\n  schedule:\n    blackouts: [\"\"]\n",
			[]string{"/agent/schedule/blackouts/0", "does not match pattern"}},
		{"unknown schedule key", "agent:\n  schedule:\n    holidays: []\n",
			[]string{"/agent/schedule", "additional properties 'holidays' not allowed"}},
		{"notify url without a scheme", "agent:\n  notify:\n    urls: [hooks.slack.com/services/a]\n",
			[]string{"/agent/notify/urls/0", "does not match pattern"}},
		{"webhook not http", "agent:\n  notify:\n    webhook: ftp://hooks.example\n",
			[]string{"/agent/notify/webhook", "does not match pattern"}},
		{"message template with another verb", "agent:\n  notify:\n    messageTemplates:\n      drain: \"Draining %d\"\n",
			[]string{"/agent/notify/messageTemplates/drain", "does not match pattern"}},
		{"message template with two names", "agent:\n  notify:\n    messageTemplates:\n      reboot: \"%s reboots %s\"\n",
			[]string{"/agent/notify/messageTemplates/reboot", "does not match pattern"}},
		{"message template with a lone percent", "agent:\n  notify:\n    messageTemplates:\n      uncordon: \"%s at 100%\"\n",
			[]string{"/agent/notify/messageTemplates/uncordon", "does not match pattern"}},
		{"webhook template of an unknown kind", "agent:\n  notify:\n    webhookTemplates: [\"reboot={}\"]\n",
			[]string{"/agent/notify/webhookTemplates/0", "does not match pattern"}},
		{"bad blocked-after", "agent:\n  notify:\n    blockedAfter: an hour\n",
			[]string{"/agent/notify/blockedAfter", "does not match pattern"}},
		{"gate without a point", "agent:\n  gates: [change-ticket]\n",
			[]string{"/agent/gates/0", "'change-ticket' does not match pattern"}},
		{"gate at an unknown point", "agent:\n  gates: [ticket@after-drain]\n",
			[]string{"/agent/gates/0", "does not match pattern"}},
		{"gate with an unknown option", "agent:\n  gates: [\"ticket@before-drain,retries=3\"]\n",
			[]string{"/agent/gates/0", "does not match pattern"}},
		{"gate name too long", "agent:\n  gates: [" + strings.Repeat("g", 56) + "@before-drain]\n",
			[]string{"/agent/gates/0", "does not match pattern"}},
		{"health daemonsets as string", "agent:\n  health:\n    daemonSets: \"true\"\n",
			[]string{"/agent/health/daemonSets", "got string, want boolean"}},
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
