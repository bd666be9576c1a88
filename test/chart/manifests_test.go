package chart_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// renderedFiles are the files manifests/render.sh writes.
var renderedFiles = []string{
	"nodepatch.yaml",
	"monitoring/monitoring.yaml",
	"prometheus/nodepatch-alerts.rules.yaml",
}

// TestManifestsAreUpToDate fails when the committed files in manifests/ differ
// from what manifests/render.sh renders from the chart now.
func TestManifestsAreUpToDate(t *testing.T) {
	root := ct.RepoRoot(t)
	ct.TrackInputs(t, "charts/nodepatch", "manifests")
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "manifests", "render.sh"), out)
	cmd.Env = append(ct.Env(t), "HELM="+ct.Helm(t))
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "render.sh: %s", msg)

	for _, f := range renderedFiles {
		fresh, err := os.ReadFile(filepath.Join(out, f))
		require.NoError(t, err)
		committed, err := os.ReadFile(filepath.Join(root, "manifests", f))
		require.NoError(t, err, "manifests/%s is missing: run manifests/render.sh", f)
		require.Equal(t, string(fresh), string(committed),
			"manifests/%s is out of date: run manifests/render.sh and commit the result", f)
	}
}

// TestManifestIsTheChart checks render.sh's output against helm itself: the
// all-in-one manifest holds exactly the objects of `helm template` with the
// defaults, and the plain rule file is exactly the PrometheusRule's spec.
func TestManifestIsTheChart(t *testing.T) {
	root := ct.RepoRoot(t)
	committed, err := os.ReadFile(filepath.Join(root, "manifests", "nodepatch.yaml"))
	require.NoError(t, err)
	require.Equal(t, ct.Objects(t, ct.Template(t)), ct.Objects(t, string(committed)))

	rules, err := os.ReadFile(filepath.Join(root, "manifests", "prometheus", "nodepatch-alerts.rules.yaml"))
	require.NoError(t, err)
	var fromFile, fromChart map[string]any
	require.NoError(t, yaml.Unmarshal(rules, &fromFile))
	require.NoError(t, yaml.Unmarshal(ct.AlertRules(t), &fromChart))
	require.Equal(t, fromChart, fromFile)
	require.NotEmpty(t, fromFile["groups"])
}

// TestKustomization builds the kustomize bases with kustomize itself (the
// library kubectl apply -k uses): the base holds the namespace and every object
// of the rendered chart, in that namespace, and the monitoring base the
// ServiceMonitor and the PrometheusRule.
func TestKustomization(t *testing.T) {
	root := ct.RepoRoot(t)
	ct.TrackInputs(t, "manifests")
	objs := kustomize(t, filepath.Join(root, "manifests"))

	ns := ct.Find(t, objs, "Namespace")
	require.Equal(t, ct.Namespace, ns.Name())
	require.Equal(t, "privileged", ct.Path(t, map[string]any(ns), "metadata", "labels", "pod-security.kubernetes.io/enforce"))

	rendered := ct.Objects(t, mustRead(t, filepath.Join(root, "manifests", "nodepatch.yaml")))
	require.Len(t, objs, len(rendered)+1, "the base holds the namespace and every rendered object")
	for _, o := range objs {
		md := o["metadata"].(map[string]any)
		switch {
		case o.Kind() == "Namespace":
		case strings.HasPrefix(o.Kind(), "Cluster") || strings.HasPrefix(o.Kind(), "ValidatingAdmission"):
			require.NotContains(t, md, "namespace", "%s %s", o.Kind(), o.Name())
		default:
			require.Equal(t, ct.Namespace, md["namespace"], "%s %s", o.Kind(), o.Name())
		}
	}

	var kinds []string
	for _, o := range kustomize(t, filepath.Join(root, "manifests", "monitoring")) {
		kinds = append(kinds, o.Kind())
	}
	require.ElementsMatch(t, []string{"ServiceMonitor", "PrometheusRule"}, kinds)
}

func kustomize(t *testing.T, dir string) []ct.Object {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	require.NoError(t, err, "kustomize build %s", dir)
	out, err := resources.AsYaml()
	require.NoError(t, err)
	return ct.Objects(t, string(out))
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}
