package realnode

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
	"github.com/nodepatch/nodepatch/test/harness"
)

// TestAgentRecipeAgreesWithDockerfile checks that the image the real-node
// tests build without a container engine is the one the Dockerfile describes:
// same entrypoint, command, user and labels, the binary where the Dockerfile
// copies it; and that the tarball ociimage writes says so too.
func TestAgentRecipeAgreesWithDockerfile(t *testing.T) {
	want := ct.DockerfileImage(t)
	r := AgentRecipe()
	require.Equal(t, want.Entrypoint, r.Entrypoint, "ENTRYPOINT")
	require.Equal(t, want.Cmd, r.Cmd, "CMD")
	require.Equal(t, want.User, r.User, "USER")
	require.Equal(t, want.Labels, nonNil(r.Labels), "LABEL")
	require.Equal(t, []string{r.Path}, want.Copied, "the Dockerfile's last stage copies the binary only, to the recipe's path")

	binDir := harness.EnsureToolsT(t)
	bin := filepath.Join(t.TempDir(), "nodepatch")
	require.NoError(t, ct.BuildLikeDockerfile(t, "recipe-test", bin))
	out := filepath.Join(t.TempDir(), "image.tar")
	require.NoError(t, BuildImage(t.Context(), binDir, r, bin, out))
	img, err := ReadArchive(out)
	require.NoError(t, err)
	require.Equal(t, []string{AgentImage}, img.RepoTags)
	require.Equal(t, "linux", img.Config.OS)
	require.Equal(t, want.Entrypoint, img.Config.Config.Entrypoint)
	require.Equal(t, want.Cmd, img.Config.Config.Cmd)
	require.Equal(t, want.User, img.Config.Config.User)
	require.Equal(t, want.Labels, nonNil(img.Config.Config.Labels))
	require.Equal(t, map[string]os.FileMode{r.Path: 0o755}, img.Files, "one file, executable")
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
