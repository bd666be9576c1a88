package realnode

import (
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	ct "github.com/nodepatch/nodepatch/test/chart/charttest"
	"github.com/nodepatch/nodepatch/test/hostenv"
	"github.com/nodepatch/nodepatch/test/sim"
)

// TestChartRollsTwoRealNodes: the same security update on two real nodes,
// under the chart's defaults: the rollout controller (two replicas, on these
// same nodes) admits one node at a time. The agents reboot them one after the
// other; each drain moves the Deployment's pods, and the controller's, to the
// other node while the PodDisruptionBudget keeps one of the workload's two
// pods ready at all times.
func TestChartRollsTwoRealNodes(t *testing.T) {
	names := []string{"rn-roll-a", "rn-roll-b"}
	c := StartClusterT(t, names...)
	repoDir := filepath.Join(t.TempDir(), "repo")
	repo := hostenv.NewAptRepo(t, repoDir, "Debian-Security", "bookworm-security")
	repo.Add(t, hostenv.Deb{Name: updatePkg, Version: "1.0"})
	repo.Publish(t)
	var nodes []*Node
	for _, name := range names {
		n := c.StartNodeT(t, NodeOptions{
			Name:    name,
			ROBinds: []string{repoDir + ":/srv/repo"},
			Files:   map[string]string{"/etc/apt/sources.list": repo.SourceLine("/srv/repo") + "\n"},
		})
		installOldVersion(t, n)
		nodes = append(nodes, n)
	}
	repo.Add(t, hostenv.Deb{Name: updatePkg, Version: "1.1", RebootRequired: true})
	repo.Publish(t)

	ctx := t.Context()
	client := c.CP.Client
	createNamespace(t, client, agentNS, map[string]string{"pod-security.kubernetes.io/enforce": "privileged"})
	watcher, err := sim.StartWatcher(ctx, client, agentNS)
	require.NoError(t, err)
	t.Cleanup(watcher.Stop)
	timelines := map[string]*Timeline{}
	for _, name := range names {
		tl, err := StartTimeline(ctx, client, name, agentNS)
		require.NoError(t, err)
		t.Cleanup(tl.Stop)
		timelines[name] = tl
	}
	minAvailable := intstr.FromInt32(1)
	before := createWorkload(t, client, 2, policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvailable})
	ready := startReadyTracker(t, client, len(before))

	start := time.Now()
	helmFor(t, c.CP)(append([]string{"install", "nodepatch", ct.ChartDir(t), "--wait=false"}, testNetworkValues(t, c.CP)...)...)
	for _, n := range nodes {
		waitCycleDone(t, client, timelines[n.Name], 5*time.Minute, n)
		requireUpgraded(t, n)
	}
	total := time.Since(start)

	require.Equal(t, 1, watcher.MaxHolders(), "lock holders at once")
	require.Equal(t, 1, watcher.MaxCordoned(), "nodes out of service at once")
	for _, name := range names {
		require.Equal(t, 1, watcher.RebootCompletions(name), "reboots of %s the watcher saw", name)
	}
	require.GreaterOrEqual(t, ready.min(), 1, "ready workload pods fell below the budget's minAvailable:\n%s", ready.history())
	after := workloadPodUIDs(t, client)
	for _, p := range before {
		require.NotContains(t, after, string(p.UID), "pod %s on %s was never evicted", p.Name, p.Spec.NodeName)
	}
	for _, name := range names {
		admittedFirst, err := timelines[name].Before(EventAdmitted, EventLockTaken)
		require.NoError(t, err, "the controller's admission or the slot of %s was not seen:\n%s", name, timelines[name].Log())
		require.True(t, admittedFirst, "%s took its slot before the controller admitted it:\n%s", name, timelines[name].Log())
		requireReleasedAfterUncordon(t, timelines[name])
		out, err := timelines[name].Between(EventTainted, EventUntainted)
		require.NoError(t, err)
		drain, err := timelines[name].Between(EventDraining, EventRebooting)
		require.NoError(t, err)
		back, err := timelines[name].Between(EventRebooting, EventReadyNewBoot)
		require.NoError(t, err)
		t.Logf("measured: %s: out of service %s (drain %s, reboot request to Ready from the new boot %s)",
			name, out.Round(10*time.Millisecond), drain.Round(10*time.Millisecond), back.Round(10*time.Millisecond))
	}
	t.Logf("measured: two real nodes, one at a time: helm install to both cycles done %s; fewest ready workload pods %d of 2",
		total.Round(10*time.Millisecond), ready.min())
}

// workloadPodUIDs returns the UIDs of the workload's pods now.
func workloadPodUIDs(t *testing.T, client kubernetes.Interface) map[string]bool {
	t.Helper()
	pods, err := client.CoreV1().Pods(workNS).List(t.Context(), metav1.ListOptions{LabelSelector: "app=work"})
	require.NoError(t, err)
	uids := map[string]bool{}
	for _, p := range pods.Items {
		uids[string(p.UID)] = true
	}
	return uids
}

// readyTracker follows the workload's pods and keeps the fewest Ready ones
// seen at any moment since it first saw all of them Ready (its handlers see
// the initial pods one by one, even after its cache has synced).
type readyTracker struct {
	mu     sync.Mutex
	ready  map[string]bool
	all    int
	armed  bool
	lowest int
	log    []string // every change, for the failure message
}

func startReadyTracker(t *testing.T, client kubernetes.Interface, all int) *readyTracker {
	t.Helper()
	r := &readyTracker{ready: map[string]bool{}, all: all, lowest: -1}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(workNS))
	_, err := factory.Core().V1().Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { r.on(obj, false) },
		UpdateFunc: func(_, obj any) { r.on(obj, false) },
		DeleteFunc: func(obj any) { r.on(obj, true) },
	})
	require.NoError(t, err)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); factory.Shutdown() })
	factory.Start(stop)
	for typ, ok := range factory.WaitForCacheSync(t.Context().Done()) {
		require.True(t, ok, "cache of %v did not sync", typ)
	}
	return r
}

// count is how many pods are Ready now; r.mu held.
func (r *readyTracker) count() int {
	n := 0
	for _, ok := range r.ready {
		if ok {
			n++
		}
	}
	return n
}

func (r *readyTracker) on(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := !deleted && pod.DeletionTimestamp == nil && podReady(pod)
	if was, seen := r.ready[pod.Name]; !seen || was != now {
		r.log = append(r.log, fmt.Sprintf("%s %s on %q ready=%t phase=%s deleting=%t",
			time.Now().Format("15:04:05.000"), pod.Name, pod.Spec.NodeName, now, pod.Status.Phase, deleted || pod.DeletionTimestamp != nil))
	}
	r.ready[pod.Name] = now
	n := r.count()
	if !r.armed && n == r.all {
		r.armed, r.lowest = true, n
	}
	if r.armed && n < r.lowest {
		r.lowest = n
	}
}

func (r *readyTracker) history() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.log, "\n")
}

// min is the fewest Ready pods seen; -1 if they were never all Ready.
func (r *readyTracker) min() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lowest
}
