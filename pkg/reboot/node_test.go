package reboot_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/pkg/host/packages"
	"github.com/nodepatch/nodepatch/pkg/host/systemd"
	"github.com/nodepatch/nodepatch/pkg/reboot"
	"github.com/nodepatch/nodepatch/test/hostenv"
)

// TestRealSystemdNode drives a real systemd, in a Debian bookworm node
// booted by systemd-nspawn, only through that node's own D-Bus socket, as
// the agent does on a host: apt-get runs inside it as transient units
// against a repository bound into it, the upgrade's postinst creates the
// reboot sentinel, the Detector sees it, the Systemd rebooter reboots the
// node, and the node comes back with a new boot id and no sentinel.
func TestRealSystemdNode(t *testing.T) {
	ctx := context.Background()
	repoDir := filepath.Join(t.TempDir(), "repo")
	repo := hostenv.NewAptRepo(t, repoDir, "Debian-Security", "bookworm-security")
	repo.Add(t, hostenv.Deb{Name: "nodepatch-kernel", Version: "1.0"})
	repo.Publish(t)

	node := hostenv.StartNode(t, hostenv.NodeConfig{
		Name:    "nodepatch-test-node",
		ROBinds: []string{repoDir + ":/srv/repo"},
		Files:   map[string]string{"/etc/apt/sources.list": repo.SourceLine("/srv/repo") + "\n"},
	})
	runner := &systemd.Runner{Address: node.BusAddress, OutputDir: "/var/lib/nodepatch", LocalOutputDir: node.OutputDir}
	run := func(args ...string) host.Result {
		t.Helper()
		res, err := runner.Run(ctx, host.Command{Name: "test", Args: args, Timeout: time.Minute})
		require.NoError(t, err)
		require.Equal(t, 0, res.ExitStatus, "%s: %s", strings.Join(args, " "), res.Output)
		return res
	}
	bootID := func() string {
		t.Helper()
		id, err := host.ParseBootID("a unit in the node", run("cat", "/proc/sys/kernel/random/boot_id").Stdout)
		require.NoError(t, err)
		viaProc, err := host.ReadBootID(node.Root(t) + "/proc/sys/kernel/random/boot_id")
		require.NoError(t, err)
		require.Equal(t, id, viaProc)
		return id
	}
	detector := func() host.RebootCheck {
		t.Helper()
		// The node's /var/run is an absolute link to /run: resolved in its
		// root, not in this machine's /run.
		d := &host.Detector{HostRoot: node.Root(t), SentinelFile: "/var/run/reboot-required"}
		check, err := d.RebootRequired(ctx)
		require.NoError(t, err)
		return check
	}

	m, err := packages.New(packages.Config{Kind: packages.KindApt, Runner: runner, Timeout: 5 * time.Minute})
	require.NoError(t, err)
	require.NoError(t, m.Refresh(ctx))
	run("apt-get", "-q", "-y", "install", "nodepatch-kernel")
	require.False(t, detector().Required)

	repo.Add(t, hostenv.Deb{Name: "nodepatch-kernel", Version: "1.1", RebootRequired: true})
	repo.Publish(t)
	require.NoError(t, m.Refresh(ctx))
	p, err := m.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, packages.Pending{All: 1, Security: 1, Packages: []string{"nodepatch-kernel"},
		SecurityPackages: []string{"nodepatch-kernel"}}, p)
	res, err := m.Upgrade(ctx, packages.ModeSecurity)
	require.NoError(t, err)
	require.Equal(t, []string{"nodepatch-kernel"}, res.Packages)

	check := detector()
	require.True(t, check.Required)
	require.Equal(t, []string{"nodepatch-kernel"}, check.Packages)

	before := bootID()
	r := &reboot.Systemd{Address: node.BusAddress, JobTimeout: 30 * time.Second}
	require.NoError(t, r.Reboot(ctx))

	// The node comes back: a new boot id, the upgrade kept, the sentinel
	// (in /run) gone.
	var after string
	require.Eventually(t, func() bool {
		res, err := runner.Run(ctx, host.Command{Name: "boot-id", Args: []string{"cat", "/proc/sys/kernel/random/boot_id"}, Timeout: 10 * time.Second})
		if err != nil || res.ExitStatus != 0 {
			return false
		}
		after, err = host.ParseBootID("a unit in the node", res.Stdout)
		return err == nil && after != before
	}, 2*time.Minute, 200*time.Millisecond, "no new boot id; console:\n%s", node.Tail())
	node.WaitRunning(t, 2*time.Minute)
	require.Equal(t, after, bootID())
	require.Contains(t, node.Tail(), "systemd-nspawn exited 133", "the node rebooted")
	require.False(t, detector().Required)
	require.Equal(t, "1.1", run("dpkg-query", "-W", "-f=${Version}", "nodepatch-kernel").Stdout)
}
