package host

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// holdFcntlLock takes a write lock on path the way dpkg and rpm do (fcntl,
// F_SETLK); /proc/locks then shows it held.
func holdFcntlLock(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: 0, Start: 0, Len: 0}
	require.NoError(t, syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk))
}

// TestBusyWhilePackageDatabaseLocked: a lock held on a package database's lock
// file makes the host busy; a lock file nobody holds does not.
func TestBusyWhilePackageDatabaseLocked(t *testing.T) {
	dir := t.TempDir()
	held, free := filepath.Join(dir, "lock-frontend"), filepath.Join(dir, "other-lock")
	require.NoError(t, os.WriteFile(free, nil, 0o644))
	b := &BusyChecker{Runner: NewDirectRunner("/"), Locks: []string{held, free, filepath.Join(dir, "missing")}}

	what, err := b.Busy(context.Background())
	require.NoError(t, err)
	require.Empty(t, what)

	holdFcntlLock(t, held)
	what, err = b.Busy(context.Background())
	require.NoError(t, err)
	require.Contains(t, what, held)
	require.NotContains(t, what, free)
}

// TestBusyWhileADetachedCommandRuns: a command left running past its timeout
// keeps the host busy until it ends, and is not killed.
func TestBusyWhileADetachedCommandRuns(t *testing.T) {
	dir := t.TempDir()
	release, finished := filepath.Join(dir, "release"), filepath.Join(dir, "finished")
	r := NewDirectRunner("/")
	script := `i=0; while [ ! -e "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done; touch "$2"`
	_, err := r.Run(context.Background(), Command{Name: "apt-upgrade", Args: []string{"/bin/sh", "-c", script, "sh", release, finished},
		Timeout: 200 * time.Millisecond, Detach: true})
	require.ErrorContains(t, err, "timed out after")

	b := &BusyChecker{Runner: r, Running: r, Locks: []string{}}
	what, err := b.Busy(context.Background())
	require.NoError(t, err)
	require.Contains(t, what, "apt-upgrade")

	require.NoError(t, os.WriteFile(release, nil, 0o644))
	require.Eventually(t, func() bool {
		what, err := b.Busy(context.Background())
		return err == nil && what == ""
	}, time.Minute, 50*time.Millisecond)
	require.FileExists(t, finished, "the detached command was killed instead of left to finish")
}

// TestTimeoutKillsAnAttachedCommand: without Detach, a timeout ends the command.
func TestTimeoutKillsAnAttachedCommand(t *testing.T) {
	dir := t.TempDir()
	r := NewDirectRunner("/")
	_, err := r.Run(context.Background(), Command{Name: "check", Args: []string{"/bin/sh", "-c", "sleep 30; touch " + filepath.Join(dir, "x")},
		Timeout: 200 * time.Millisecond})
	require.ErrorContains(t, err, "timed out after")
	running, err := r.Running(context.Background())
	require.NoError(t, err)
	require.Empty(t, running)
}

func TestHostBootIDReadsThroughTheRunner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "boot_id")
	require.NoError(t, os.WriteFile(path, []byte("0F6B3C1A-1C2D-4E5F-8A9B-0C1D2E3F4A5B\n"), 0o644))
	id, err := (&HostBootID{Runner: NewDirectRunner("/"), Path: path}).BootID(context.Background())
	require.NoError(t, err)
	require.Equal(t, "0f6b3c1a-1c2d-4e5f-8a9b-0c1d2e3f4a5b", id)

	require.NoError(t, os.WriteFile(path, []byte("not a uuid"), 0o644))
	_, err = (&HostBootID{Runner: NewDirectRunner("/"), Path: path}).BootID(context.Background())
	require.ErrorContains(t, err, `"not a uuid" is not a UUID`)
	_, err = (&HostBootID{Runner: NewDirectRunner("/"), Path: filepath.Join(dir, "none")}).BootID(context.Background())
	require.ErrorContains(t, err, "exit status 1")
}
