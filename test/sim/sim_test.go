package sim_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/sim"
)

const waitTimeout = 60 * time.Second

// TestSimulation shares one control plane with kwok between the subtests.
func TestSimulation(t *testing.T) {
	cp := harness.StartControlPlaneT(t, harness.Options{Kwok: true})
	t.Run("node goes down and comes back with a new boot id", func(t *testing.T) {
		testNodeDownAndUp(t, cp.Client)
	})
	// Before the next subtests leave nodes out of service.
	t.Run("watcher reports broken invariants", func(t *testing.T) {
		testWatcherInvariants(t, cp.Client)
	})
	t.Run("watcher keeps peaks and counts reboots", func(t *testing.T) {
		testWatcher(t, cp.Client)
	})
	t.Run("supervisor reboots hosts when asked", func(t *testing.T) {
		testSupervisor(t, cp)
	})
}

func testWatcherInvariants(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	ns := createNamespace(t, client, "invariants")
	w, err := sim.StartWatcher(ctx, client, ns)
	require.NoError(t, err)
	t.Cleanup(w.Stop)
	for _, name := range []string{"inv-a", "inv-b"} {
		_, err := sim.CreateNode(ctx, client, name, nil, name+"-boot")
		require.NoError(t, err)
	}
	w.SetLimit(1)
	createLease(t, client, ns, "nodepatch-lock-0", "inv-a")
	createLease(t, client, ns, "nodepatch-lock-1", "ghost") // not a Node: a free slot
	require.NoError(t, w.WaitFor(ctx, func() bool { return w.HolderOf("ghost") }))
	require.Empty(t, w.Violations(), "a holder that is no Node does not count")

	require.NoError(t, w.CheckRebootRequest(ctx, "inv-a"))
	require.Empty(t, w.Violations(), "inv-a holds a slot")
	require.NoError(t, w.CheckRebootRequest(ctx, "inv-b"))
	require.Len(t, w.Violations(), 1)
	require.Contains(t, w.Violations()[0].What, "inv-b asked for a reboot")

	updateNode(t, client, "inv-b", func(n *corev1.Node) { n.Spec.Unschedulable = true })
	require.NoError(t, w.ProtectCordon(ctx, "inv-b"))
	updateNode(t, client, "inv-b", func(n *corev1.Node) { n.Spec.Unschedulable = false })
	require.NoError(t, w.WaitFor(ctx, func() bool { return len(w.Violations()) == 2 }))
	require.Contains(t, w.Violations()[1].What, "the operator's cordon on inv-b was lifted")
	setLeaseHolder(t, client, ns, "nodepatch-lock-1", "inv-b")
	require.NoError(t, w.WaitFor(ctx, func() bool { return len(w.Violations()) == 3 }))
	require.Contains(t, w.Violations()[2].What, "2 slot holders [inv-a inv-b] over the limit 1")

	w.SetLimit(2)
	setLeaseHolder(t, client, ns, "nodepatch-lock-1", "")
	w.SetLimit(1)
	setLeaseHolder(t, client, ns, "nodepatch-lock-1", "inv-b")
	require.NoError(t, w.WaitFor(ctx, func() bool { return w.HolderOf("inv-b") }))
	require.Len(t, w.Violations(), 3, "the same breach is reported once")

	// Blind (a control plane restart): no bound checks until the cache has
	// caught up with the API server, then at once.
	w.Blind()
	_, err = sim.CreateNode(ctx, client, "inv-c", nil, "inv-c-boot")
	require.NoError(t, err)
	createLease(t, client, ns, "nodepatch-lock-2", "inv-c")
	require.NoError(t, w.WaitFor(ctx, func() bool { return w.HolderOf("inv-c") }))
	require.Len(t, w.Violations(), 3, "blind")
	require.NoError(t, w.CatchUp(ctx))
	require.Len(t, w.Violations(), 4)
	require.Contains(t, w.Violations()[3].What, "3 slot holders [inv-a inv-b inv-c] over the limit 1")
}

func testNodeDownAndUp(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	host, err := sim.NewHost(t.TempDir(), "down-up")
	require.NoError(t, err)
	firstBoot, err := host.BootID()
	require.NoError(t, err)
	node, err := sim.CreateNode(ctx, client, "down-up", map[string]string{"role": "test"}, firstBoot)
	require.NoError(t, err)
	require.True(t, sim.IsReady(node))
	require.Equal(t, firstBoot, node.Status.NodeInfo.BootID)
	require.Equal(t, "test", node.Labels["role"])
	for _, taint := range node.Spec.Taints {
		require.NotEqual(t, corev1.TaintNodeNotReady, taint.Key, "a Ready node has no not-ready taint")
	}

	require.NoError(t, sim.SetDown(ctx, client, "down-up", true))
	require.NoError(t, sim.WaitNodeReady(ctx, client, "down-up", false))
	require.NoError(t, sim.SetBootID(ctx, client, "down-up", "second-boot"))
	require.NoError(t, sim.SetDown(ctx, client, "down-up", false))
	require.NoError(t, sim.WaitNodeReady(ctx, client, "down-up", true))

	node, err = client.CoreV1().Nodes().Get(ctx, "down-up", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, "second-boot", node.Status.NodeInfo.BootID, "kwok kept the boot id set while down")
	require.NotContains(t, node.Annotations, harness.DownAnnotation)
}

func testWatcher(t *testing.T, client kubernetes.Interface) {
	ctx := t.Context()
	ns := createNamespace(t, client, "watcher")
	w, err := sim.StartWatcher(ctx, client, ns)
	require.NoError(t, err)
	t.Cleanup(w.Stop)

	// Two slots held by two nodes at once, then one released.
	createLease(t, client, ns, "nodepatch-lock-0", "node-a")
	createLease(t, client, ns, "nodepatch-lock-1", "node-b")
	createLease(t, client, ns, "unrelated", "node-c") // no lock label: not counted
	require.NoError(t, w.WaitFor(ctx, func() bool { return w.MaxHolders() == 2 }))
	setLeaseHolder(t, client, ns, "nodepatch-lock-1", "")
	require.NoError(t, w.WaitFor(ctx, func() bool { return len(w.Holders()) == 1 }))
	require.Equal(t, []string{"node-a"}, w.Holders())
	require.Equal(t, 2, w.MaxHolders(), "the peak is remembered")

	testWatcherNodes(t, client, w)
}

func testWatcherNodes(t *testing.T, client kubernetes.Interface, w *sim.Watcher) {
	ctx := t.Context()
	for _, name := range []string{"watch-a", "watch-b"} {
		_, err := sim.CreateNode(ctx, client, name, nil, name+"-boot-1")
		require.NoError(t, err)
	}
	updateNode(t, client, "watch-a", func(n *corev1.Node) {
		n.Spec.Taints = append(n.Spec.Taints, corev1.Taint{Key: sim.RebootingTaint, Effect: corev1.TaintEffectNoSchedule})
	})
	updateNode(t, client, "watch-b", func(n *corev1.Node) { n.Annotations[sim.CordonedAnnotation] = "true" })
	require.NoError(t, w.WaitFor(ctx, func() bool { return w.MaxCordoned() == 2 }))
	require.Equal(t, []string{"watch-a", "watch-b"}, w.Cordoned())

	require.NoError(t, sim.SetBootID(ctx, client, "watch-a", "watch-a-boot-2"))
	require.NoError(t, w.WaitFor(ctx, func() bool { return w.RebootCompletions("watch-a") == 1 }))
	require.Equal(t, 0, w.RebootCompletions("watch-b"))
}

func testSupervisor(t *testing.T, cp *harness.ControlPlane) {
	ctx := t.Context()
	sup, err := sim.NewSupervisor(cp.Client, sim.Options{
		Binary:         writeStandInAgent(t),
		Kubeconfig:     cp.AdminKubeconfig,
		Namespace:      "default",
		Dir:            t.TempDir(),
		RebootDuration: 200 * time.Millisecond,
		Log:            harness.NewTestLogWriter(t),
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, sup.Stop()) })
	host, err := sup.AddNode(ctx, "sup-a", nil)
	require.NoError(t, err)
	firstBoot, err := host.BootID()
	require.NoError(t, err)
	require.NoError(t, sup.StartAgent("sup-a"))

	require.NoError(t, host.SetRebootRequired())
	require.Eventually(t, func() bool { return sup.Reboots("sup-a") == 1 }, waitTimeout, 50*time.Millisecond)
	secondBoot, err := host.BootID()
	require.NoError(t, err)
	require.NotEqual(t, firstBoot, secondBoot)
	require.False(t, host.RebootRequired(), "the reboot cleared the sentinel")
	require.NoError(t, sim.WaitNodeReady(ctx, cp.Client, "sup-a", true))
	node, err := cp.Client.CoreV1().Nodes().Get(ctx, "sup-a", metav1.GetOptions{})
	require.NoError(t, err)
	require.Equal(t, secondBoot, node.Status.NodeInfo.BootID)
	require.Eventually(t, func() bool { return sup.AgentStarts("sup-a") == 2 && sup.AgentRunning("sup-a") },
		waitTimeout, 50*time.Millisecond, "the agent starts again after the reboot")

	testFailedReboot(t, sup, host, secondBoot)
	testKillAndRestart(t, sup)
	require.NoError(t, sup.Err())
}

func testFailedReboot(t *testing.T, sup *sim.Supervisor, host *sim.Host, bootID string) {
	require.NoError(t, sup.SetFailReboot("sup-a", true))
	require.NoError(t, host.SetRebootRequired())
	require.Eventually(t, func() bool { return sup.IgnoredRebootRequests("sup-a") >= 2 }, waitTimeout, 50*time.Millisecond)
	require.Equal(t, 1, sup.Reboots("sup-a"))
	require.True(t, sup.AgentRunning("sup-a"), "a failed reboot leaves the agent running")
	current, err := host.BootID()
	require.NoError(t, err)
	require.Equal(t, bootID, current)
	require.True(t, host.RebootRequired())
	require.NoError(t, os.Remove(host.SentinelPath()))
}

func testKillAndRestart(t *testing.T, sup *sim.Supervisor) {
	starts := sup.AgentStarts("sup-a")
	require.NoError(t, sup.KillAgent("sup-a"))
	require.False(t, sup.AgentRunning("sup-a"))
	require.NoError(t, sup.RestartAgent("sup-a"))
	require.True(t, sup.AgentRunning("sup-a"))
	require.Equal(t, starts+1, sup.AgentStarts("sup-a"))
	require.Eventually(t, func() bool {
		logText, err := sup.AgentLog("sup-a")
		return err == nil && strings.Count(logText, "stand-in agent started") == starts+1
	}, waitTimeout, 50*time.Millisecond, "every run of the agent logs to the same file")
}

// writeStandInAgent writes a shell script that takes the agent's command
// line and runs the reboot command whenever the sentinel exists: enough to
// test the supervisor without the real agent.
func writeStandInAgent(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "agent.sh")
	script := `#!/bin/sh
for arg in "$@"; do
  case "$arg" in
    --sentinel-file=*) sentinel="${arg#*=}" ;;
    --reboot-command=*) reboot="${arg#*=}" ;;
  esac
done
echo "stand-in agent started: $*"
while :; do
  if [ -e "$sentinel" ]; then sh -c "$reboot"; fi
  sleep 0.05
done
`
	require.NoError(t, os.WriteFile(path, []byte(script), 0o755))
	return path
}

func createNamespace(t *testing.T, client kubernetes.Interface, prefix string) string {
	t.Helper()
	ns, err := client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	return ns.Name
}

func createLease(t *testing.T, client kubernetes.Interface, ns, name, holder string) {
	t.Helper()
	labels := map[string]string{sim.LockLabel: "nodepatch-lock"}
	if name == "unrelated" {
		labels = nil
	}
	_, err := client.CoordinationV1().Leases(ns).Create(t.Context(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To(holder)},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

func setLeaseHolder(t *testing.T, client kubernetes.Interface, ns, name, holder string) {
	t.Helper()
	lease, err := client.CoordinationV1().Leases(ns).Get(t.Context(), name, metav1.GetOptions{})
	require.NoError(t, err)
	lease.Spec.HolderIdentity = ptr.To(holder)
	_, err = client.CoordinationV1().Leases(ns).Update(t.Context(), lease, metav1.UpdateOptions{})
	require.NoError(t, err)
}

func updateNode(t *testing.T, client kubernetes.Interface, name string, change func(*corev1.Node)) {
	t.Helper()
	require.Eventually(t, func() bool {
		node, err := client.CoreV1().Nodes().Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		change(node)
		_, err = client.CoreV1().Nodes().Update(t.Context(), node, metav1.UpdateOptions{})
		return err == nil
	}, waitTimeout, 50*time.Millisecond, "update node %s", name)
}
