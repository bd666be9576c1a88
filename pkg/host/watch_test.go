package host

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestWatchSentinelSeesItAppear: creating and removing the sentinel each call
// the callback; other files in the folder do not.
func TestWatchSentinelSeesItAppear(t *testing.T) {
	dir := t.TempDir()
	d := &Detector{HostRoot: "/", SentinelFile: filepath.Join(dir, "reboot-required")}
	changes := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	require.NoError(t, d.WatchSentinel(ctx, func() { changes <- struct{}{} }))

	require.NoError(t, os.WriteFile(filepath.Join(dir, "unrelated"), nil, 0o644))
	require.NoError(t, os.WriteFile(d.SentinelFile, nil, 0o644))
	waitChange(t, changes)
	check, err := d.RebootRequired(ctx)
	require.NoError(t, err)
	require.True(t, check.Required)
	require.Empty(t, changes, "an unrelated file or a second event was reported")

	require.NoError(t, os.Remove(d.SentinelFile))
	waitChange(t, changes)
}

func waitChange(t *testing.T, changes <-chan struct{}) {
	t.Helper()
	select {
	case <-changes:
	case <-time.After(10 * time.Second):
		t.Fatal("no change reported within 10s")
	}
	// A write may come as several events (create, then chmod or write); take
	// what arrives together.
	for {
		select {
		case <-changes:
		case <-time.After(100 * time.Millisecond):
			return
		}
	}
}
