package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/nodepatch/nodepatch/pkg/state"
	"github.com/nodepatch/nodepatch/test/harness"
)

const zoneLabel = "topology.kubernetes.io/zone"

// startController runs `nodepatch controller` with flags against the cluster,
// and stops it when the test ends.
func (c *cluster) startController(name string, flags ...string) *harness.Process {
	c.t.Helper()
	args := append([]string{"controller", "--kubeconfig=" + c.kubeconfig, "--namespace=" + namespace,
		"--identity=" + name, "--metrics-address=127.0.0.1:0", "--log-format=json"}, flags...)
	p, err := harness.StartProcess(harness.ProcessSpec{Name: name, Path: nodepatchBinary(c.t), Args: args,
		LogPath: filepath.Join(c.t.TempDir(), name+".log")})
	require.NoError(c.t, err)
	c.t.Cleanup(func() {
		if c.t.Failed() {
			c.t.Logf("%s log:\n%s", name, p.LogTail(4000))
		}
		_ = p.Stop(5 * time.Second)
	})
	return p
}

// outage records, from an informer of its own, when each node was out of
// service (tainted by nodepatch) and the most nodes out at once per value of
// a label (the zone, unless told otherwise).
type outage struct {
	key      string
	mu       sync.Mutex
	zoneOf   map[string]string
	out      map[string]bool
	maxZone  map[string]int
	firstOut map[string]time.Time
	lastBack map[string]time.Time
}

func watchOutage(t *testing.T, c *cluster) *outage {
	t.Helper()
	return watchOutageBy(t, c, zoneLabel)
}

// watchOutageBy is watchOutage, counting per value of label key.
func watchOutageBy(t *testing.T, c *cluster, key string) *outage {
	t.Helper()
	o := &outage{key: key, zoneOf: map[string]string{}, out: map[string]bool{}, maxZone: map[string]int{},
		firstOut: map[string]time.Time{}, lastBack: map[string]time.Time{}}
	factory := informers.NewSharedInformerFactory(c.client, 0)
	inf := factory.Core().V1().Nodes().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: o.note, UpdateFunc: func(_, obj any) { o.note(obj) },
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(c.ctx)
	t.Cleanup(cancel)
	factory.Start(ctx.Done())
	require.True(t, cache.WaitForCacheSync(ctx.Done(), inf.HasSynced))
	return o
}

func (o *outage) note(obj any) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	tainted := false
	for _, taint := range n.Spec.Taints {
		tainted = tainted || taint.Key == state.TaintKey
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.zoneOf[n.Name] = n.Labels[o.key]
	now := time.Now()
	switch {
	case tainted && !o.out[n.Name]:
		if _, seen := o.firstOut[n.Name]; !seen {
			o.firstOut[n.Name] = now
		}
	case !tainted && o.out[n.Name]:
		o.lastBack[n.Name] = now
	}
	o.out[n.Name] = tainted
	perZone := map[string]int{}
	for name, out := range o.out {
		if out {
			perZone[o.zoneOf[name]]++
		}
	}
	for z, count := range perZone {
		o.maxZone[z] = max(o.maxZone[z], count)
	}
}

func (o *outage) peaks() (map[string]int, map[string]time.Time, map[string]time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return copyMap(o.maxZone), copyMap(o.firstOut), copyMap(o.lastBack)
}

func copyMap[V any](m map[string]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestControllerRollout: with a rollout controller, 6 nodes in 3 zones reboot
// at most 50% at once and one per zone, the control-plane node last, and every
// node exactly once.
func TestControllerRollout(t *testing.T) {
	labels := map[string]map[string]string{}
	for i := range 6 {
		labels[nodeName(i)] = map[string]string{zoneLabel: fmt.Sprintf("z%d", i%3)}
	}
	labels[nodeName(5)]["node-role.kubernetes.io/control-plane"] = ""
	c := newCluster(t, setup{nodes: 6, concurrency: 6, labels: labels, flags: []string{"--admission=controller"}})
	seen := watchOutage(t, c)
	c.startController("ctl-0", "--max-unavailable=50%", "--max-unavailable-per="+zoneLabel+"=1", "--control-plane=last")
	var all []string
	for i := range 6 {
		all = append(all, nodeName(i))
	}
	c.needReboot(all...)
	c.waitRebooted(1, all...)

	require.LessOrEqual(t, c.watcher.MaxHolders(), 3, "lock holders at once")
	require.LessOrEqual(t, c.watcher.MaxCordoned(), 3, "nodes out of service at once")
	perZone, firstOut, lastBack := seen.peaks()
	for z, peak := range perZone {
		require.LessOrEqual(t, peak, 1, "nodes out at once in zone %s", z)
	}
	cp := nodeName(5)
	for _, n := range all[:5] {
		require.True(t, firstOut[cp].After(lastBack[n]), "the control-plane node went before %s was back", n)
		require.Equal(t, 1, c.sup.Reboots(n), "%s rebooted more than once", n)
	}
	require.Equal(t, 1, c.sup.Reboots(cp))
	require.NotEmpty(t, c.waitEvent(nodeName(0), "Admitted"))
}

// TestControllerGoneStartsNothingNew: without a controller, the cycle under way
// finishes and no new one starts; a controller back admits the rest.
func TestControllerGoneStartsNothingNew(t *testing.T) {
	c := newCluster(t, setup{nodes: 2, concurrency: 2, flags: []string{"--admission=controller"}})
	ctl := c.startController("ctl-0", "--max-unavailable=1")
	c.needReboot(nodeName(0))
	c.waitFor("node-0 to start its cycle", time.Minute, func() bool { return c.phase(nodeName(0)) != state.PhaseIdle })
	require.NoError(t, ctl.Stop(5*time.Second))
	c.needReboot(nodeName(1))
	c.waitRebooted(1, nodeName(0))
	c.waitFor("node-1 to report its need", time.Minute, func() bool {
		_, ok := c.node(nodeName(1)).Annotations[state.AnnotationNeedSince]
		return ok
	})
	// With no controller, nothing admits node-1: it stays waiting while
	// node-0's cycle is long over (a window, not a wait for a condition).
	quiet := time.Now().Add(3 * time.Second)
	for time.Now().Before(quiet) {
		require.NotContains(t, c.node(nodeName(1)).Annotations, state.AnnotationAdmitted, "admitted with no controller")
		require.Equal(t, state.PhaseIdle, c.phase(nodeName(1)))
		time.Sleep(100 * time.Millisecond)
	}
	c.startController("ctl-1", "--max-unavailable=1")
	c.waitRebooted(1, nodeName(1))
	require.Equal(t, 1, c.watcher.MaxHolders())
}

// TestTwoControllersOneLeader: two replicas; the limit holds whichever leads.
func TestTwoControllersOneLeader(t *testing.T) {
	c := newCluster(t, setup{nodes: 4, concurrency: 4, flags: []string{"--admission=controller"}})
	c.startController("ctl-a", "--max-unavailable=1")
	c.startController("ctl-b", "--max-unavailable=1")
	names := []string{nodeName(0), nodeName(1), nodeName(2), nodeName(3)}
	c.needReboot(names...)
	c.waitRebooted(1, names...)
	require.Equal(t, 1, c.watcher.MaxHolders(), "lock holders at once with two controllers")
	require.Equal(t, 1, c.watcher.MaxCordoned())
}

// TestMixedAgentsDuringUpgrade: during a helm upgrade some agents still race
// for slots on their own (--admission=none) while the new ones wait for the
// controller; the limit the controller keeps binds both.
func TestMixedAgentsDuringUpgrade(t *testing.T) {
	c := newCluster(t, setup{nodes: 4, concurrency: 4, nodeFlags: map[string][]string{
		nodeName(0): {"--admission=none"}, nodeName(1): {"--admission=none"},
		nodeName(2): {"--admission=controller"}, nodeName(3): {"--admission=controller"},
	}})
	c.startController("ctl-0", "--max-unavailable=1")
	c.waitFor("the controller's limit on the lock", time.Minute, func() bool {
		header, err := c.client.CoordinationV1().Leases(namespace).Get(c.ctx, "nodepatch-lock", metav1.GetOptions{})
		return err == nil && header.Annotations["nodepatch.io/limit-source"] == "controller"
	})
	names := []string{nodeName(0), nodeName(1), nodeName(2), nodeName(3)}
	c.needReboot(names...)
	c.waitRebooted(1, names...)
	require.Equal(t, 1, c.watcher.MaxHolders(), "lock holders at once with old and new agents")
	require.Equal(t, 1, c.watcher.MaxCordoned())
}

// TestMaxUnavailableChangedMidRollout: the limit raised, then lowered, while
// nodes reboot; never more out than the limit in force allows.
func TestMaxUnavailableChangedMidRollout(t *testing.T) {
	var names []string
	for i := range 6 {
		names = append(names, nodeName(i))
	}
	c := newCluster(t, setup{nodes: 6, concurrency: 6, rebootTime: 2 * time.Second, flags: []string{"--admission=controller"}})
	ctl := c.startController("ctl-0", "--max-unavailable=1")
	c.needReboot(names...)
	c.waitFor("the first node to be rebooted", time.Minute, func() bool { return c.watcher.TotalRebootCompletions() >= 1 })
	require.Equal(t, 1, c.watcher.MaxHolders(), "holders at once before the change")
	require.NoError(t, ctl.Stop(5*time.Second))
	ctl = c.startController("ctl-1", "--max-unavailable=2")
	c.waitFor("two nodes in a cycle at once", 2*time.Minute, func() bool { return c.watcher.MaxHolders() == 2 })
	require.NoError(t, ctl.Stop(5*time.Second))
	c.startController("ctl-2", "--max-unavailable=1")
	c.waitRebooted(1, names...)
	require.LessOrEqual(t, c.watcher.MaxHolders(), 2, "holders at once over the whole rollout")
	for _, n := range names {
		require.Equal(t, 1, c.sup.Reboots(n), "%s rebooted more than once", n)
	}
}
