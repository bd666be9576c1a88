package realnode

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/reboot"
)

// TestNodeRebootsAndComesBack checks the harness itself: a real node turns
// Ready, reboots through its own systemd over D-Bus, and its real kubelet
// reports the new boot id and Ready again. The cleanups check that the machine
// keeps its sysctls, mounts and cgroups.
func TestNodeRebootsAndComesBack(t *testing.T) {
	c := StartClusterT(t, "rn-harness")
	n := c.StartNodeT(t, NodeOptions{Name: "rn-harness"})
	before, err := n.BootID()
	require.NoError(t, err)

	start := time.Now()
	require.NoError(t, (&reboot.Systemd{Address: n.BusAddress, JobTimeout: 10 * time.Second}).Reboot(t.Context()))
	require.NoError(t, n.WaitReadyAfter(t.Context(), before, 2*time.Minute), "node console:\n%s", n.Tail())
	after, err := n.BootID()
	require.NoError(t, err)
	require.NotEqual(t, before, after, "the boot id did not change")
	t.Logf("real node reboot: request to Ready from the new boot in %s", time.Since(start).Round(10*time.Millisecond))
}
