package host

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// PackageLocks are the package databases' lock files. dpkg and rpm hold them
// with fcntl locks for the length of a transaction.
var PackageLocks = []string{"/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/rpm/.rpm.lock"}

// lockCheckScript prints each lock file that some process holds a lock on:
// /proc/locks names locked files by device and inode ("MAJ:MIN:INODE"). Only
// the shell, stat and grep are needed on the host.
const lockCheckScript = `for f in "$@"; do
  [ -e "$f" ] || continue
  ino=$(stat -L -c %i "$f" 2>/dev/null) || continue
  if grep -q ":$ino " /proc/locks; then echo "$f"; fi
done`

// RunningLister lists the nodepatch host commands still running.
type RunningLister interface {
	Running(ctx context.Context) ([]string, error)
}

// BusyChecker tells whether the host is in the middle of something a reboot
// must not cut short: a nodepatch host command (an upgrade the agent stopped
// waiting for) or a package transaction by anyone.
type BusyChecker struct {
	Runner  Runner
	Running RunningLister // nil: only the package locks are checked
	Locks   []string      // nil: PackageLocks
}

// Busy returns what keeps the host busy, or "" when nothing does.
func (b *BusyChecker) Busy(ctx context.Context) (string, error) {
	if b.Running != nil {
		running, err := b.Running.Running(ctx)
		if err != nil {
			return "", fmt.Errorf("listing nodepatch host commands: %w", err)
		}
		if len(running) > 0 {
			return "nodepatch host commands still running: " + strings.Join(running, ", "), nil
		}
	}
	locks := b.Locks
	if locks == nil {
		locks = PackageLocks
	}
	args := append([]string{"/bin/sh", "-c", lockCheckScript, "lock-check"}, locks...)
	res, err := b.Runner.Run(ctx, Command{Name: "lock-check", Args: args, Timeout: 30 * time.Second})
	if err != nil {
		return "", fmt.Errorf("checking the package database locks: %w", err)
	}
	if res.ExitStatus != 0 {
		return "", fmt.Errorf("checking the package database locks: exit status %d: %s", res.ExitStatus, LastLines(res.Output, 3))
	}
	if held := strings.Fields(res.Stdout); len(held) > 0 {
		return "package database locked (a package transaction is running): " + strings.Join(held, ", "), nil
	}
	return "", nil
}

// HostBootID reads the boot id the way host commands run (through the Runner:
// a systemd transient unit, by default), so that it is the node's and not that
// of whatever kernel the agent's container sees.
type HostBootID struct {
	Runner Runner
	Path   string // as the host sees it
}

// BootID implements the agent's BootIDReader.
func (h *HostBootID) BootID(ctx context.Context) (string, error) {
	res, err := h.Runner.Run(ctx, Command{Name: "boot-id", Args: []string{"/bin/cat", h.Path}, Timeout: 30 * time.Second})
	if err != nil {
		return "", fmt.Errorf("reading the host's boot id: %w", err)
	}
	if res.ExitStatus != 0 {
		return "", fmt.Errorf("reading the host's boot id from %s: exit status %d: %s", h.Path, res.ExitStatus, LastLines(res.Output, 3))
	}
	return ParseBootID("the host's "+h.Path, res.Stdout)
}
