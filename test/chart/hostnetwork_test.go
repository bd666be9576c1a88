package chart_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// TestHostNetworkIsOptIn: the pod stays out of the host's network namespace
// unless hostNetwork is set, which only nodes without a pod network for the
// agent need (test/realnode runs the chart so, with extraEnv pointing the
// in-cluster config at the API server's loopback address).
func TestHostNetworkIsOptIn(t *testing.T) {
	podSpec := func(set ...string) map[string]any {
		objs := ct.Objects(t, ct.Template(t, set...))
		return ct.Path(t, map[string]any(ct.Find(t, objs, "DaemonSet")), "spec", "template", "spec").(map[string]any)
	}
	require.Equal(t, false, podSpec()["hostNetwork"])
	pod := podSpec("--set", "hostNetwork=true",
		"--set", "agent.extraEnv[0].name=KUBERNETES_SERVICE_HOST", "--set", "agent.extraEnv[0].value=127.0.0.1")
	require.Equal(t, true, pod["hostNetwork"])
	env := ct.Path(t, pod, "containers", 0, "env").([]any)
	require.Contains(t, env, map[string]any{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"})
	_, stderr, err := ct.Run(t, ct.TemplateArgs(t, "--set", "hostNetwork=yes")...)
	require.Error(t, err, "the schema accepts a non-boolean hostNetwork")
	require.Contains(t, stderr, "hostNetwork")
}
