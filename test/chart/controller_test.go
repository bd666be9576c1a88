package chart_test

import (
	"testing"

	"github.com/stretchr/testify/require"

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
		"--set", "controller.admissionTimeout=2m", "--set", "agent.lockName=np"))
	require.Equal(t, []any{"controller", "--lock-name=np", "--max-unavailable=10%",
		"--max-unavailable-per=topology.kubernetes.io/zone=1", "--max-unavailable-per=rack=2",
		"--control-plane=first", "--failure-budget=3/1h", "--admission-timeout=2m",
		"--metrics-address=:8080", "--log-format=text"}, controllerContainer(t, objs)["args"])
	require.Equal(t, "controller", agentArgs(t, objs)["admission"], "agents must wait for the controller it runs")
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
