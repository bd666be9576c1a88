package main

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"
)

// These tests check the command's plumbing only (flags, the DaemonSet it reads,
// what it prints); the mapping is tested in pkg/kured.

func kuredDaemonSet(namespace, name string, args ...string) *appsv1.DaemonSet {
	return &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DaemonSetSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "kured", Command: []string{"/usr/bin/kured"}, Args: args},
		}}}}}
}

// runMigrate runs `nodepatch migrate from-kured ARGS` on a fake clientset
// holding objs, and returns stdout, the kubeconfig the command asked for, and
// the command's error.
func runMigrate(t *testing.T, args []string, objs ...*appsv1.DaemonSet) (string, string, error) {
	t.Helper()
	client := fake.NewClientset()
	for _, o := range objs {
		_, err := client.AppsV1().DaemonSets(o.Namespace).Create(t.Context(), o, metav1.CreateOptions{})
		require.NoError(t, err)
	}
	var gotKubeconfig string
	cmd := newMigrateCommandWith(func(kubeconfig string) (kubernetes.Interface, error) {
		gotKubeconfig = kubeconfig
		return client, nil
	})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs(append([]string{"from-kured"}, args...))
	err := cmd.ExecuteContext(t.Context())
	return out.String(), gotKubeconfig, err
}

func TestMigrateFromKuredDefaults(t *testing.T) {
	out, kubeconfig, err := runMigrate(t, nil,
		kuredDaemonSet("kube-system", "kured", "--period=2h"),
		kuredDaemonSet("other", "kured", "--period=9h"))
	require.NoError(t, err)
	require.Empty(t, kubeconfig)
	require.Contains(t, out, "# nodepatch chart values migrated from kured")
	require.Contains(t, out, "# - kured's lock is the annotation weave.works/kured-node-lock on DaemonSet kube-system/kured")
	var values map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(out), &values))
	require.Equal(t, "2h", values["agent"].(map[string]any)["period"], "read kube-system/kured")
}

func TestMigrateFromKuredFlags(t *testing.T) {
	out, kubeconfig, err := runMigrate(t, []string{"--namespace", "ops", "--daemonset=reboots", "--kubeconfig", "/tmp/kc"},
		kuredDaemonSet("kube-system", "kured", "--period=2h"),
		kuredDaemonSet("ops", "reboots", "--period=3h", "--ds-name=reboots", "--ds-namespace=ops"))
	require.NoError(t, err)
	require.Equal(t, "/tmp/kc", kubeconfig)
	require.Contains(t, out, "period: 3h")
	require.Contains(t, out, "DaemonSet ops/reboots")

	out, _, err = runMigrate(t, []string{"-n", "ops", "--daemonset", "reboots"}, kuredDaemonSet("ops", "reboots", "--period=4h"))
	require.NoError(t, err)
	require.Contains(t, out, "period: 4h")
}

func TestMigrateFromKuredErrors(t *testing.T) {
	_, _, err := runMigrate(t, []string{"--daemonset", "absent"}, kuredDaemonSet("kube-system", "kured"))
	require.ErrorContains(t, err, "daemonset kube-system/absent not found")

	_, _, err = runMigrate(t, []string{"--namespace", "Bad_Name"})
	require.ErrorContains(t, err, `--namespace "Bad_Name"`)
	_, _, err = runMigrate(t, []string{"--daemonset", ""})
	require.ErrorContains(t, err, `--daemonset ""`)

	_, _, err = runMigrate(t, nil, kuredDaemonSet("kube-system", "kured", "--period=soon"))
	require.ErrorContains(t, err, `daemonset kube-system/kured: kured flag --period "soon"`)

	_, _, err = runMigrate(t, []string{"extra"})
	require.Error(t, err, "no positional arguments")

	cmd := newMigrateCommandWith(func(string) (kubernetes.Interface, error) { return nil, errors.New("no cluster here") })
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"from-kured"})
	require.ErrorContains(t, cmd.ExecuteContext(t.Context()), "no cluster here")
}

func TestRootHasMigrateFromKured(t *testing.T) {
	cmd, _, err := newRootCommand().Find([]string{"migrate", "from-kured"})
	require.NoError(t, err)
	require.Equal(t, "from-kured", cmd.Name())
	require.NotNil(t, cmd.Flags().Lookup("daemonset"))
}
