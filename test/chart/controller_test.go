package chart_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/policy"
	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

func controllerContainer(t *testing.T, objs []ct.Object) map[string]any {
	t.Helper()
	d := ct.FindNamed(t, objs, "Deployment", "nodepatch-controller")
	containers := ct.Path(t, map[string]any(d), "spec", "template", "spec", "containers").([]any)
	require.Len(t, containers, 1)
	return containers[0].(map[string]any)
}

// TestControllerValuesReachTheirFlags: each controller.* value is one flag of
// `nodepatch controller`, repeated values repeat the flag.
func TestControllerValuesReachTheirFlags(t *testing.T) {
	objs := ct.Objects(t, ct.Template(t,
		"--set", "controller.maxUnavailable=10%", "--set", "controller.maxUnavailablePer={topology.kubernetes.io/zone=1,rack=2}",
		"--set", "controller.controlPlane=first", "--set", "controller.failureBudget=3/1h",
		"--set", "controller.admissionTimeout=2m", "--set", "controller.kubeAPIQPS=20", "--set", "controller.kubeAPIBurst=40",
		"--set", "agent.lockName=np"))
	require.Equal(t, []any{"controller", "--lock-name=np", "--max-unavailable=10%",
		"--max-unavailable-per=topology.kubernetes.io/zone=1", "--max-unavailable-per=rack=2",
		"--control-plane=first", "--failure-budget=3/1h", "--admission-timeout=2m", "--kube-api-qps=20", "--kube-api-burst=40", "--pools-configmap=nodepatch-pools",
		"--metrics-address=:8080", "--log-format=text"}, controllerContainer(t, objs)["args"])
	require.Equal(t, "controller", agentArgs(t, objs)["admission"], "agents must wait for the controller it runs")
}

// TestControllerOnTheHostNetwork: controller.hostNetwork puts the pods in
// the host's network namespace with its own metrics port and extra
// environment; a port the agents open on every host is refused by name.
func TestControllerOnTheHostNetwork(t *testing.T) {
	objs := ct.Objects(t, ct.Template(t, "--set", "hostNetwork=true", "--set", "controller.hostNetwork=true",
		"--set", "controller.metricsPort=8081", "--set", "controller.extraEnv[0].name=KUBERNETES_SERVICE_HOST",
		"--set", "controller.extraEnv[0].value=127.0.0.1"))
	pod := ct.Path(t, map[string]any(ct.FindNamed(t, objs, "Deployment", "nodepatch-controller")), "spec", "template", "spec").(map[string]any)
	require.Equal(t, true, pod["hostNetwork"])
	require.Equal(t, "ClusterFirstWithHostNet", pod["dnsPolicy"], "a host-network pod still resolves cluster names")
	c := controllerContainer(t, objs)
	require.Contains(t, c["args"], "--metrics-address=:8081")
	require.Equal(t, 8081, int(ct.Path(t, c, "ports").([]any)[0].(map[string]any)["containerPort"].(float64)))
	require.Contains(t, c["env"], map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"})

	plain := ct.Path(t, map[string]any(ct.FindNamed(t, ct.Objects(t, ct.Template(t)), "Deployment", "nodepatch-controller")), "spec", "template", "spec").(map[string]any)
	require.NotContains(t, plain, "hostNetwork")

	_, stderr, err := ct.Run(t, ct.TemplateArgs(t, "--set", "hostNetwork=true", "--set", "controller.hostNetwork=true")...)
	require.Error(t, err)
	require.Contains(t, stderr, "controller.metricsPort: with hostNetwork and controller.hostNetwork both true, the controller's port must not be metrics.port (8080)")
}

// TestControllerLeastPrivilege: its own ServiceAccount, Node rights to read and
// annotate only, no capabilities, not root; replicas spread and kept by a budget.
func TestControllerLeastPrivilege(t *testing.T) {
	objs := ct.Objects(t, ct.Template(t))
	rule := func(groups, resources, verbs []any) map[string]any {
		return map[string]any{"apiGroups": groups, "resources": resources, "verbs": verbs}
	}
	require.Equal(t, []any{
		rule([]any{""}, []any{"nodes"}, []any{"get", "list", "watch", "patch"}),
		rule([]any{""}, []any{"events"}, []any{"create", "patch"}),
		rule([]any{"events.k8s.io"}, []any{"events"}, []any{"create", "patch"}),
	}, ct.FindNamed(t, objs, "ClusterRole", "nodepatch-controller")["rules"])
	require.Equal(t, []any{
		rule([]any{"coordination.k8s.io"}, []any{"leases"}, []any{"get", "list", "watch", "create", "update", "patch"}),
		map[string]any{"apiGroups": []any{""}, "resources": []any{"configmaps"}, "resourceNames": []any{"nodepatch-pools"},
			"verbs": []any{"get", "list", "watch"}},
	}, ct.FindNamed(t, objs, "Role", "nodepatch-controller")["rules"], "the pools ConfigMap, read only, and no other")
	subject := []any{map[string]any{"kind": "ServiceAccount", "name": "nodepatch-controller", "namespace": "nodepatch"}}
	require.Equal(t, subject, ct.FindNamed(t, objs, "ClusterRoleBinding", "nodepatch-controller")["subjects"])
	require.Equal(t, subject, ct.FindNamed(t, objs, "RoleBinding", "nodepatch-controller")["subjects"])

	d := map[string]any(ct.FindNamed(t, objs, "Deployment", "nodepatch-controller"))
	pod := ct.Path(t, d, "spec", "template", "spec").(map[string]any)
	require.Equal(t, "nodepatch-controller", pod["serviceAccountName"])
	require.Equal(t, "system-cluster-critical", pod["priorityClassName"])
	require.EqualValues(t, 2, ct.Path(t, d, "spec", "replicas"))
	require.Equal(t, true, ct.Path(t, pod, "securityContext", "runAsNonRoot"))
	require.NotNil(t, ct.Path(t, pod, "affinity", "podAntiAffinity"))
	sc := controllerContainer(t, objs)["securityContext"].(map[string]any)
	require.Equal(t, false, sc["allowPrivilegeEscalation"])
	require.Equal(t, true, sc["readOnlyRootFilesystem"])
	require.Equal(t, []any{"ALL"}, ct.Path(t, sc, "capabilities", "drop"))
	require.EqualValues(t, 1, ct.Path(t, map[string]any(ct.FindNamed(t, objs, "PodDisruptionBudget", "nodepatch-controller")), "spec", "maxUnavailable"))
	// The controller's pods are not the DaemonSet's.
	require.Equal(t, "nodepatch-controller", ct.Path(t, pod, "affinity", "podAntiAffinity",
		"preferredDuringSchedulingIgnoredDuringExecution", 0, "podAffinityTerm", "labelSelector", "matchLabels", "app.kubernetes.io/name"))
}

func TestNoControllerNoAdmission(t *testing.T) {
	objs := ct.Objects(t, ct.Template(t, "--set", "controller.enabled=false"))
	require.Empty(t, ct.FindAll(objs, "Deployment"))
	require.Equal(t, "none", agentArgs(t, objs)["admission"])
}

// TestControllerPoolsConfigMap: controller.pools render one ConfigMap key per
// pool, which the controller's own parser reads back as given; no pools, an
// empty ConfigMap for operators to edit.
func TestControllerPoolsConfigMap(t *testing.T) {
	values := filepath.Join(t.TempDir(), "pools.yaml")
	require.NoError(t, os.WriteFile(values, []byte(`controller:
  pools:
    - name: gpu
      selector: nodepool=gpu
      maxUnavailable: 1
      maxUnavailablePer: [topology.kubernetes.io/zone=1]
      windows: ["sat,sun 02:00-06:00 UTC"]
    - name: batch
      selector: "tier in (batch,spot)"
      maxUnavailable: 25%
      blackouts: [2026-12-24..2026-12-26 Europe/Berlin]
`), 0o600))
	cm := ct.FindNamed(t, ct.Objects(t, ct.Template(t, "-f", values)), "ConfigMap", "nodepatch-pools")
	data := map[string]string{}
	for k, v := range cm["data"].(map[string]any) {
		data[k] = v.(string)
	}
	pools, err := policy.ParsePools(data)
	require.NoError(t, err)
	var described []string
	for _, p := range pools {
		described = append(described, p.Describe())
	}
	require.Equal(t, []string{
		"batch (tier in (batch,spot)): max-unavailable 25%, window always except 2026-12-24..2026-12-26 Europe/Berlin",
		"gpu (nodepool=gpu): max-unavailable 1, max-unavailable-per topology.kubernetes.io/zone=1, window sat,sun 02:00-06:00 UTC",
	}, described)

	empty := ct.FindNamed(t, ct.Objects(t, ct.Template(t)), "ConfigMap", "nodepatch-pools")
	require.Empty(t, empty["data"])

	for name, c := range map[string]struct{ values, want string }{
		"a name given twice": {"controller:\n  pools:\n    - {name: a, selector: x=y, maxUnavailable: 1}\n    - {name: a, selector: x=z, maxUnavailable: 1}\n",
			`the pool name "a" is given twice`},
		"no selector":    {"controller:\n  pools:\n    - {name: a, maxUnavailable: 1}\n", "missing property 'selector'"},
		"a zero limit":   {"controller:\n  pools:\n    - {name: a, selector: x=y, maxUnavailable: 0}\n", "/controller/pools/0/maxUnavailable"},
		"a bad name":     {"controller:\n  pools:\n    - {name: GPU, selector: x=y, maxUnavailable: 1}\n", "/controller/pools/0/name"},
		"an unknown key": {"controller:\n  pools:\n    - {name: a, selector: x=y, maxUnavailable: 1, window: x}\n", "additional properties 'window' not allowed"},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "values.yaml")
			require.NoError(t, os.WriteFile(file, []byte(c.values), 0o600))
			_, stderr, err := ct.Run(t, ct.TemplateArgs(t, "-f", file)...)
			require.Error(t, err)
			require.Contains(t, stderr, c.want)
		})
	}
}
