package hostenv

import (
	"context"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/host"
)

// Run is one command a RecordingRunner ran.
type Run struct {
	Command host.Command
	Result  host.Result
	Err     error
}

// RecordingRunner wraps a Runner and records every run and how many ran at
// once.
type RecordingRunner struct {
	host.Runner
	mu          sync.Mutex
	runs        []Run
	inFlight    int
	maxInFlight int
}

// Run implements host.Runner.
func (r *RecordingRunner) Run(ctx context.Context, c host.Command) (host.Result, error) {
	r.mu.Lock()
	r.inFlight++
	r.maxInFlight = max(r.maxInFlight, r.inFlight)
	r.mu.Unlock()
	res, err := r.Runner.Run(ctx, c)
	r.mu.Lock()
	r.inFlight--
	r.runs = append(r.runs, Run{Command: c, Result: res, Err: err})
	r.mu.Unlock()
	return res, err
}

// Runs returns the runs so far.
func (r *RecordingRunner) Runs() []Run {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Run(nil), r.runs...)
}

// MaxInFlight is the most runs seen at once.
func (r *RecordingRunner) MaxInFlight() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.maxInFlight
}

// HoldLock takes a POSIX (fcntl) write lock on path, as dpkg and rpm do,
// and returns its release. Child processes see it held by this process.
func HoldLock(t testing.TB, path string) (release func()) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	require.NoError(t, err)
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	require.NoError(t, syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk), "lock %s", path)
	var once sync.Once
	release = func() { once.Do(func() { _ = f.Close() }) }
	t.Cleanup(release)
	return release
}
