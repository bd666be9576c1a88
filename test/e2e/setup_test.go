// Package e2e runs real `nodepatch agent` processes against a real kube-apiserver,
// with kwok playing the kubelets and test/sim playing the hosts.
package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/sim"
)

const namespace = "nodepatch"

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// nodepatchBinary builds the agent once for the whole package.
func nodepatchBinary(t *testing.T) string {
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nodepatch-e2e-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath, binaryErr = harness.BuildNodepatch(context.Background(), dir)
	})
	require.NoError(t, binaryErr)
	return binaryPath
}

// cluster is one test's world: a control plane, simulated hosts, their agents and
// an independent watcher.
type cluster struct {
	t          *testing.T
	ctx        context.Context
	cp         *harness.ControlPlane
	client     kubernetes.Interface
	kubeconfig string
	sup        *sim.Supervisor
	watcher    *sim.Watcher
}

type setup struct {
	nodes       int
	concurrency int
	flags       []string
	nodeFlags   map[string][]string
	rebootTime  time.Duration
	failReboot  bool
	noAgents    bool
	// labels gives nodes labels (zones, roles), by name.
	labels map[string]map[string]string
	// defaultToken, when set, replaces the admin in the agents' default
	// kubeconfig: per-node --kubeconfig flags must then give each its own.
	defaultToken string
}

func newCluster(t *testing.T, s setup) *cluster {
	t.Helper()
	bin := nodepatchBinary(t)
	cp := harness.StartControlPlaneT(t, harness.Options{Kwok: true})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	_, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	require.NoError(t, err)
	// Without kube-controller-manager nobody creates the default ServiceAccount
	// that admission wants before it accepts a pod.
	_, err = cp.Client.CoreV1().ServiceAccounts("default").Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
	require.NoError(t, err)
	if s.concurrency == 0 {
		s.concurrency = 1
	}
	if s.rebootTime == 0 {
		s.rebootTime = time.Second
	}
	flags := append([]string{fmt.Sprintf("--concurrency=%d", s.concurrency), "--reboot-timeout=20s",
		"--drain-timeout=30s"}, s.flags...)
	kubeconfig := cp.AdminKubeconfig
	if s.defaultToken != "" {
		kubeconfig, err = cp.KubeconfigForToken(s.defaultToken)
		require.NoError(t, err)
	}
	sup, err := sim.NewSupervisor(cp.Client, sim.Options{
		Binary: bin, Kubeconfig: kubeconfig, Namespace: namespace, Dir: t.TempDir(),
		RebootDuration: s.rebootTime, FailReboot: s.failReboot, ExtraFlags: flags, NodeFlags: s.nodeFlags,
		Log: harness.NewTestLogWriter(t),
	})
	require.NoError(t, err)
	c := &cluster{t: t, ctx: ctx, cp: cp, client: cp.Client, kubeconfig: cp.AdminKubeconfig, sup: sup}
	t.Cleanup(func() {
		if t.Failed() {
			c.dumpAgentLogs()
		}
		require.NoError(t, sup.Stop())
		require.NoError(t, sup.Err(), "the simulated hosts met errors")
	})
	for i := range s.nodes {
		_, err := sup.AddNode(ctx, nodeName(i), s.labels[nodeName(i)])
		require.NoError(t, err)
	}
	c.watcher, err = sim.StartWatcher(ctx, cp.Client, namespace)
	require.NoError(t, err)
	if !s.noAgents {
		require.NoError(t, sup.StartAgents())
	}
	return c
}

func nodeName(i int) string { return fmt.Sprintf("node-%d", i) }

func (c *cluster) dumpAgentLogs() {
	for _, n := range c.sup.Nodes() {
		out, _ := c.sup.AgentLog(n)
		lines := strings.Split(out, "\n")
		if len(lines) > 60 {
			lines = lines[len(lines)-60:]
		}
		c.t.Logf("agent log of %s (tail):\n%s", n, strings.Join(lines, "\n"))
	}
}

func (c *cluster) node(name string) *corev1.Node {
	n, err := c.client.CoreV1().Nodes().Get(c.ctx, name, metav1.GetOptions{})
	require.NoError(c.t, err)
	return n
}

func (c *cluster) needReboot(names ...string) {
	for _, n := range names {
		require.NoError(c.t, c.sup.Host(n).SetRebootRequired())
	}
}

func (c *cluster) annotate(name, key string, value *string) {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, key)
	if value != nil {
		patch = fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, *value)
	}
	_, err := c.client.CoreV1().Nodes().Patch(c.ctx, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	require.NoError(c.t, err)
}

// waitFor waits for cond with a deadline, saying what it waited for when it fails.
func (c *cluster) waitFor(what string, timeout time.Duration, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-c.ctx.Done():
			c.t.Fatalf("test context ended waiting for %s", what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// waitRebooted waits until every named node has finished n reboots, by the supervisor's count.
func (c *cluster) waitRebooted(n int, names ...string) {
	c.t.Helper()
	for _, name := range names {
		c.waitFor(fmt.Sprintf("%s to finish %d reboot(s)", name, n), 2*time.Minute, func() bool {
			return c.sup.Reboots(name) >= n && c.cycleDone(name)
		})
	}
}

// cycleDone: the node is idle, untainted, not cordoned by nodepatch and holds no slot.
func (c *cluster) cycleDone(name string) bool {
	n := c.node(name)
	st, _ := state.Parse(n.Annotations)
	return st.Phase == state.PhaseIdle && !nodeops.HasTaint(n) && !st.CordonedByUs && !c.holds(name) && !st.LastReboot.IsZero()
}

func (c *cluster) holds(name string) bool {
	for _, h := range c.watcher.Holders() {
		if h == name {
			return true
		}
	}
	return false
}

func (c *cluster) phase(name string) state.Phase {
	st, _ := state.Parse(c.node(name).Annotations)
	return st.Phase
}

// events returns the messages of the Events with reason on node name.
func (c *cluster) events(name, reason string) []string {
	list, err := c.client.CoreV1().Events("default").List(c.ctx, metav1.ListOptions{})
	require.NoError(c.t, err)
	var msgs []string
	for _, e := range list.Items {
		if e.InvolvedObject.Name == name && e.Reason == reason {
			msgs = append(msgs, e.Message)
		}
	}
	return msgs
}

func (c *cluster) waitEvent(name, reason string) string {
	c.t.Helper()
	var msgs []string
	c.waitFor(fmt.Sprintf("a %s Event on %s", reason, name), time.Minute, func() bool {
		msgs = c.events(name, reason)
		return len(msgs) > 0
	})
	return msgs[0]
}

// addWorkload puts pods on node, owned by a ReplicaSet (so drain treats them as
// managed), with a PDB over them allowing maxUnavailable disruptions. No
// disruption controller runs here: the API server spends the allowance on each
// eviction and nothing restores it, so a drain that must succeed needs
// maxUnavailable == pods.
func (c *cluster) addWorkload(node, app string, pods int, maxUnavailable int) {
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: "default"},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: new(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
			},
		},
	}
	rs, err := c.client.AppsV1().ReplicaSets("default").Create(c.ctx, rs, metav1.CreateOptions{})
	require.NoError(c.t, err)
	for i := range pods {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{
				Name: fmt.Sprintf("%s-%d", app, i), Namespace: "default", Labels: map[string]string{"app": app},
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))},
			},
			Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "app", Image: "app"}},
				Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}}},
		}
		_, err := c.client.CoreV1().Pods("default").Create(c.ctx, pod, metav1.CreateOptions{})
		require.NoError(c.t, err)
	}
	c.waitFor("workload pods running", time.Minute, func() bool {
		list, err := c.client.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		require.NoError(c.t, err)
		running := 0
		for _, p := range list.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == pods
	})
	mu := intstr.FromInt32(int32(maxUnavailable))
	pdb := &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: "default"},
		Spec: policyv1.PodDisruptionBudgetSpec{MaxUnavailable: &mu,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}},
	}
	_, err = c.client.PolicyV1().PodDisruptionBudgets("default").Create(c.ctx, pdb, metav1.CreateOptions{})
	require.NoError(c.t, err)
	// Without kube-controller-manager nobody computes the budget: set its status
	// as the disruption controller would.
	c.setDisruptionsAllowed(app, pods, maxUnavailable)
}

func (c *cluster) setDisruptionsAllowed(app string, pods, allowed int) {
	pdb, err := c.client.PolicyV1().PodDisruptionBudgets("default").Get(c.ctx, app, metav1.GetOptions{})
	require.NoError(c.t, err)
	pdb.Status = policyv1.PodDisruptionBudgetStatus{
		ObservedGeneration: pdb.Generation, DisruptionsAllowed: int32(allowed),
		CurrentHealthy: int32(pods), DesiredHealthy: int32(pods - allowed), ExpectedPods: int32(pods),
	}
	_, err = c.client.PolicyV1().PodDisruptionBudgets("default").UpdateStatus(c.ctx, pdb, metav1.UpdateOptions{})
	require.NoError(c.t, err)
}

func (c *cluster) podsOn(node string) int {
	list, err := c.client.CoreV1().Pods("default").List(c.ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	require.NoError(c.t, err)
	return len(list.Items)
}

func (c *cluster) pause(reason *string) {
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}}}`, state.AnnotationPause)
	if reason != nil {
		patch = fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, state.AnnotationPause, *reason)
	}
	c.waitFor("the lock header lease", 30*time.Second, func() bool {
		_, err := c.client.CoordinationV1().Leases(namespace).Patch(c.ctx, "nodepatch-lock", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		return err == nil
	})
}

func agentLogHas(c *cluster, node, text string) bool {
	out, err := c.sup.AgentLog(node)
	require.NoError(c.t, err)
	return strings.Contains(out, text)
}
