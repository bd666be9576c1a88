package host

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/fsnotify/fsnotify"
)

// WatchSentinel calls changed whenever the sentinel file (resolved inside the
// host root, as the Detector reads it) appears, changes or goes, until ctx
// ends. It watches the file's folder, since the file itself comes and goes.
// The caller keeps its periodic check: a watch can miss what happens while it
// is being set up, and some filesystems send no events.
func (d *Detector) WatchSentinel(ctx context.Context, changed func()) error {
	if d.SentinelFile == "" {
		return nil
	}
	p, err := ResolveInRoot(d.HostRoot, d.SentinelFile)
	if err != nil {
		return fmt.Errorf("watching the sentinel file: %w", err)
	}
	dir, base := filepath.Dir(p), filepath.Base(p)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching the sentinel file %s: %w", d.SentinelFile, err)
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watching the sentinel file's folder %s: %w", dir, err)
	}
	go func() {
		defer w.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if name := filepath.Base(ev.Name); name == base || name == base+".pkgs" {
					changed()
				}
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
				changed() // events may have been lost: look again
			}
		}
	}()
	return nil
}
