package realnode

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
)

// TestRootfsMirrorFromAptConfig: hack/rootfs.sh names no mirror of its own; it
// takes the machine's, from one-line .list files or deb822 .sources files.
func TestRootfsMirrorFromAptConfig(t *testing.T) {
	for name, tc := range map[string]struct {
		files map[string]string
		want  string
	}{
		"deb822, past disabled, source and security stanzas": {files: map[string]string{
			"sources.list.d/debian.sources": "Types: deb\nURIs: http://disabled.invalid/debian\nSuites: bookworm\nEnabled: no\n\n" +
				"Types: deb-src\nURIs: http://src.invalid/debian\nSuites: bookworm\n\n" +
				"Types: deb\nURIs: http://security.invalid/debian-security\nSuites: bookworm-security\n\n" +
				"Types: deb\n# a comment\nURIs: http://main.invalid/debian http://other.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n",
			"sources.list.d/other.list.disabled": "deb http://ignored.invalid/debian bookworm main\n",
		}, want: "http://main.invalid/debian"},
		"one-line with options": {files: map[string]string{
			"sources.list": "# deb http://commented.invalid/debian bookworm main\n" +
				"deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://main.invalid/debian bookworm main\n",
		}, want: "http://main.invalid/debian"},
		"one-line file in sources.list.d": {files: map[string]string{
			"sources.list.d/mirror.list": "deb http://main.invalid/debian bookworm main contrib\n",
		}, want: "http://main.invalid/debian"},
	} {
		t.Run(name, func(t *testing.T) {
			out, err := rootfsMirror(t, tc.files)
			require.NoError(t, err, out)
			require.Equal(t, tc.want, strings.TrimSpace(out))
		})
	}
	t.Run("none", func(t *testing.T) {
		out, err := rootfsMirror(t, map[string]string{"sources.list": "deb http://x.invalid/debian trixie main\n"})
		require.Error(t, err)
		require.Contains(t, out, "no bookworm source")
	})
}

func rootfsMirror(t *testing.T, files map[string]string) (string, error) {
	t.Helper()
	ct.TrackInputs(t, "hack/rootfs.sh") // run by a subprocess: invisible to go test's cache
	etc := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(etc, "sources.list.d"), 0o755))
	for p, content := range files {
		require.NoError(t, os.WriteFile(filepath.Join(etc, p), []byte(content), 0o644))
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(ct.RepoRoot(t), "hack", "rootfs.sh"), "--mirror")
	cmd.Env = append(os.Environ(), "NODEPATCH_APT_ETC="+etc)
	b, err := cmd.CombinedOutput()
	return string(b), err
}
