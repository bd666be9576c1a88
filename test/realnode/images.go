package realnode

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
	"github.com/nodepatch/nodepatch/test/harness"
)

// Image references. "localhost/" keeps them fully qualified, so that neither
// the kubelet nor containerd expands them to a registry's name; pods use them
// with imagePullPolicy Never, and nothing is ever pulled.
const (
	AgentImage = "localhost/nodepatch:realnode"
	PauseImage = "localhost/realnode-pause:1"
)

// Recipe is how an image is made from one static binary: what the Dockerfile
// says for the agent, written out so that no container engine is needed.
// TestAgentRecipeAgreesWithDockerfile keeps the two in step.
type Recipe struct {
	Ref        string
	Path       string // where the binary lies in the image
	Entrypoint []string
	Cmd        []string
	User       string
	Labels     map[string]string
}

// AgentRecipe is the Dockerfile's last stage, as a Recipe.
func AgentRecipe() Recipe {
	return Recipe{Ref: AgentImage, Path: "/nodepatch", Entrypoint: []string{"/nodepatch"}, Cmd: []string{"agent"}, User: "0:0"}
}

// PauseRecipe is the pod sandbox image: a binary that waits for SIGTERM.
func PauseRecipe() Recipe {
	return Recipe{Ref: PauseImage, Path: "/pause", Entrypoint: []string{"/pause"}, User: "65535:65535"}
}

// BuildImage writes the recipe's image, holding binary at r.Path, as a
// docker-archive tarball at out with the ociimage tool from binDir.
func BuildImage(ctx context.Context, binDir string, r Recipe, binary, out string) error {
	tool, err := harness.ToolPath(binDir, "ociimage")
	if err != nil {
		return err
	}
	args := []string{"-o", out, "-tag", r.Ref, "-user", r.User}
	for _, w := range r.Entrypoint {
		args = append(args, "-entrypoint", w)
	}
	for _, w := range r.Cmd {
		args = append(args, "-cmd", w)
	}
	for _, k := range slices.Sorted(maps.Keys(r.Labels)) {
		args = append(args, "-label", k+"="+r.Labels[k])
	}
	args = append(args, binary+"="+r.Path)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if b, err := exec.CommandContext(ctx, tool, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ociimage %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return nil
}

// Images are the tarballs a node imports at every boot.
type Images struct {
	Agent, Pause string
}

// BuildImagesT builds the agent (its binary the Dockerfile's way) and the pause
// image into a temporary folder.
func BuildImagesT(t testing.TB, binDir string) Images {
	t.Helper()
	dir := t.TempDir()
	agentBin, pauseBin := filepath.Join(dir, "nodepatch"), filepath.Join(dir, "pause")
	require.NoError(t, ct.BuildLikeDockerfile(t, "realnode", agentBin))
	buildStatic(t, "./test/realnode/pause", pauseBin)
	imgs := Images{Agent: filepath.Join(dir, "nodepatch.tar"), Pause: filepath.Join(dir, "pause.tar")}
	require.NoError(t, BuildImage(t.Context(), binDir, AgentRecipe(), agentBin, imgs.Agent))
	require.NoError(t, BuildImage(t.Context(), binDir, PauseRecipe(), pauseBin, imgs.Pause))
	return imgs
}

// buildStatic builds a static binary of pkg (a folder of this module) to out.
func buildStatic(t testing.TB, pkg, out string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = ct.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, "build %s: %s", pkg, b)
}

// ArchiveImage is what a docker-archive tarball holds, read back without
// any container library: its tags, its config and its files.
type ArchiveImage struct {
	RepoTags []string
	Config   struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
		Config       struct {
			Entrypoint []string          `json:"Entrypoint"`
			Cmd        []string          `json:"Cmd"`
			User       string            `json:"User"`
			Labels     map[string]string `json:"Labels"`
		} `json:"config"`
	}
	// Files maps each path in the layers to its mode.
	Files map[string]os.FileMode
}

// ReadArchive reads a docker-archive tarball with one image.
func ReadArchive(path string) (*ArchiveImage, error) {
	entries, err := tarEntries(path)
	if err != nil {
		return nil, err
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		return nil, fmt.Errorf("%s: manifest.json: want one image (%v)", path, err)
	}
	img := &ArchiveImage{RepoTags: manifest[0].RepoTags, Files: map[string]os.FileMode{}}
	if err := json.Unmarshal(entries[manifest[0].Config], &img.Config); err != nil {
		return nil, fmt.Errorf("%s: config: %w", path, err)
	}
	for _, l := range manifest[0].Layers {
		if err := layerFiles(entries[l], img.Files); err != nil {
			return nil, fmt.Errorf("%s: layer %s: %w", path, l, err)
		}
	}
	return img, nil
}

func tarEntries(path string) (map[string][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return entries, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if entries[hdr.Name], err = io.ReadAll(tr); err != nil {
			return nil, fmt.Errorf("read %s in %s: %w", hdr.Name, path, err)
		}
	}
}

// layerFiles lists a gzipped layer's files and modes into files.
func layerFiles(layer []byte, files map[string]os.FileMode) error {
	zr, err := gzip.NewReader(bytes.NewReader(layer))
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		files["/"+strings.TrimPrefix(hdr.Name, "/")] = hdr.FileInfo().Mode()
	}
}
