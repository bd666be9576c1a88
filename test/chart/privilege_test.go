package chart_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/pkg/host/systemd"
	"github.com/nodepatch/nodepatch/pkg/reboot"
	"github.com/nodepatch/nodepatch/test/hostenv"
)

// The chart runs the agent as uid 0 with every capability dropped, and mounts
// the host's /run/dbus read-only. These tests show, against a real systemd
// (Debian bookworm, booted by systemd-nspawn), that this is enough for what the
// agent asks systemd to do, and that another uid is not: the helper below is
// this test binary, re-executed in the node's PID namespace (like a pod on the
// host), with an empty capability set, no_new_privs, and the bus folder bound
// read-only.

const (
	helperEnv     = "NODEPATCH_PRIVILEGE_HELPER"
	helperBusEnv  = "NODEPATCH_PRIVILEGE_BUS"
	helperOutEnv  = "NODEPATCH_PRIVILEGE_OUTPUT"
	helperExitErr = 3
)

// privilegeHelper runs in the re-executed test binary; it never returns.
func privilegeHelper(mode string) {
	err := runPrivilegeHelper(mode)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(helperExitErr)
	}
	os.Exit(0)
}

func runPrivilegeHelper(mode string) error {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	fmt.Printf("uid=%d euid=%d\n", os.Getuid(), os.Geteuid())
	for _, line := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(line, "Cap") || strings.HasPrefix(line, "NoNewPrivs") {
			fmt.Println(line)
		}
	}
	bus := os.Getenv(helperBusEnv)
	// The bus folder is read-only, yet its socket accepts connections.
	probe := filepath.Join(filepath.Dir(strings.TrimPrefix(bus, "unix:path=")), "probe")
	if err := os.WriteFile(probe, nil, 0o644); err == nil {
		return fmt.Errorf("wrote %s: the bus folder is not read-only", probe)
	} else {
		fmt.Println("write to the bus folder:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	switch mode {
	case "run":
		r := &systemd.Runner{Address: bus, OutputDir: "/var/lib/nodepatch", LocalOutputDir: os.Getenv(helperOutEnv)}
		res, err := r.Run(ctx, host.Command{Name: "privilege-test", Args: []string{"/bin/sh", "-c", "echo ran-as-$(id -u)"}, Timeout: time.Minute})
		if err != nil {
			return err
		}
		fmt.Printf("exit=%d stdout=%s\n", res.ExitStatus, strings.TrimSpace(res.Stdout))
		return nil
	case "reboot":
		return (&reboot.Systemd{Address: bus, JobTimeout: 10 * time.Second}).Reboot(ctx)
	default:
		return fmt.Errorf("unknown helper mode %q", mode)
	}
}

// runHelper re-executes the test binary as the helper in the node's PID
// namespace, with the bus folder bound read-only, as uid with no capabilities.
func runHelper(t *testing.T, node *hostenv.Node, busDir, mode string, uid int) (string, error) {
	t.Helper()
	for _, prog := range []string{"nsenter", "unshare", "setpriv"} {
		hostenv.RequireCommand(t, prog, "util-linux")
	}
	self, err := os.Executable()
	require.NoError(t, err)
	// Traversable by any uid, so that only the bus decides who gets in.
	roBus := t.TempDir()
	for _, d := range []string{roBus, filepath.Dir(roBus)} {
		require.NoError(t, os.Chmod(d, 0o755))
	}
	id := strconv.Itoa(uid)
	script := `mount --bind "$1" "$2" && mount -o remount,bind,ro "$2" && shift 2 && exec "$@"`
	args := []string{"--target", strconv.Itoa(node.InitPID(t)), "--pid", "--",
		"unshare", "--mount", "--propagation", "private", "--",
		"sh", "-c", script, "sh", busDir, roBus,
		"setpriv", "--reuid=" + id, "--regid=" + id, "--clear-groups",
		"--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs", "--",
		self, "-test.run=^$"}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode,
		helperBusEnv+"=unix:path="+filepath.Join(roBus, "system_bus_socket"),
		helperOutEnv+"="+node.OutputDir)
	out, err := cmd.CombinedOutput()
	t.Logf("helper (%s, uid %d):\n%s", mode, uid, out)
	return string(out), err
}

func bootID(t *testing.T, node *hostenv.Node) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(node.Root(t), "proc/sys/kernel/random/boot_id"))
	require.NoError(t, err)
	return strings.TrimSpace(string(b))
}

func TestSystemdServesUID0WithoutCapabilities(t *testing.T) {
	machine := fmt.Sprintf("privtest-%d", os.Getpid())
	node := hostenv.StartNode(t, hostenv.NodeConfig{Name: machine})
	busDir := filepath.Dir(strings.TrimPrefix(node.BusAddress, "unix:path="))

	t.Run("another uid is refused", func(t *testing.T) {
		before := bootID(t, node)
		out, err := runHelper(t, node, busDir, "reboot", 65534)
		require.Error(t, err)
		require.Contains(t, out, "CapEff:\t0000000000000000")
		require.Regexp(t, `(?i)reboot: start reboot.target.*(permission denied|access denied|interactive authentication required)`, out)
		require.Equal(t, before, bootID(t, node), "the node rebooted")
	})

	t.Run("uid 0 runs a host command as a transient unit", func(t *testing.T) {
		out, err := runHelper(t, node, busDir, "run", 0)
		require.NoError(t, err)
		require.Contains(t, out, "CapEff:\t0000000000000000")
		require.Contains(t, out, "CapBnd:\t0000000000000000")
		require.Contains(t, out, "NoNewPrivs:\t1")
		require.Contains(t, out, "read-only file system")
		require.Contains(t, out, "exit=0 stdout=ran-as-0")
	})

	t.Run("uid 0 reboots the host", func(t *testing.T) {
		before := bootID(t, node)
		_, err := runHelper(t, node, busDir, "reboot", 0)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			pid := initPIDOf(machine)
			if pid == 0 {
				return false // between two boots
			}
			b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "root/proc/sys/kernel/random/boot_id"))
			return err == nil && strings.TrimSpace(string(b)) != before
		}, 2*time.Minute, 200*time.Millisecond, "the boot id did not change")
		node.WaitRunning(t, 2*time.Minute)
	})
}

// initPIDOf returns the PID (as seen here) of the systemd that systemd-nspawn
// runs for machine, or 0 when there is none, as between two boots.
func initPIDOf(machine string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	nspawn := map[string]bool{}
	parents := map[string]string{}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if filepath.Base(args[0]) == "systemd-nspawn" && slices.Contains(args, machine) {
			nspawn[e.Name()] = true
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		s := string(stat)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open || s[open+1:end] != "systemd" {
			continue
		}
		if f := strings.Fields(s[end+1:]); len(f) > 1 {
			parents[e.Name()] = f[1]
		}
	}
	for pid, parent := range parents {
		if nspawn[parent] {
			n, _ := strconv.Atoi(pid)
			return n
		}
	}
	return 0
}
