// Package lockrace_test races real lock contenders on a real API server.
package lockrace_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/test/harness"
)

const ns = "default"

// newSemaphore gives identity its own Lease informer, as each agent has.
func newSemaphore(t *testing.T, ctx context.Context, client kubernetes.Interface, cfg lock.Config) *lock.Semaphore {
	t.Helper()
	cfg.Namespace, cfg.Name = ns, "test-lock"
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = lock.Selector(cfg.Name).String() }))
	leases := factory.Coordination().V1().Leases()
	informer := leases.Informer()
	factory.Start(ctx.Done())
	require.True(t, cache.WaitForCacheSync(ctx.Done(), informer.HasSynced))
	sem, err := lock.New(cfg, client.CoordinationV1().Leases(ns), leases.Lister().Leases(ns), time.Now)
	require.NoError(t, err)
	return sem
}

func createNode(t *testing.T, ctx context.Context, client kubernetes.Interface, name string) {
	t.Helper()
	_, err := client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	require.NoError(t, err)
}

// TestNeverMoreHoldersThanSlots races 8 contenders for 2 slots on a real API
// server. Each counts itself in while it believes it holds a slot; an independent
// watch of the Leases counts holders as the API server sees them.
func TestNeverMoreHoldersThanSlots(t *testing.T) {
	cp := harness.StartControlPlaneT(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const slots, contenders, rounds = 2, 8, 6

	var inside, maxInside, maxSeen atomic.Int32
	watchHolders(t, ctx, cp.Client, &maxSeen)
	var wg sync.WaitGroup
	errs := make(chan error, contenders)
	for i := range contenders {
		name := fmt.Sprintf("node-%d", i)
		createNode(t, ctx, cp.Client, name)
		sem := newSemaphore(t, ctx, cp.Client, lock.Config{Slots: slots, Identity: name, NodeExists: lock.NodeExistsIn(cp.Client)})
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- contend(ctx, sem, rounds, &inside, &maxInside)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.LessOrEqual(t, maxInside.Load(), int32(slots), "contenders that believed they held a slot at once")
	require.Equal(t, int32(slots), maxInside.Load(), "the slots were never all used: the test did not race")
	require.LessOrEqual(t, maxSeen.Load(), int32(slots), "holders the API server had at once")
}

// contend takes a slot rounds times, holding it briefly each time.
func contend(ctx context.Context, sem *lock.Semaphore, rounds int, inside, maxInside *atomic.Int32) error {
	for done := 0; done < rounds; {
		_, won, err := sem.TryAcquire(ctx)
		if err != nil {
			return err
		}
		if !won {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(5 * time.Millisecond) // contenders poll here; the agent waits on its informer instead
			continue
		}
		n := inside.Add(1)
		for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		inside.Add(-1)
		if err := sem.Release(ctx); err != nil {
			return err
		}
		done++
	}
	return nil
}

// watchHolders records the largest number of holders any single list of the
// Leases shows, from an informer independent of the contenders.
func watchHolders(t *testing.T, ctx context.Context, client kubernetes.Interface, maxSeen *atomic.Int32) {
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(ns))
	leases := factory.Coordination().V1().Leases()
	count := func(any) {
		list, _ := leases.Lister().Leases(ns).List(lock.Selector("test-lock"))
		n := int32(0)
		for _, l := range list {
			if l.Name != "test-lock" && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" {
				n++
			}
		}
		if n > maxSeen.Load() {
			maxSeen.Store(n)
		}
	}
	_, err := leases.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: count, UpdateFunc: func(_, o any) { count(o) }, DeleteFunc: count,
	})
	require.NoError(t, err)
	factory.Start(ctx.Done())
	require.True(t, cache.WaitForCacheSync(ctx.Done(), leases.Informer().HasSynced))
}

func TestReclaimOnlyFromNodesThatAreGone(t *testing.T) {
	cp := harness.StartControlPlaneT(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range []string{"a", "b"} {
		createNode(t, ctx, cp.Client, n)
	}
	// A holder found to be a Node is looked up again after NodeRecheck:
	// the reclaim of a deleted node's slot may wait that long.
	cfg := func(id string) lock.Config {
		return lock.Config{Slots: 1, Identity: id, NodeExists: lock.NodeExistsIn(cp.Client), NodeRecheck: time.Second}
	}
	a := newSemaphore(t, ctx, cp.Client, cfg("a"))
	b := newSemaphore(t, ctx, cp.Client, cfg("b"))

	_, won, err := a.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, won)
	eventually(t, func() bool { _, won, err = b.TryAcquire(ctx); return err == nil && !won })
	require.False(t, won, "b took the slot of a live node")

	require.NoError(t, cp.Client.CoreV1().Nodes().Delete(ctx, "a", metav1.DeleteOptions{}))
	eventually(t, func() bool { _, won, err = b.TryAcquire(ctx); return err == nil && won })
	held, err := a.HoldsNow(ctx)
	require.NoError(t, err)
	require.False(t, held, "the deleted node still holds the slot")
}

func TestTTLReclaimsOnlyWhenOptedIn(t *testing.T) {
	cp := harness.StartControlPlaneT(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	createNode(t, ctx, cp.Client, "a")
	createNode(t, ctx, cp.Client, "b")
	a := newSemaphore(t, ctx, cp.Client, lock.Config{Slots: 1, Identity: "a", TTL: time.Second})
	_, won, err := a.TryAcquire(ctx)
	require.NoError(t, err)
	require.True(t, won)

	noTTL := newSemaphore(t, ctx, cp.Client, lock.Config{Slots: 1, Identity: "b", NodeExists: lock.NodeExistsIn(cp.Client)})
	withTTL := newSemaphore(t, ctx, cp.Client, lock.Config{Slots: 1, Identity: "b", TTL: time.Second, NodeExists: lock.NodeExistsIn(cp.Client)})
	deadline := time.Now().Add(1500 * time.Millisecond)
	for time.Now().Before(deadline) { // past the TTL, a holder that never renewed
		_, won, err = noTTL.TryAcquire(ctx)
		require.NoError(t, err)
		require.False(t, won, "without a TTL a live node's slot was taken")
		time.Sleep(100 * time.Millisecond)
	}
	eventually(t, func() bool { _, won, err = withTTL.TryAcquire(ctx); return err == nil && won })
}

// TestShrunkConcurrencyCountsOldSlots: a holder of slot 2, left from a larger
// concurrency, still counts against a concurrency of 2.
func TestShrunkConcurrencyCountsOldSlots(t *testing.T) {
	cp := harness.StartControlPlaneT(t, harness.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, n := range []string{"a", "b", "c", "d"} {
		createNode(t, ctx, cp.Client, n)
	}
	sems := map[string]*lock.Semaphore{}
	for n, slots := range map[string]int{"a": 3, "b": 3, "c": 3, "d": 2} {
		sems[n] = newSemaphore(t, ctx, cp.Client, lock.Config{Slots: slots, Identity: n, NodeExists: lock.NodeExistsIn(cp.Client)})
	}
	for _, n := range []string{"a", "b", "c"} {
		eventually(t, func() bool { _, won, err := sems[n].TryAcquire(ctx); return err == nil && won })
	}
	require.NoError(t, sems["a"].Release(ctx))
	// Two of three old slots are still held: d, with two slots, must wait.
	for range 5 {
		_, won, err := sems["d"].TryAcquire(ctx)
		require.NoError(t, err)
		require.False(t, won, "d got in while two of its two slots' worth were held")
	}
	require.NoError(t, sems["b"].Release(ctx))
	eventually(t, func() bool { _, won, err := sems["d"].TryAcquire(ctx); return err == nil && won })
}

func eventually(t *testing.T, cond func() bool) {
	t.Helper()
	require.Eventually(t, cond, 20*time.Second, 20*time.Millisecond)
}
