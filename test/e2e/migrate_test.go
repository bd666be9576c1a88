package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/nodepatch/nodepatch/test/chart/charttest"
)

// TestMigrateFromKured runs `nodepatch migrate from-kured` against a kured
// DaemonSet on a real API server, and the chart takes the values it prints:
// kured's flags and KURED_* variables carried over, kured's lock honoured.
func TestMigrateFromKured(t *testing.T) {
	c := newCluster(t, setup{nodes: 1, noAgents: true})
	labels := map[string]string{"name": "kured"}
	ds := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "kured", Namespace: "kube-system"},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "kured", Image: "kured",
					Command: []string{"/usr/bin/kured"},
					Args: []string{"--period=30m", "--reboot-days=sat,sun", "--start-time=2:00", "--end-time=6:00",
						"--time-zone=Europe/Berlin", "--concurrency=2", "--drain-timeout=15m",
						"--prometheus-url=http://prometheus.monitoring:9090", "--alert-filter-regexp=^Watchdog$",
						"--blocking-pod-selector=app=backup"},
					Env: []corev1.EnvVar{{Name: "KURED_LOCK_TTL", Value: "2h"}},
				}}},
			},
		},
	}
	_, err := c.client.AppsV1().DaemonSets("kube-system").Create(c.ctx, ds, metav1.CreateOptions{})
	require.NoError(t, err)

	out, err := exec.CommandContext(c.ctx, nodepatchBinary(t), "migrate", "from-kured", "--kubeconfig", c.kubeconfig).Output()
	require.NoError(t, err)
	var values map[string]any
	require.NoError(t, yaml.Unmarshal(out, &values), "the output is not YAML:\n%s", out)
	agent := values["agent"].(map[string]any)
	require.Equal(t, "30m", agent["period"])
	require.EqualValues(t, 2, agent["concurrency"])
	require.Equal(t, "2h", agent["lockTTL"])
	window := agent["window"].(map[string]any)
	require.Equal(t, "Europe/Berlin", window["timeZone"])
	blockers := agent["blockers"].(map[string]any)
	require.Equal(t, []any{"app=backup"}, blockers["podSelectors"])
	require.Equal(t, "kube-system/kured", blockers["kured"].(map[string]any)["daemonSet"], "the values do not honour kured's lock")

	file := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(file, out, 0o600))
	charttest.Template(t, "-f", file) // fails the test when the chart refuses the values
}
