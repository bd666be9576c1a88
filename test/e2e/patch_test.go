package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/test/hostenv"
)

// aptNode gives node-0's agent a real apt to patch with: a bare root managed
// through APT_CONFIG (which the agents inherit), with foo and kubelet 1.0
// installed. The root's /run is the simulated host's folder, as a Debian host's
// /var/run is /run (a tmpfs): a postinst's reboot-required lands where the agent
// looks, and the simulated reboot clears it.
func aptNode(t *testing.T, flags ...string) (*cluster, *hostenv.AptRoot, *hostenv.AptRepo) {
	dir := t.TempDir()
	repo := hostenv.NewAptRepo(t, filepath.Join(dir, "security"), "Debian-Security", "bookworm-security")
	repo.Add(t, hostenv.Deb{Name: "foo", Version: "1.0"}, hostenv.Deb{Name: "kubelet", Version: "1.0"})
	repo.Publish(t)
	root := hostenv.NewAptRoot(t, repo)
	root.AptGet(t, "update")
	root.AptGet(t, "install", "foo", "kubelet")
	for _, kv := range root.Env() {
		name, value, _ := strings.Cut(kv, "=")
		t.Setenv(name, value)
	}
	c := newCluster(t, setup{nodes: 1, noAgents: true, flags: append([]string{"--patch=security"}, flags...)})
	run := filepath.Join(root.Root, "run")
	require.NoError(t, os.RemoveAll(run))
	require.NoError(t, os.Symlink(c.sup.Host("node-0").Dir, run))
	return c, root, repo
}

// TestPatchThenRebootCycle: a security update whose postinst asks for a reboot
// is applied, the agent sees the sentinel with the package's name, and the node
// goes through the cycle. The excluded kubelet stays at its version.
func TestPatchThenRebootCycle(t *testing.T) {
	c, root, repo := aptNode(t)
	repo.Add(t, hostenv.Deb{Name: "foo", Version: "1.1", RebootRequired: true}, hostenv.Deb{Name: "kubelet", Version: "1.1"})
	repo.Publish(t)
	require.NoError(t, c.sup.StartAgents())

	require.Contains(t, c.waitEvent("node-0", "PatchSucceeded"), "foo")
	require.Contains(t, c.waitEvent("node-0", "RebootRequired"), "foo")
	c.waitRebooted(1, "node-0")
	require.Equal(t, "1.1", root.Version(t, "foo"))
	require.Equal(t, "1.0", root.Version(t, "kubelet"), "an excluded runtime package was upgraded")
	require.NotEmpty(t, c.node("node-0").Annotations["nodepatch.io/last-patch"])
	require.Equal(t, 1, c.sup.Reboots("node-0"))
}

// TestPatchUnderLockWithoutReboot: with --patch-under-lock the update is applied
// only after the drain; one that needs no reboot ends the cycle without one.
func TestPatchUnderLockWithoutReboot(t *testing.T) {
	c, root, repo := aptNode(t, "--patch-under-lock")
	c.addWorkload("node-0", "web", 2, 2)
	repo.Add(t, hostenv.Deb{Name: "foo", Version: "1.1"})
	repo.Publish(t)
	require.NoError(t, c.sup.StartAgents())

	c.waitEvent("node-0", "PatchedUnderLock")
	c.waitFor("the node to be back in service", 30*time.Second, func() bool {
		n := c.node("node-0")
		return !n.Spec.Unschedulable && !nodeops.HasTaint(n) && len(c.watcher.Holders()) == 0
	})
	require.Equal(t, "1.1", root.Version(t, "foo"))
	require.Zero(t, c.sup.Reboots("node-0"), "rebooted though nothing asked for it")
	require.Zero(t, c.podsOn("node-0"), "the update was applied without a drain")
	require.Equal(t, 1, c.watcher.MaxCordoned())
	log, err := c.sup.AgentLog("node-0")
	require.NoError(t, err)
	cycle, patched := strings.Index(log, `"reason":"CycleStarted"`), strings.Index(log, `"reason":"PatchSucceeded"`)
	require.True(t, cycle >= 0 && patched > cycle, "the update was not applied inside the cycle")
}
