package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// BuildNodepatch builds ./cmd/nodepatch into outDir and returns the binary's
// path.
func BuildNodepatch(ctx context.Context, outDir string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", outDir, err)
	}
	out, err := filepath.Abs(filepath.Join(outDir, "nodepatch"))
	if err != nil {
		return "", fmt.Errorf("binary path: %w", err)
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "./cmd/nodepatch")
	cmd.Dir = root
	if output, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/nodepatch: %w\n%s", err, output)
	}
	return out, nil
}
