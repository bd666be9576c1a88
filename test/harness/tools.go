package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
)

// ModulePath is the module whose root RepoRoot looks for.
const ModulePath = "github.com/nodepatch/nodepatch"

// RepoRoot finds the repository root: the nearest folder, from the working
// directory up, whose go.mod declares ModulePath. It falls back to this
// source file's folder so that binaries built from the tree also find it.
func RepoRoot() (string, error) {
	starts := []string{}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, start := range starts {
		if root, ok := findModuleRoot(start); ok {
			return root, nil
		}
	}
	return "", fmt.Errorf("no go.mod declaring module %s above %v", ModulePath, starts)
}

func findModuleRoot(dir string) (string, bool) {
	for {
		if declaresModule(filepath.Join(dir, "go.mod")) {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

func declaresModule(goMod string) bool {
	f, err := os.Open(goMod)
	if err != nil {
		return false
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 2 && fields[0] == "module" {
			return fields[1] == ModulePath
		}
	}
	return false
}

// ToolsBinDir is where hack/build-tools.sh puts the tools: $NODEPATCH_TOOLS_BIN
// when set (as the script reads it), else _output/bin under the repository.
func ToolsBinDir(root string) string {
	if dir := os.Getenv("NODEPATCH_TOOLS_BIN"); dir != "" {
		return dir
	}
	return filepath.Join(root, "_output", "bin")
}

// EnsureTools runs hack/build-tools.sh, which builds each missing or stale tool
// and returns at once when all are fresh, and returns the folder holding
// them. Its output is streamed to out (nil discards it). A file lock
// serialises concurrent callers, such as test packages run in parallel.
func EnsureTools(ctx context.Context, out io.Writer) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	binDir := ToolsBinDir(root)
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return "", fmt.Errorf("create tools folder: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(binDir, ".build-tools.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := runBuildTools(ctx, root, out); err != nil {
		return "", err
	}
	return binDir, nil
}

func runBuildTools(ctx context.Context, root string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	tail := &tailBuffer{max: 4096}
	script := filepath.Join(root, "hack", "build-tools.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = root
	// One writer for both streams: exec then never calls it concurrently.
	both := io.MultiWriter(out, tail)
	cmd.Stdout, cmd.Stderr = both, both
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w; output ends:\n%s", script, err, tail.String())
	}
	return nil
}

// lockFile takes an exclusive flock on path, giving up when ctx ends.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	locked := make(chan error, 1)
	go func() { locked <- syscall.Flock(int(f.Fd()), syscall.LOCK_EX) }()
	select {
	case err := <-locked:
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return func() { f.Close() }, nil
	case <-ctx.Done():
		// Closing the file does not interrupt flock; the goroutine ends
		// when the other holder releases the lock, and the close frees it.
		go func() { <-locked; f.Close() }()
		return nil, fmt.Errorf("wait for lock %s: %w", path, ctx.Err())
	}
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf bytes.Buffer
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf.Write(p)
	if extra := t.buf.Len() - t.max; extra > 0 {
		t.buf.Next(extra)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return t.buf.String() }

// ToolPath returns binDir/name, or an error if it is not an executable file.
func ToolPath(binDir, name string) (string, error) {
	path := filepath.Join(binDir, name)
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("tool %s: %w (run hack/build-tools.sh)", name, err)
	}
	if info.IsDir() || info.Mode()&0o111 == 0 {
		return "", fmt.Errorf("tool %s: %s is not an executable file", name, path)
	}
	return path, nil
}
