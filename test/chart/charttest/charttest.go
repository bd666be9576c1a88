// Package charttest runs the real helm on the nodepatch chart for the tests in
// test/chart and test/alerts: it finds (or builds) helm, keeps helm's caches in a
// temporary home, renders the chart and splits the output into objects.
package charttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	"github.com/nodepatch/nodepatch/test/harness"
)

// KubeVersion is the Kubernetes version helm renders for: the chart's minimum.
const KubeVersion = "1.30.0"

// Release and Namespace are the fixed release name and namespace of the
// rendered manifests in manifests/.
const (
	Release   = "nodepatch"
	Namespace = "nodepatch"
)

// RepoRoot is the checkout's root: the nearest folder up from the test's working
// directory that holds go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, dir, parent, "no go.mod above the working directory")
		dir = parent
	}
}

// ChartDir is the chart's folder.
func ChartDir(t testing.TB) string {
	return filepath.Join(RepoRoot(t), "charts", "nodepatch")
}

// Helm returns the path of the helm binary that hack/build-tools.sh builds
// (through the harness, which builds missing tools under a file lock), or
// $HELM when set.
func Helm(t testing.TB) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	helm, err := harness.ToolPath(harness.EnsureToolsT(t), "helm")
	require.NoError(t, err)
	return helm
}

// Env is an environment for helm with HOME and the XDG folders in a temporary
// folder, so that helm writes nothing outside the test.
func Env(t testing.TB) []string {
	t.Helper()
	home := t.TempDir()
	env := []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"),
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"),
		"XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_DATA_HOME=" + filepath.Join(home, "data")}
	return env
}

// TrackInputs reads every file under the given paths (relative to the
// repository's root). Files read by a subprocess (helm, go build) are invisible
// to go test's result cache; reading them here makes a change to any of them
// invalidate the cached result. A path that does not exist is skipped (go test
// records that too).
func TrackInputs(t testing.TB, paths ...string) {
	t.Helper()
	root := RepoRoot(t)
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join(root, p)); errors.Is(err, os.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(filepath.Join(root, p), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			_, err = os.ReadFile(path)
			return err
		})
		require.NoError(t, err, "read the inputs under %s", p)
	}
}

// Run runs helm with args and returns its stdout, its stderr and its error.
func Run(t testing.TB, args ...string) (string, string, error) {
	t.Helper()
	TrackInputs(t, filepath.Join("charts", "nodepatch"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, Helm(t), args...)
	cmd.Env = Env(t)
	cmd.Dir = RepoRoot(t)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// TemplateArgs are the arguments of `helm template` for the fixed release and
// namespace, followed by extra.
func TemplateArgs(t testing.TB, extra ...string) []string {
	args := []string{"template", Release, ChartDir(t), "--namespace", Namespace, "--kube-version", KubeVersion}
	return append(args, extra...)
}

// Template renders the chart with extra helm arguments (--set, -f,
// --api-versions ...) and fails the test when helm fails.
func Template(t testing.TB, extra ...string) string {
	t.Helper()
	out, stderr, err := Run(t, TemplateArgs(t, extra...)...)
	require.NoError(t, err, "helm template %s failed: %s", strings.Join(extra, " "), stderr)
	return out
}

// Object is one rendered Kubernetes object.
type Object map[string]any

// Kind is the object's kind.
func (o Object) Kind() string { s, _ := o["kind"].(string); return s }

// Name is the object's metadata.name.
func (o Object) Name() string {
	m, _ := o["metadata"].(map[string]any)
	s, _ := m["name"].(string)
	return s
}

// Objects splits a multi-document YAML stream into objects, skipping empty documents.
func Objects(t testing.TB, manifest string) []Object {
	t.Helper()
	var objs []Object
	for _, doc := range SplitDocuments(manifest) {
		var o Object
		require.NoError(t, yaml.Unmarshal([]byte(doc), &o), "document:\n%s", doc)
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
	return objs
}

// SplitDocuments cuts a YAML stream at its "---" separator lines.
func SplitDocuments(manifest string) []string {
	var docs []string
	var cur strings.Builder
	for _, line := range strings.Split(manifest, "\n") {
		if strings.TrimRight(line, " ") == "---" {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line)
		cur.WriteString("\n")
	}
	return append(docs, cur.String())
}

// Find returns the one object of the given kind, failing when there is not exactly one.
func Find(t testing.TB, objs []Object, kind string) Object {
	t.Helper()
	found := FindAll(objs, kind)
	require.Len(t, found, 1, "want exactly one %s", kind)
	return found[0]
}

// FindNamed returns the one object of the given kind and name.
func FindNamed(t testing.TB, objs []Object, kind, name string) Object {
	t.Helper()
	var found []Object
	for _, o := range FindAll(objs, kind) {
		if o.Name() == name {
			found = append(found, o)
		}
	}
	require.Len(t, found, 1, "want exactly one %s %s", kind, name)
	return found[0]
}

// FindAll returns every object of the given kind.
func FindAll(objs []Object, kind string) []Object {
	var found []Object
	for _, o := range objs {
		if o.Kind() == kind {
			found = append(found, o)
		}
	}
	return found
}

// Path walks nested maps and lists ("spec", "template", 0, ...) and fails the
// test when a step does not exist.
func Path(t testing.TB, v any, steps ...any) any {
	t.Helper()
	for i, step := range steps {
		switch s := step.(type) {
		case string:
			m, ok := v.(map[string]any)
			require.True(t, ok, "step %d (%q): not a map: %T", i, s, v)
			next, ok := m[s]
			require.True(t, ok, "step %d: no key %q in %v", i, s, keys(m))
			v = next
		case int:
			l, ok := v.([]any)
			require.True(t, ok, "step %d (%d): not a list: %T", i, s, v)
			require.Less(t, s, len(l), "step %d: index out of range", i)
			v = l[s]
		default:
			require.FailNow(t, fmt.Sprintf("step %d: bad step type %T", i, step))
		}
	}
	return v
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// AlertRules renders the chart's alerting rules (the PrometheusRule's spec) as
// a Prometheus rule file, with extra helm arguments.
func AlertRules(t testing.TB, extra ...string) []byte {
	t.Helper()
	args := append([]string{"--set", "alerts.enabled=true", "--show-only", "templates/prometheusrule.yaml"}, extra...)
	rule := Find(t, Objects(t, Template(t, args...)), "PrometheusRule")
	out, err := yaml.Marshal(rule["spec"])
	require.NoError(t, err)
	return out
}
