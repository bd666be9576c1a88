package hostenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FakeBoot is a PID namespace with its own /proc, standing for a boot that
// happened when it started: dnf needs-restarting takes the boot time from
// the mtime of /proc/1, which procfs sets when the entry is first looked up.
type FakeBoot struct {
	// PID is the namespace's init as this machine sees it.
	PID int
	// Time is the boot time its /proc/1 shows (whole seconds).
	Time time.Time
}

// StartFakeBoot starts the namespace; it is killed when the test ends.
func StartFakeBoot(t testing.TB) *FakeBoot {
	t.Helper()
	RequireCommand(t, "unshare", "util-linux")
	RequireCommand(t, "nsenter", "util-linux")
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "sh", "-c", "stat /proc/1 >/dev/null && echo ready && exec sleep 3600")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err, "unshare printed nothing")
	require.Equal(t, "ready\n", line)
	b := &FakeBoot{PID: childOf(t, cmd.Process.Pid)}
	b.Time = b.BootTime(t)
	return b
}

// childOf finds the only child of pid (unshare --fork's child is the
// namespace's init).
func childOf(t testing.TB, pid int) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the ")" that ends the command name: state, ppid.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return child
		}
	}
	t.Fatalf("no child of unshare (pid %d) found", pid)
	return 0
}

// Command prefixes args so that they run inside the namespace.
func (b *FakeBoot) Command(args ...string) []string {
	return append([]string{"nsenter", "--target", strconv.Itoa(b.PID), "--pid", "--mount", "--"}, args...)
}

// BootTime reads the boot time as seen inside now.
func (b *FakeBoot) BootTime(t testing.TB) time.Time {
	t.Helper()
	args := b.Command("stat", "-c", "%Y", "/proc/1")
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	require.NoError(t, err, "%s: %s", strings.Join(args, " "), out)
	secs, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	require.NoError(t, err, "stat printed %q", out)
	return time.Unix(secs, 0)
}

// WaitForNextSecond returns once the clock has passed the second of ts, so
// that whole-second timestamps taken from now on are later than ts.
func WaitForNextSecond(t testing.TB, ts time.Time) {
	t.Helper()
	next := ts.Truncate(time.Second).Add(time.Second)
	require.Eventually(t, func() bool { return !time.Now().Before(next) }, 5*time.Second, 10*time.Millisecond,
		"clock did not pass %s", next)
}

// String describes the boot for messages.
func (b *FakeBoot) String() string { return fmt.Sprintf("fake boot pid %d at %s", b.PID, b.Time) }
