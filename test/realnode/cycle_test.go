package realnode

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/pkg/host/systemd"
	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/hostenv"
	"github.com/nodepatch/nodepatch/test/sim"
)

const (
	cycleNode = "rn-cycle"
	agentNS   = "nodepatch"
	workNS    = "work"
	updatePkg = "realnode-kernel"
)

// TestChartPatchesAndRebootsARealNode installs the chart with helm on a real
// node (kubelet, containerd, systemd) and follows one whole cycle: the agent
// upgrades a security update with apt through a transient unit, the update's
// postinst asks for a reboot, the agent takes the lock, taints, cordons and
// drains (a Deployment guarded by a PodDisruptionBudget), reboots the node
// through its systemd over D-Bus, sees the kubelet come back from the new
// boot, and untaints, uncordons and releases. Then a forced reboot, during
// which a helm upgrade changes a value and so replaces the agent's pod; and
// helm uninstall with the cleanup of docs/operations.md leaves nothing behind.
func TestChartPatchesAndRebootsARealNode(t *testing.T) {
	c := StartClusterT(t, cycleNode)
	repoDir := filepath.Join(t.TempDir(), "repo")
	repo := hostenv.NewAptRepo(t, repoDir, "Debian-Security", "bookworm-security")
	repo.Add(t, hostenv.Deb{Name: updatePkg, Version: "1.0"})
	repo.Publish(t)
	n := c.StartNodeT(t, NodeOptions{
		Name:    cycleNode,
		ROBinds: []string{repoDir + ":/srv/repo"},
		// The only apt source: a local folder.
		Files: map[string]string{"/etc/apt/sources.list": repo.SourceLine("/srv/repo") + "\n"},
	})
	installOldVersion(t, n)
	repo.Add(t, hostenv.Deb{Name: updatePkg, Version: "1.1", RebootRequired: true})
	repo.Publish(t)

	ctx := t.Context()
	client := c.CP.Client
	createNamespace(t, client, agentNS, map[string]string{"pod-security.kubernetes.io/enforce": "privileged"})
	watcher, err := sim.StartWatcher(ctx, client, agentNS)
	require.NoError(t, err)
	t.Cleanup(watcher.Stop)
	timeline, err := StartTimeline(ctx, client, cycleNode, agentNS)
	require.NoError(t, err)
	t.Cleanup(timeline.Stop)
	workPod := startWorkload(t, client)
	bootBefore, err := n.BootID()
	require.NoError(t, err)

	helm := helmFor(t, c.CP)
	installed := time.Now()
	// One node, so no rollout controller (TestChartRollsTwoRealNodes runs
	// it): both its replicas would be here, and its PodDisruptionBudget would
	// hold the second eviction until the first replica ran again, which it
	// cannot while the only node is cordoned.
	helm(append([]string{"install", "nodepatch", ct.ChartDir(t), "--wait=false", "--set", "controller.enabled=false"}, testNetworkValues(t, c.CP)...)...)
	agentPod := waitAgentRunning(t, client, 3*time.Minute)
	agentUp := time.Now()

	waitCycleDone(t, client, timeline, 5*time.Minute, n)
	done := time.Now()
	bootAfter, err := n.BootID()
	require.NoError(t, err)
	require.NotEqual(t, bootBefore, bootAfter, "the node did not reboot")
	requireUpgraded(t, n)
	requireWorkloadMoved(t, client, workPod)
	require.Equal(t, 1, watcher.MaxHolders(), "lock holders at once")
	require.Equal(t, 1, watcher.MaxCordoned(), "nodes out of service at once")
	require.Equal(t, 1, watcher.RebootCompletions(cycleNode), "reboots the watcher saw")
	logPhases(t, timeline, installed, agentUp, done)
	requireReleasedAfterUncordon(t, timeline)
	requireAgentLog(t, n, agentPod, "reboot")

	t.Run("helm upgrade in the middle of a forced reboot", func(t *testing.T) {
		forcedCycleWithUpgrade(t, c, n, watcher, helm)
	})
	t.Run("helm uninstall and the documented cleanup", func(t *testing.T) {
		uninstall(t, c, n, helm)
	})
}

// forcedCycleWithUpgrade forces a second reboot and, once the node is going
// down, upgrades the release to a changed value: the DaemonSet replaces the
// agent pod in the middle of the cycle, and the new agent finishes it from the
// Node's annotations (docs/operations.md#upgrade).
func forcedCycleWithUpgrade(t *testing.T, c *Cluster, n *Node, watcher *sim.Watcher, helm func(args ...string) string) {
	ctx := t.Context()
	client := c.CP.Client
	tl, err := StartTimeline(ctx, client, cycleNode, agentNS)
	require.NoError(t, err)
	defer tl.Stop()
	patch := `{"metadata":{"annotations":{"nodepatch.io/force-reboot":"true"}}}`
	_, err = client.CoreV1().Nodes().Patch(ctx, cycleNode, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(t, err)
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		_, ok := tl.At(EventRebooting)
		return ok, nil
	})
	require.NoError(t, err, "the forced reboot did not start; agent log:\n%s", agentLogTail(n))
	upgraded := time.Now()
	helm("upgrade", "nodepatch", ct.ChartDir(t), "--reuse-values", "--set", "agent.logFormat=json")
	waitCycleDone(t, client, tl, 5*time.Minute, n)
	pod := waitAgentWithArg(t, client, "--log-format=json", 3*time.Minute)
	// The new pod, not the one the upgrade replaced, finished the cycle.
	requireAgentLog(t, n, pod, `"reason":"RebootSucceeded"`)
	node, err := client.CoreV1().Nodes().Get(ctx, cycleNode, metav1.GetOptions{})
	require.NoError(t, err)
	require.NotContains(t, node.Annotations, "nodepatch.io/force-reboot", "the force annotation outlived its reboot")
	require.Equal(t, 2, watcher.RebootCompletions(cycleNode), "reboots the watcher saw")
	require.Equal(t, 1, watcher.MaxHolders(), "lock holders at once")
	require.Equal(t, 1, watcher.MaxCordoned(), "nodes out of service at once")
	out, err := tl.Between(EventTainted, EventUntainted)
	require.NoError(t, err)
	t.Logf("measured: forced reboot with the agent pod replaced mid-cycle: out of service %s; upgrade to cycle done %s",
		out.Round(10*time.Millisecond), time.Since(upgraded).Round(10*time.Millisecond))
}

// testNetworkValues are the chart values this test network needs, and only
// those: the image built here (never pulled), the node's test taint, and, as
// the node has no pod network and no kube-proxy, the host's network namespace
// with the API server's loopback address for the in-cluster config.
func testNetworkValues(t *testing.T, cp *harness.ControlPlane) []string {
	t.Helper()
	u, err := url.Parse(cp.URL)
	require.NoError(t, err)
	return []string{
		"--set", "image.repository=" + strings.Split(AgentImage, ":")[0],
		"--set", "image.tag=" + strings.Split(AgentImage, ":")[1],
		"--set", "image.pullPolicy=Never",
		"--set", "hostNetwork=true",
		"--set", "agent.extraEnv[0].name=KUBERNETES_SERVICE_HOST", "--set", "agent.extraEnv[0].value=" + u.Hostname(),
		"--set", "agent.extraEnv[1].name=KUBERNETES_SERVICE_PORT", "--set-string", "agent.extraEnv[1].value=" + u.Port(),
		"--set", "extraTolerations[0].key=" + TestTaintKey, "--set", "extraTolerations[0].operator=Exists",
		// The rollout controller, where it runs, likewise, with its metrics on
		// a port of the host the agent leaves free.
		"--set", "controller.hostNetwork=true", "--set", "controller.metricsPort=8081",
		"--set", "controller.extraEnv[0].name=KUBERNETES_SERVICE_HOST", "--set", "controller.extraEnv[0].value=" + u.Hostname(),
		"--set", "controller.extraEnv[1].name=KUBERNETES_SERVICE_PORT", "--set-string", "controller.extraEnv[1].value=" + u.Port(),
		"--set", "controller.tolerations[0].key=" + TestTaintKey, "--set", "controller.tolerations[0].operator=Exists",
	}
}

func helmFor(t *testing.T, cp *harness.ControlPlane) func(args ...string) string {
	return func(args ...string) string {
		t.Helper()
		out, stderr, err := ct.Run(t, append(args, "--kubeconfig", cp.AdminKubeconfig, "--namespace", agentNS)...)
		require.NoError(t, err, "helm %s: %s", strings.Join(args, " "), stderr)
		return out
	}
}

// nodeRunner runs commands on the node through its systemd, as the agent
// does, with their output in outDir (a folder of the node; "" is
// /var/lib/nodepatch, bound out at n.OutputDir).
func nodeRunner(n *Node, outDir string) (*systemd.Runner, error) {
	if outDir == "" {
		return &systemd.Runner{Address: n.BusAddress, OutputDir: "/var/lib/nodepatch", LocalOutputDir: n.OutputDir, UnitPrefix: "realnode-"}, nil
	}
	root, err := n.RootDir()
	if err != nil {
		return nil, err
	}
	return &systemd.Runner{Address: n.BusAddress, OutputDir: outDir, LocalOutputDir: filepath.Join(root, outDir), UnitPrefix: "realnode-"}, nil
}

func runOnNodeIn(t *testing.T, n *Node, outDir string, args ...string) host.Result {
	t.Helper()
	r, err := nodeRunner(n, outDir)
	require.NoError(t, err)
	res, err := r.Run(t.Context(), host.Command{Name: "setup", Args: args, Timeout: 2 * time.Minute,
		Env: []string{"DEBIAN_FRONTEND=noninteractive"}})
	require.NoError(t, err)
	return res
}

func runOnNode(t *testing.T, n *Node, args ...string) string {
	t.Helper()
	res := runOnNodeIn(t, n, "", args...)
	require.Equal(t, 0, res.ExitStatus, "%s: %s", strings.Join(args, " "), res.Output)
	return res.Stdout
}

func installOldVersion(t *testing.T, n *Node) {
	t.Helper()
	runOnNode(t, n, "/usr/bin/apt-get", "-q", "update")
	runOnNode(t, n, "/usr/bin/apt-get", "-q", "-y", "install", updatePkg)
	require.Equal(t, "1.0", strings.TrimSpace(runOnNode(t, n, "/usr/bin/dpkg-query", "-W", "-f=${Version}", updatePkg)))
}

func requireUpgraded(t *testing.T, n *Node) {
	t.Helper()
	require.Equal(t, "1.1", strings.TrimSpace(runOnNode(t, n, "/usr/bin/dpkg-query", "-W", "-f=${Version}", updatePkg)),
		"the agent did not upgrade the security update")
	// The sentinel lived in the old boot's /run.
	runOnNode(t, n, "/bin/sh", "-c", "! test -e /run/reboot-required")
}

func createNamespace(t *testing.T, client kubernetes.Interface, name string, labels map[string]string) {
	t.Helper()
	_, err := client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// startWorkload runs a one-replica Deployment on the node, guarded by a
// PodDisruptionBudget that allows one eviction, and returns its pod's UID.
func startWorkload(t *testing.T, client kubernetes.Interface) string {
	t.Helper()
	maxUnavailable := intstr.FromInt32(1)
	pods := createWorkload(t, client, 1, policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &maxUnavailable})
	return string(pods[0].UID)
}

// createWorkload runs a Deployment of hostNetwork pause pods that tolerate
// the test taint, with a PodDisruptionBudget, and returns its pods once
// replicas of them run.
func createWorkload(t *testing.T, client kubernetes.Interface, replicas int32, budget policyv1.PodDisruptionBudgetSpec) []corev1.Pod {
	t.Helper()
	ctx := t.Context()
	createNamespace(t, client, workNS, nil)
	labels := map[string]string{"app": "work"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "work", Namespace: workNS},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					HostNetwork: true, // no pod network on this node
					Tolerations: []corev1.Toleration{{Key: TestTaintKey, Operator: corev1.TolerationOpExists}},
					Containers: []corev1.Container{{
						Name: "work", Image: PauseImage, ImagePullPolicy: corev1.PullNever,
					}},
				},
			},
		},
	}
	_, err := client.AppsV1().Deployments(workNS).Create(ctx, dep, metav1.CreateOptions{})
	require.NoError(t, err)
	budget.Selector = &metav1.LabelSelector{MatchLabels: labels}
	_, err = client.PolicyV1().PodDisruptionBudgets(workNS).Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "work", Namespace: workNS}, Spec: budget,
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	var running []corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods(workNS).List(ctx, metav1.ListOptions{LabelSelector: "app=work"})
		if err != nil {
			return false, nil
		}
		running = running[:0]
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
				running = append(running, p)
			}
		}
		return len(running) == int(replicas), nil
	})
	require.NoError(t, err, "waiting for %d workload pods to run", replicas)
	return running
}

// requireWorkloadMoved checks that the drain evicted the workload's pod and
// the Deployment has a running pod again once the node is back.
func requireWorkloadMoved(t *testing.T, client kubernetes.Interface, before string) {
	t.Helper()
	pod := waitPod(t, client, workNS, "app=work", "the workload running again", 2*time.Minute, func(p *corev1.Pod) bool {
		return p.Status.Phase == corev1.PodRunning && string(p.UID) != before
	})
	require.Equal(t, cycleNode, pod.Spec.NodeName)
}

// waitPod waits for a pod matching selector that satisfies ok.
func waitPod(t *testing.T, client kubernetes.Interface, ns, selector, what string, timeout time.Duration, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, nil
		}
		for i := range pods.Items {
			if p := &pods.Items[i]; p.DeletionTimestamp == nil && ok(p) {
				found = p
				return true, nil
			}
		}
		return false, nil
	})
	require.NoError(t, err, "waiting for %s", what)
	return found
}

const agentSelector = "app.kubernetes.io/name=nodepatch"

func waitAgentRunning(t *testing.T, client kubernetes.Interface, timeout time.Duration) *corev1.Pod {
	t.Helper()
	return waitPod(t, client, agentNS, agentSelector, "the agent pod running and ready", timeout, podReady)
}

func waitAgentWithArg(t *testing.T, client kubernetes.Interface, arg string, timeout time.Duration) *corev1.Pod {
	t.Helper()
	return waitPod(t, client, agentNS, agentSelector, "an agent pod with "+arg, timeout, func(p *corev1.Pod) bool {
		return podReady(p) && slices.Contains(p.Spec.Containers[0].Args, arg)
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitCycleDone waits until the timeline has seen the whole cycle and the
// node is clean again: no phase, taint, cordon or lock holder.
func waitCycleDone(t *testing.T, client kubernetes.Interface, tl *Timeline, timeout time.Duration, n *Node) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		for _, e := range []string{EventDraining, EventRebooting, EventReadyNewBoot, EventUntainted, EventLockReleased} {
			if _, ok := tl.At(e); !ok {
				last = "not yet seen: " + e
				return false, nil
			}
		}
		node, err := client.CoreV1().Nodes().Get(ctx, tl.node, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		if p := node.Annotations[phaseAnnotation]; p != "" {
			last = "phase " + p
			return false, nil
		}
		return true, nil
	})
	require.NoError(t, err, "the cycle of %s did not finish (%s); agent log:\n%s\nnode console:\n%s", tl.node, last, agentLogTail(n), n.Tail())
}

// requireReleasedAfterUncordon: the slot is handed on only once the node is
// back in service, so a second node cannot start while this one is out.
func requireReleasedAfterUncordon(t *testing.T, tl *Timeline) {
	t.Helper()
	before, err := tl.Before(EventUntainted, EventLockReleased)
	require.NoError(t, err)
	require.True(t, before, "the lock of %s was released before its node was untainted and uncordoned:\n%s", tl.node, tl.Log())
}

// logPhases prints the measured durations, one line each, for the record.
// Node and Lease events come through separate watches, so two steps made
// one after the other by the agent can show up a few milliseconds apart in
// either order.
func logPhases(t *testing.T, tl *Timeline, installed, agentUp, done time.Time) {
	t.Helper()
	t.Logf("measured: helm install to agent pod Ready (readiness probe every 10s): %s", agentUp.Sub(installed).Round(10*time.Millisecond))
	locked, ok := tl.At(EventLockTaken)
	require.True(t, ok)
	t.Logf("measured: helm install to lock taken (agent start; apt update, download and upgrade through transient units; reboot check): %s",
		locked.Sub(installed).Round(10*time.Millisecond))
	for _, p := range [][3]string{
		{"lock taken to tainted and cordoned", EventLockTaken, EventDraining},
		{"drain (one pod evicted, its PodDisruptionBudget allowing it)", EventDraining, EventRebooting},
		{"reboot request to the kubelet reporting the new boot id, Ready", EventRebooting, EventReadyNewBoot},
		{"new boot Ready to untainted and uncordoned (the agent restarted in its pod)", EventReadyNewBoot, EventUntainted},
		{"untainted and uncordoned to lock released", EventUntainted, EventLockReleased},
		{"OUT OF SERVICE (taint on to taint off)", EventTainted, EventUntainted},
	} {
		d, err := tl.Between(p[1], p[2])
		require.NoError(t, err)
		t.Logf("measured: %s: %s", p[0], d.Round(10*time.Millisecond))
	}
	t.Logf("measured: helm install to cycle done: %s", done.Sub(installed).Round(10*time.Millisecond))
}

// agentLogFiles are the agent container's log files in the node's
// /var/log/pods (the API server cannot proxy to this node's kubelet).
func agentLogFiles(n *Node, pod *corev1.Pod) ([]string, error) {
	root, err := n.RootDir()
	if err != nil {
		return nil, err
	}
	pattern := "var/log/pods/*_nodepatch-*/agent/*.log"
	if pod != nil {
		pattern = fmt.Sprintf("var/log/pods/%s_%s_%s/agent/*.log", pod.Namespace, pod.Name, pod.UID)
	}
	return filepath.Glob(filepath.Join(root, pattern))
}

func readAgentLogs(n *Node, pod *corev1.Pod) string {
	files, err := agentLogFiles(n, pod)
	if err != nil {
		return "(no agent log: " + err.Error() + ")"
	}
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintf(&b, "(%s: %v)\n", f, err)
			continue
		}
		fmt.Fprintf(&b, "--- %s\n%s", filepath.Base(filepath.Dir(filepath.Dir(f))), data)
	}
	return b.String()
}

func agentLogTail(n *Node) string { return host.Tail([]byte(readAgentLogs(n, nil)), 12000) }

func requireAgentLog(t *testing.T, n *Node, pod *corev1.Pod, want string) {
	t.Helper()
	logs := readAgentLogs(n, pod)
	require.Contains(t, logs, want, "agent log in the node's /var/log/pods")
	t.Logf("agent log (from the node's /var/log/pods), last part:\n%s", host.Tail([]byte(logs), 6000))
}

// uninstall follows docs/operations.md#uninstall: pause, wait until idle,
// helm uninstall, delete the Leases, clear the Node annotations, remove the
// host folder; then checks that nothing of nodepatch is left.
func uninstall(t *testing.T, c *Cluster, n *Node, helm func(args ...string) string) {
	ctx := t.Context()
	cli := harness.BuildNodepatchT(t)
	nodepatch := func(args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, cli, append(args, "--kubeconfig", c.CP.AdminKubeconfig, "--namespace", agentNS)...)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "nodepatch %s: %s", strings.Join(args, " "), out)
		return string(out)
	}
	nodepatch("pause", "--reason", "uninstalling")
	t.Logf("nodepatch status before uninstall:\n%s", nodepatch("status"))
	helm("uninstall", "nodepatch", "--wait=false")
	// The documented wait for the agents to be gone, before what follows.
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 5*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.CP.Client.CoreV1().Pods(agentNS).List(ctx, metav1.ListOptions{LabelSelector: agentSelector})
		return err == nil && len(pods.Items) == 0, nil
	})
	require.NoError(t, err, "agent pods outlived the release")
	err = c.CP.Client.CoordinationV1().Leases(agentNS).DeleteCollection(ctx, metav1.DeleteOptions{},
		metav1.ListOptions{LabelSelector: "nodepatch.io/lock=nodepatch-lock"})
	require.NoError(t, err)
	clearAnnotations(t, c.CP.Client)
	// The documented command, with its own output elsewhere. In this node the
	// folder is a bind mount, which rm empties but cannot remove.
	res := runOnNodeIn(t, n, "/tmp", "/bin/rm", "-rf", "/var/lib/nodepatch")
	t.Logf("rm -rf /var/lib/nodepatch: exit %d %s", res.ExitStatus, strings.TrimSpace(res.Output))
	left, err := os.ReadDir(n.OutputDir)
	require.NoError(t, err)
	require.Empty(t, left, "files left in the host's /var/lib/nodepatch")

	_, err = c.CP.Client.AppsV1().DaemonSets(agentNS).Get(ctx, "nodepatch", metav1.GetOptions{})
	require.True(t, apierrors.IsNotFound(err), "the DaemonSet outlived the release: %v", err)
	node, err := c.CP.Client.CoreV1().Nodes().Get(ctx, cycleNode, metav1.GetOptions{})
	require.NoError(t, err)
	for k := range node.Annotations {
		require.False(t, strings.HasPrefix(k, "nodepatch.io/"), "annotation %s left on the Node", k)
	}
	require.False(t, node.Spec.Unschedulable)
	units := runOnNode(t, n, "/bin/systemctl", "list-units", "--all", "--plain", "--no-legend", "nodepatch-*")
	require.Empty(t, strings.TrimSpace(units), "nodepatch units left on the host")
}

// clearAnnotations removes from every Node the annotations that
// docs/operations.md's `kubectl annotate nodes --all ...` removes, read from
// that page, so that one it forgets is caught by the check after it.
func clearAnnotations(t *testing.T, client kubernetes.Interface) {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(ct.RepoRoot(t), "docs", "operations.md"))
	require.NoError(t, err)
	_, cmd, ok := strings.Cut(string(doc), "kubectl annotate nodes --all")
	require.True(t, ok, "docs/operations.md has no `kubectl annotate nodes --all`")
	cmd, _, _ = strings.Cut(cmd, "```")
	var drop []string
	for _, w := range strings.Fields(cmd) {
		if strings.HasPrefix(w, "nodepatch.io/") && strings.HasSuffix(w, "-") {
			drop = append(drop, fmt.Sprintf("%q:null", strings.TrimSuffix(w, "-")))
		}
	}
	require.NotEmpty(t, drop)
	patch := `{"metadata":{"annotations":{` + strings.Join(drop, ",") + `}}}`
	nodes, err := client.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	require.NoError(t, err)
	for _, node := range nodes.Items {
		_, err := client.CoreV1().Nodes().Patch(t.Context(), node.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		require.NoError(t, err)
	}
}
