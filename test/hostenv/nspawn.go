package hostenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/host"
)

// NodeConfig describes a stand-in node.
type NodeConfig struct {
	// Name is the machine name (-M).
	Name string
	// Binds are extra "HOSTDIR:CONTAINERDIR" bind mounts; ROBinds read-only.
	Binds, ROBinds []string
	// Files are written into the node's root before it first boots
	// (container path -> content).
	Files map[string]string
	// Symlinks are made in the node's root before it first boots
	// (container path -> target), e.g. to enable units.
	Symlinks map[string]string
	// Root is the read-only lower layer of the node's overlay; empty: RootFS.
	Root string
	// NspawnArgs are extra systemd-nspawn flags.
	NspawnArgs []string
	// FreshCgroups runs each boot in new, empty cgroups (one per hierarchy,
	// below the test's own, named after the node and the boot) and removes
	// them when that boot ends. A kubelet needs this on cgroup v1, where
	// cgroups outlive the container and stale pod cgroups slow the next boot.
	FreshCgroups bool
}

// Node is a Debian bookworm root with systemd booted by systemd-nspawn in a
// private mount namespace, on a throwaway overlay of the cached root. Its
// system bus socket is bound out at BusDir; /var/lib/nodepatch at OutputDir.
// A reboot inside restarts nspawn, as systemd-nspawn@.service does.
type Node struct {
	// BusAddress is the node's system bus as seen from here.
	BusAddress string
	// OutputDir is the node's /var/lib/nodepatch as seen from here.
	OutputDir string
	// ConsoleLog collects nspawn's and the loop's output.
	ConsoleLog string

	name   string
	cmd    *exec.Cmd
	exited chan struct{}
}

// ModuleRoot returns the repository's top folder (where go.mod is).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(b, []byte("module github.com/nodepatch/nodepatch\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "go.mod of github.com/nodepatch/nodepatch not found above the test")
		dir = parent
	}
}

// RootFS returns the cached bookworm root, extracted; hack/rootfs.sh
// builds its tarball on first use.
func RootFS(t testing.TB) string {
	t.Helper()
	return extractedRoot(t, "base")
}

// KubeletRootFS returns the cached bookworm root that also holds containerd,
// runc and the CNI plugins, extracted; `hack/rootfs.sh node` builds its
// tarball on first use.
func KubeletRootFS(t testing.TB) string {
	t.Helper()
	return extractedRoot(t, "node")
}

func extractedRoot(t testing.TB, flavour string) string {
	t.Helper()
	RequireCommand(t, "debootstrap", "debootstrap")
	top := ModuleRoot(t)
	out, err := exec.Command(filepath.Join(top, "hack/rootfs.sh"), flavour).Output()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		t.Fatalf("hack/rootfs.sh %s failed: %v\n%s", flavour, err, exitErr.Stderr)
	}
	require.NoError(t, err, "hack/rootfs.sh %s", flavour)
	tarball := strings.TrimSpace(string(out))
	dir := strings.TrimSuffix(tarball, ".tar")
	done := filepath.Join(dir, ".nodepatch-extracted")

	lock, err := os.OpenFile(filepath.Join(filepath.Dir(tarball), ".extract.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	require.NoError(t, err)
	defer lock.Close()
	require.NoError(t, syscall.Flock(int(lock.Fd()), syscall.LOCK_EX))
	if _, err := os.Stat(done); err == nil {
		return dir
	}
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	b, err := exec.Command("tar", "-C", dir, "--numeric-owner", "-xf", tarball).CombinedOutput()
	require.NoError(t, err, "extract %s: %s", tarball, b)
	require.NoError(t, os.WriteFile(done, nil, 0o644))
	return dir
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// nodeScript mounts the overlay and boots the node, again after each reboot
// (exit 133), in the mount namespace unshare made. With fresh cgroups
// (%[7]s is "1") each boot's systemd-nspawn first moves itself into new
// cgroups below the script's own, which the script removes after that boot.
const nodeScript = `set -u
mount -t tmpfs tmpfs /run/systemd || exit 90
mount -t overlay overlay -o lowerdir=%[1]s,upperdir=%[2]s,workdir=%[3]s %[4]s || exit 91
# own_cgroups prints this process's cgroup folder in each mounted hierarchy.
own_cgroups() {
  while IFS=: read -r _ ctrls path; do
    case $ctrls in
      "") d=/sys/fs/cgroup/unified; [ -d "$d" ] || d=/sys/fs/cgroup ;;
      name=*) d=/sys/fs/cgroup/${ctrls#name=} ;;
      *) d=/sys/fs/cgroup/$ctrls ;;
    esac
    [ -d "$d$path" ] && echo "${d%%/}$path"
  done </proc/self/cgroup
}
bases=$(own_cgroups)
boot=0
cgdirs=""
remove_cgroups() {
  for d in $cgdirs; do find "$d" -depth -type d -exec rmdir {} \; || echo "nodepatch-node: cannot remove $d"; done
  cgdirs=""
}
trap remove_cgroups EXIT
while :; do
  boot=$((boot + 1))
  if [ %[7]s = 1 ]; then
    for b in $bases; do
      d=$b/%[5]s-$$-boot$boot
      mkdir "$d" || exit 92
      # A new cpuset has no CPUs or memory nodes until given its parent's.
      [ -e "$d/cpuset.cpus" ] && cat "$b/cpuset.cpus" >"$d/cpuset.cpus" && cat "$b/cpuset.mems" >"$d/cpuset.mems"
      cgdirs="$cgdirs $d"
    done
  fi
  # setpriv: if this loop dies (the test process was killed), nspawn is told
  # to power the node off instead of running on as an orphan.
  CGDIRS=$cgdirs sh -c 'for d in $CGDIRS; do echo $$ >"$d/cgroup.procs" || exit 93; done; exec "$@"' nspawn \
    setpriv --pdeathsig TERM systemd-nspawn -D %[4]s -b --register=no --keep-unit --console=pipe -M %[5]s %[6]s
  rc=$?
  echo "nodepatch-node: systemd-nspawn exited $rc"
  remove_cgroups
  [ "$rc" -eq 133 ] || exit "$rc"
done
`

// StartNode boots a node and waits until its systemd is running. It is
// powered off (or killed) when the test ends.
func StartNode(t testing.TB, cfg NodeConfig) *Node {
	t.Helper()
	RequireCommand(t, "systemd-nspawn", "systemd-container")
	RequireCommand(t, "unshare", "util-linux")
	RequireCommand(t, "setpriv", "util-linux")
	lower := cfg.Root
	if lower == "" {
		lower = RootFS(t)
	}
	dir := t.TempDir()
	n := &Node{name: cfg.Name, OutputDir: filepath.Join(dir, "output"), ConsoleLog: filepath.Join(dir, "console.log"), exited: make(chan struct{})}
	bus := filepath.Join(dir, "bus")
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{bus, n.OutputDir, upper, work, merged} {
		require.NoError(t, os.MkdirAll(d, 0o755))
	}
	for p, content := range cfg.Files {
		full := filepath.Join(upper, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.WriteFile(full, []byte(content), 0o644))
	}
	for p, target := range cfg.Symlinks {
		full := filepath.Join(upper, p)
		require.NoError(t, os.MkdirAll(filepath.Dir(full), 0o755))
		require.NoError(t, os.Symlink(target, full))
	}
	n.BusAddress = "unix:path=" + filepath.Join(bus, "system_bus_socket")
	args := []string{"--bind=" + bus + ":/run/dbus", "--bind=" + n.OutputDir + ":/var/lib/nodepatch"}
	for _, b := range cfg.Binds {
		args = append(args, "--bind="+b)
	}
	for _, b := range cfg.ROBinds {
		args = append(args, "--bind-ro="+b)
	}
	args = append(args, cfg.NspawnArgs...)
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shQuote(a)
	}
	fresh := "0"
	if cfg.FreshCgroups {
		fresh = "1"
	}
	script := fmt.Sprintf(nodeScript, shQuote(lower), shQuote(upper), shQuote(work), shQuote(merged), shQuote(cfg.Name), strings.Join(quoted, " "), fresh)

	logFile, err := os.Create(n.ConsoleLog)
	require.NoError(t, err)
	n.cmd = exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	n.cmd.Stdout, n.cmd.Stderr = logFile, logFile
	// The loop dies with the test process (a timeout's panic runs no
	// cleanup), and nspawn with the loop (setpriv above).
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	require.NoError(t, n.cmd.Start())
	go func() { _ = n.cmd.Wait(); _ = logFile.Close(); close(n.exited) }()
	t.Cleanup(func() { n.stop(t) })
	n.WaitRunning(t, 2*time.Minute)
	return n
}

// Tail returns the end of the console log, for failure messages.
func (n *Node) Tail() string {
	b, _ := os.ReadFile(n.ConsoleLog)
	return host.Tail(b, 4000)
}

// WaitRunning waits until the node's systemd reports running (or
// degraded: some unit of the minimal root may fail in a container).
func (n *Node) WaitRunning(t testing.TB, timeout time.Duration) {
	t.Helper()
	var last string
	ok := waitFor(timeout, func() bool {
		select {
		case <-n.exited:
			return true
		default:
		}
		last = n.systemState()
		return last == "running" || last == "degraded"
	})
	select {
	case <-n.exited:
		t.Fatalf("node exited while booting; console:\n%s", n.Tail())
	default:
	}
	require.True(t, ok, "node not running after %v (last state %q); console:\n%s", timeout, last, n.Tail())
}

func (n *Node) systemState() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := godbus.Connect(n.BusAddress, godbus.WithContext(ctx))
	if err != nil {
		return "unreachable: " + err.Error()
	}
	defer conn.Close()
	var state string
	err = conn.Object(systemdName, systemdPath).CallWithContext(ctx, "org.freedesktop.DBus.Properties.Get", 0, managerIface, "SystemState").Store(&state)
	if err != nil {
		return "error: " + err.Error()
	}
	return state
}

func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// InitPID returns the node's current PID 1 as seen from here (it changes
// at each boot).
func (n *Node) InitPID(t testing.TB) int {
	t.Helper()
	nspawn := n.nspawnPID()
	require.NotZero(t, nspawn, "systemd-nspawn is not running; console:\n%s", n.Tail())
	init := childPID(nspawn, "systemd")
	require.NotZero(t, init, "no systemd under systemd-nspawn (pid %d)", nspawn)
	return init
}

// Root is the node's "/" as seen from here, through its PID 1.
func (n *Node) Root(t testing.TB) string {
	return "/proc/" + strconv.Itoa(n.InitPID(t)) + "/root"
}

// RootDir is Root for polling loops: an error, not a failed test, while the
// node is between boots.
func (n *Node) RootDir() (string, error) {
	nspawn := n.nspawnPID()
	if nspawn == 0 {
		return "", errors.New("systemd-nspawn is not running")
	}
	init := childPID(nspawn, "systemd")
	if init == 0 {
		return "", fmt.Errorf("no systemd under systemd-nspawn (pid %d)", nspawn)
	}
	return "/proc/" + strconv.Itoa(init) + "/root", nil
}

// CgroupPrefix starts the names of the cgroups of this node's boots with
// FreshCgroups (the boot loop's PID keeps them apart from other runs').
func (n *Node) CgroupPrefix() string {
	return fmt.Sprintf("%s-%d-", n.name, n.cmd.Process.Pid)
}

// Exited is closed when the node's boot loop has ended.
func (n *Node) Exited() <-chan struct{} { return n.exited }

func (n *Node) nspawnPID() int { return childPID(n.cmd.Process.Pid, "systemd-nspawn") }

// childPID finds a child of parent whose command is comm.
func childPID(parent int, comm string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(stat)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		f := strings.Fields(s[close+1:])
		if s[open+1:close] == comm && len(f) > 1 && f[1] == strconv.Itoa(parent) {
			return pid
		}
	}
	return 0
}

// stop powers the node off (SIGTERM to nspawn), and kills what is left by
// PID if that does not end it within a minute.
func (n *Node) stop(t testing.TB) {
	if pid := n.nspawnPID(); pid != 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
	select {
	case <-n.exited:
		return
	case <-time.After(time.Minute):
	}
	t.Logf("node did not power off within a minute; killing it; console:\n%s", n.Tail())
	if nspawn := n.nspawnPID(); nspawn != 0 {
		if init := childPID(nspawn, "systemd"); init != 0 {
			_ = syscall.Kill(init, syscall.SIGKILL) // ends its whole PID namespace
		}
	}
	_ = syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL)
	<-n.exited
}
