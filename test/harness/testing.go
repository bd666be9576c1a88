package harness

import (
	"bytes"
	"sync"
	"testing"
)

// EnsureToolsT is EnsureTools for tests: it fails t on error and logs the
// build output through t.
func EnsureToolsT(t testing.TB) string {
	t.Helper()
	binDir, err := EnsureTools(t.Context(), NewTestLogWriter(t))
	if err != nil {
		t.Fatalf("build tools: %v", err)
	}
	return binDir
}

// StartControlPlaneT is StartControlPlane for tests: it fails t on error and
// stops the control plane when the test ends, logging the tail of every
// component's log first if the test failed.
func StartControlPlaneT(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	if opts.Log == nil {
		opts.Log = NewTestLogWriter(t)
	}
	if opts.BinDir == "" {
		opts.BinDir = EnsureToolsT(t)
	}
	cp, err := StartControlPlane(t.Context(), opts)
	if err != nil {
		t.Fatalf("start control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", cp.LogTails(4000))
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	return cp
}

// BuildNodepatchT is BuildNodepatch for tests, into a temporary folder.
func BuildNodepatchT(t testing.TB) string {
	t.Helper()
	path, err := BuildNodepatch(t.Context(), t.TempDir())
	if err != nil {
		t.Fatalf("build nodepatch: %v", err)
	}
	return path
}

// TestLogWriter passes whole lines written to it to t.Log.
type TestLogWriter struct {
	t   testing.TB
	mu  sync.Mutex
	buf bytes.Buffer
}

// NewTestLogWriter returns a writer that logs each line through t.
func NewTestLogWriter(t testing.TB) *TestLogWriter { return &TestLogWriter{t: t} }

func (w *TestLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for {
		line, err := w.buf.ReadBytes('\n')
		if err != nil {
			// An unfinished line: keep it for the next write.
			w.buf.Write(line)
			return len(p), nil
		}
		w.t.Log(string(bytes.TrimRight(line, "\n")))
	}
}
