package lock

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// These tests run the semaphore on the fake clientset, with a lister that reads
// it directly (a cache that never lags). The race on a real API server is in
// test/lockrace.

const ns = "nodepatch"

// clock is a monotonic clock the test moves.
type clock struct {
	base    time.Time
	elapsed time.Duration
}

func (c *clock) now() time.Time { return c.base.Add(c.elapsed) }

// newClient is a fake clientset that gives every write a new resourceVersion,
// as the API server does (the fake's tracker leaves it empty).
func newClient() *fake.Clientset {
	client := fake.NewClientset()
	version := 0
	bump := func(action k8stesting.Action) (bool, runtime.Object, error) {
		if a, ok := action.(interface{ GetObject() runtime.Object }); ok {
			if obj, err := meta.Accessor(a.GetObject()); err == nil {
				version++
				obj.SetResourceVersion(strconv.Itoa(version))
			}
		}
		return false, nil, nil
	}
	client.PrependReactor("create", "*", bump)
	client.PrependReactor("update", "*", bump)
	return client
}

func newSem(t *testing.T, client *fake.Clientset, cfg Config, now func() time.Time) (*Semaphore, *clock) {
	t.Helper()
	cfg.Name, cfg.Namespace = "nodepatch-lock", ns
	if now == nil {
		now = time.Now
	}
	s, err := New(cfg, client.CoordinationV1().Leases(ns), APILister{Leases: client.CoordinationV1().Leases(ns)}, now)
	require.NoError(t, err)
	c := &clock{base: time.Now()}
	s.mono = c.now
	return s, c
}

func holderOfSlot(t *testing.T, client *fake.Clientset, slot string) string {
	t.Helper()
	l, err := client.CoordinationV1().Leases(ns).Get(context.Background(), slot, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ""
	}
	require.NoError(t, err)
	return holderOf(l).Identity
}

// slot is a PreferredSlot of slot i.
func slot(i int) func() int { return func() int { return i } }

func take(t *testing.T, s *Semaphore) bool {
	t.Helper()
	_, won, err := s.TryAcquire(context.Background())
	require.NoError(t, err)
	return won
}

// TestTTLJudgedByTheTakersOwnClock: a taker whose wall clock runs hours ahead
// does not take a live slot; only seeing the record unchanged for the TTL, on its
// own monotonic clock, lets it.
func TestTTLJudgedByTheTakersOwnClock(t *testing.T) {
	client := newClient()
	a, _ := newSem(t, client, Config{Slots: 1, Identity: "a", TTL: time.Minute}, nil)
	require.True(t, take(t, a))

	ahead := func() time.Time { return time.Now().Add(3 * time.Hour) }
	b, bClock := newSem(t, client, Config{Slots: 1, Identity: "b", TTL: time.Minute}, ahead)
	require.False(t, take(t, b), "a taker with a fast clock took a live slot")

	bClock.elapsed = 30 * time.Second
	require.False(t, take(t, b), "taken before the TTL passed")
	require.NoError(t, a.Renew(context.Background())) // a new version of the record
	bClock.elapsed = 70 * time.Second
	require.False(t, take(t, b), "the renewal did not restart the taker's count")
	bClock.elapsed = 140 * time.Second
	require.True(t, take(t, b), "seen unchanged for longer than the TTL: the slot may be taken")
	require.Equal(t, "b", holderOfSlot(t, client, "nodepatch-lock-0"))
}

// TestHolderThatCannotRenewIsFenced: a holder whose renewals fail stops counting
// on its slot at half the TTL, and HoldsNow says no.
func TestHolderThatCannotRenewIsFenced(t *testing.T) {
	client := newClient()
	a, aClock := newSem(t, client, Config{Slots: 1, Identity: "a", TTL: time.Minute}, nil)
	require.True(t, take(t, a))
	require.False(t, a.Fenced(context.Background()))

	client.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewServiceUnavailable("etcd is away")
	})
	aClock.elapsed = 31 * time.Second
	require.True(t, a.Fenced(context.Background()), "a holder that could not renew for half the TTL still counts on its slot")
	held, err := a.HoldsNow(context.Background())
	require.False(t, held)
	require.ErrorContains(t, err, "etcd is away")
}

func TestNoTTLNeverFencesNorExpires(t *testing.T) {
	client := newClient()
	a, _ := newSem(t, client, Config{Slots: 1, Identity: "a"}, nil)
	require.True(t, take(t, a))
	b, bClock := newSem(t, client, Config{Slots: 1, Identity: "b"}, nil)
	bClock.elapsed = 1000 * time.Hour
	require.False(t, take(t, b))
	require.False(t, a.Fenced(context.Background()))
}

// TestReleaseRetriesAConflict: a release that meets a conflict reads again and
// frees the slot; one that keeps meeting them fails rather than report success.
func TestReleaseRetriesAConflict(t *testing.T) {
	client := newClient()
	a, _ := newSem(t, client, Config{Slots: 1, Identity: "a"}, nil)
	require.True(t, take(t, a))
	conflicts := 1
	client.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			return false, nil, nil
		}
		conflicts--
		return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), "nodepatch-lock-0", fmt.Errorf("renewed meanwhile"))
	})
	require.NoError(t, a.Release(context.Background()))
	require.Empty(t, holderOfSlot(t, client, "nodepatch-lock-0"))

	require.True(t, take(t, a))
	conflicts = 1000
	require.Error(t, a.Release(context.Background()), "Release reported success while the slot is still held")
	require.Equal(t, "a", holderOfSlot(t, client, "nodepatch-lock-0"))
}

// TestNewerGenerationsLimitWins: a header limit written by a newer
// configuration binds an agent of an older one, in either direction; an older
// configuration never overwrites it.
func TestNewerGenerationsLimitWins(t *testing.T) {
	client := newClient()
	old := map[string]*Semaphore{}
	for _, id := range []string{"a", "b", "c"} {
		old[id], _ = newSem(t, client, Config{Slots: 3, Generation: 1, Identity: id}, nil)
	}
	require.NoError(t, old["a"].EnsureHeader(context.Background()))
	newer, _ := newSem(t, client, Config{Slots: 1, Generation: 2, Identity: "d"}, nil)
	require.NoError(t, newer.EnsureHeader(context.Background()))
	require.NoError(t, old["b"].EnsureHeader(context.Background()), "an old agent restarting")

	header, err := client.CoordinationV1().Leases(ns).Get(context.Background(), "nodepatch-lock", metav1.GetOptions{})
	require.NoError(t, err)
	limit, gen, ok := ParseLimit(header)
	require.True(t, ok)
	require.Equal(t, []any{1, int64(2)}, []any{limit, gen}, "an older generation overwrote the newer limit")

	require.True(t, take(t, old["a"]))
	require.False(t, take(t, old["b"]), "an old agent went past the newer, smaller limit")
	require.False(t, take(t, old["c"]))
	snap, err := old["b"].Snapshot()
	require.NoError(t, err)
	require.Equal(t, 1, snap.Limit)
}

// TestLeftoverSlotOfADeletedNodeIsFreed: a slot past a shrunk limit, held by a
// node that is gone, is freed, so the rollout does not halt for good.
func TestLeftoverSlotOfADeletedNodeIsFreed(t *testing.T) {
	client := newClient()
	gone := "gone"
	_, err := client.CoordinationV1().Leases(ns).Create(context.Background(), &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: "nodepatch-lock-2", Namespace: ns, Labels: map[string]string{LabelLock: "nodepatch-lock"}},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &gone},
	}, metav1.CreateOptions{})
	require.NoError(t, err)
	exists := func(_ context.Context, name string) (bool, error) { return name != gone, nil }
	a, _ := newSem(t, client, Config{Slots: 1, Identity: "a", NodeExists: exists}, nil)
	require.True(t, take(t, a), "the slot of a deleted node past the limit kept the rollout halted")
	require.Empty(t, holderOfSlot(t, client, "nodepatch-lock-2"), "the left-over slot was not freed")
}

// TestShrunkLimitCountsOldSlots: holders of slots left from a larger limit
// count against the smaller one.
func TestShrunkLimitCountsOldSlots(t *testing.T) {
	client := newClient()
	for _, id := range []string{"a", "b"} {
		s, _ := newSem(t, client, Config{Slots: 3, Identity: id}, nil)
		require.True(t, take(t, s))
	}
	d, _ := newSem(t, client, Config{Slots: 2, Identity: "d", NodeExists: func(context.Context, string) (bool, error) { return true, nil }}, nil)
	require.False(t, take(t, d), "d got in while two of its two slots' worth were held")
}

// TestControllerLimitBindsEveryGeneration: a limit the rollout controller set
// binds agents of any generation, and no agent writes over it.
func TestControllerLimitBindsEveryGeneration(t *testing.T) {
	client := newClient()
	leases := client.CoordinationV1().Leases(ns)
	require.NoError(t, SetControllerLimit(context.Background(), leases, ns, "nodepatch-lock", 1, "max-unavailable=1;control-plane=last"))
	newest, _ := newSem(t, client, Config{Slots: 5, Generation: 99, Identity: "a"}, nil)
	require.NoError(t, newest.EnsureHeader(context.Background()))
	snap, err := newest.Snapshot()
	require.NoError(t, err)
	require.Equal(t, 1, snap.Limit, "an agent's --concurrency won over the controller's limit")
	require.True(t, take(t, newest))
	other, _ := newSem(t, client, Config{Slots: 5, Generation: 99, Identity: "b"}, nil)
	require.False(t, take(t, other))

	require.NoError(t, SetControllerLimit(context.Background(), leases, ns, "nodepatch-lock", 2, "max-unavailable=2;control-plane=last"))
	require.True(t, take(t, other), "the controller raised the limit")
}

// TestHoldsNowRetriesAConflictingRenewal: with a TTL, confirming the slot
// renews it; a renewal that meets another write in between (this process's
// own renewal loop, say) reads again instead of failing the confirmation, which
// cost a reboot attempt each time (chaos seed 119: two in a row halted a
// healthy node).
func TestHoldsNowRetriesAConflictingRenewal(t *testing.T) {
	client := newClient()
	sem, _ := newSem(t, client, Config{Slots: 1, Identity: "a", TTL: time.Minute}, nil)
	require.True(t, take(t, sem))
	conflicts := 2
	client.PrependReactor("update", "leases", func(action k8stesting.Action) (bool, runtime.Object, error) {
		if conflicts == 0 {
			return false, nil, nil
		}
		conflicts--
		return true, nil, apierrors.NewConflict(coordinationv1.Resource("leases"), "nodepatch-lock-0", errors.New("the object has been modified"))
	})
	held, err := sem.HoldsNow(context.Background())
	require.NoError(t, err)
	require.True(t, held)
	require.Zero(t, conflicts)
}

// TestReclaimedSlotCountsTheOtherHolders: taking a slot from a holder that is
// gone (no longer a Node) or expired (TTL) replaces that holder only; the
// holders of the other slots still count, and after a shrink a live holder
// past the new limit leaves no room (chaos seed 71: limit 2 -> 1, node-3 still
// held slot 1 from before, an operator handed slot 0 to a name that is no
// Node, and node-2 took slot 0 from it: two holders at limit 1).
func TestReclaimedSlotCountsTheOtherHolders(t *testing.T) {
	const ttl = time.Minute
	for _, tc := range []struct {
		name string
		// free makes slot 0's holder, "x", reclaimable for d; live is b.
		free func(t *testing.T, client *fake.Clientset, b *Semaphore, dClock *clock)
		ttl  time.Duration
	}{
		{name: "holder no longer a Node", free: func(t *testing.T, client *fake.Clientset, _ *Semaphore, _ *clock) {
			l, err := client.CoordinationV1().Leases(ns).Get(context.Background(), "nodepatch-lock-0", metav1.GetOptions{})
			require.NoError(t, err)
			ghost := "ghost-of-nodepatch-lock-0"
			l.Spec.HolderIdentity = &ghost
			_, err = client.CoordinationV1().Leases(ns).Update(context.Background(), l, metav1.UpdateOptions{})
			require.NoError(t, err)
		}},
		{name: "holder expired", ttl: ttl, free: func(t *testing.T, _ *fake.Clientset, b *Semaphore, dClock *clock) {
			dClock.elapsed += 2 * ttl
			require.NoError(t, b.Renew(context.Background()), "b stays live: a new version of its slot")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := newClient()
			exists := func(_ context.Context, name string) (bool, error) { return name != "ghost-of-nodepatch-lock-0", nil }
			x, _ := newSem(t, client, Config{Slots: 2, Identity: "x", TTL: tc.ttl, NodeExists: exists, PreferredSlot: slot(0)}, nil)
			b, _ := newSem(t, client, Config{Slots: 2, Identity: "b", TTL: tc.ttl, NodeExists: exists, PreferredSlot: slot(1)}, nil)
			require.True(t, take(t, x))
			require.True(t, take(t, b))
			require.Equal(t, "b", holderOfSlot(t, client, "nodepatch-lock-1"))

			// The limit shrinks to 1: d is of the new generation.
			d, dClock := newSem(t, client, Config{Slots: 1, Generation: 1, Identity: "d", TTL: tc.ttl, NodeExists: exists}, nil)
			require.NoError(t, d.EnsureHeader(context.Background()))
			require.False(t, take(t, d), "d got in while two slots were held at limit 1")

			tc.free(t, client, b, dClock)
			require.False(t, take(t, d), "d took slot 0 from its reclaimable holder while b, live, held slot 1 at limit 1")
			require.Equal(t, "b", holderOfSlot(t, client, "nodepatch-lock-1"))

			require.NoError(t, b.Release(context.Background()))
			require.True(t, take(t, d), "b gone: the reclaimable slot is d's to take")
			require.Equal(t, "d", holderOfSlot(t, client, "nodepatch-lock-0"))
		})
	}
}

// TestLeftoverPastAShrunkLimitClosesTheTopSlot: after a shrink from 3 to 2
// with a live holder still on slot 2, only slot 0 is open. Two takers that
// counted one holder at the same moment would otherwise take slots 0 and 1
// together: three holders at limit 2.
func TestLeftoverPastAShrunkLimitClosesTheTopSlot(t *testing.T) {
	client := newClient()
	x, _ := newSem(t, client, Config{Slots: 3, Identity: "x", PreferredSlot: slot(2)}, nil)
	for i, id := range []string{"p", "q"} { // fill slots 0 and 1 so that x gets slot 2
		s, _ := newSem(t, client, Config{Slots: 3, Identity: id, PreferredSlot: slot(i)}, nil)
		require.True(t, take(t, s))
	}
	require.True(t, take(t, x))
	require.Equal(t, "x", holderOfSlot(t, client, "nodepatch-lock-2"))
	for _, id := range []string{"p", "q"} {
		s, _ := newSem(t, client, Config{Slots: 3, Identity: id}, nil)
		require.NoError(t, s.Release(context.Background()))
	}

	a, _ := newSem(t, client, Config{Slots: 2, Generation: 1, Identity: "a"}, nil)
	require.NoError(t, a.EnsureHeader(context.Background()))
	b, _ := newSem(t, client, Config{Slots: 2, Generation: 1, Identity: "b"}, nil)
	// b decides on the count it read before a's write lands: one holder, x.
	took, err := b.tryTake(context.Background(), "nodepatch-lock-1")
	require.NoError(t, err)
	require.False(t, took, "slot 1 opened while x still holds slot 2 at limit 2")
	took, err = a.tryTake(context.Background(), "nodepatch-lock-0")
	require.NoError(t, err)
	require.True(t, took, "slot 0 is open: one leftover, limit 2")

	require.NoError(t, x.Release(context.Background()))
	took, err = b.tryTake(context.Background(), "nodepatch-lock-1")
	require.NoError(t, err)
	require.True(t, took, "x gone: slot 1 opens")
}

func TestSnapshotPastLimit(t *testing.T) {
	snap := Snapshot{Limit: 1}
	require.False(t, snap.PastLimit(Holder{Slot: "nodepatch-lock-0"}))
	require.True(t, snap.PastLimit(Holder{Slot: "nodepatch-lock-1"}))
	require.False(t, snap.PastLimit(Holder{Slot: "odd"}))
	require.False(t, Snapshot{}.PastLimit(Holder{Slot: "nodepatch-lock-3"}), "no limit known: nothing is past it")
}

// trackerLister reads the fake clientset's objects without going through its
// client, as an informer's cache would: no request is recorded.
type trackerLister struct{ client *fake.Clientset }

func (l trackerLister) List(labels.Selector) ([]*coordinationv1.Lease, error) {
	obj, err := l.client.Tracker().List(coordinationv1.SchemeGroupVersion.WithResource("leases"),
		coordinationv1.SchemeGroupVersion.WithKind("Lease"), ns)
	if err != nil {
		return nil, err
	}
	list := obj.(*coordinationv1.LeaseList)
	out := make([]*coordinationv1.Lease, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

func (l trackerLister) Get(name string) (*coordinationv1.Lease, error) {
	obj, err := l.client.Tracker().Get(coordinationv1.SchemeGroupVersion.WithResource("leases"), ns, name)
	if err != nil {
		return nil, err
	}
	return obj.(*coordinationv1.Lease), nil
}

// requestsOf runs fn and returns the requests it made, as "verb resource".
func requestsOf(client *fake.Clientset, fn func()) []string {
	before := len(client.Actions())
	fn()
	var out []string
	for _, a := range client.Actions()[before:] {
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
	}
	return out
}

// TestTakeCostsOneListAndOneWrite: with live holders on some slots, a take
// lists the lock once and writes once; it looks up no holder's Node (a free
// slot needs no reclaim), and it goes to the preferred slot.
func TestTakeCostsOneListAndOneWrite(t *testing.T) {
	client := newClient()
	nodeLookups := 0
	exists := func(context.Context, string) (bool, error) { nodeLookups++; return true, nil }
	for i, id := range []string{"a", "b", "c"} {
		s, _ := newSem(t, client, Config{Slots: 5, Identity: id, PreferredSlot: slot(i)}, nil)
		require.True(t, take(t, s))
	}
	for _, tc := range []struct {
		id, slot string
		verbs    []string
	}{
		{id: "d", slot: "nodepatch-lock-4", verbs: []string{"list leases", "create leases"}},
		{id: "e", slot: "nodepatch-lock-3", verbs: []string{"list leases", "create leases"}},
	} {
		want := slotIndexOf(t, tc.slot)
		s, err := New(Config{Name: "nodepatch-lock", Namespace: ns, Slots: 5, Identity: tc.id, NodeExists: exists,
			PreferredSlot: slot(want)}, client.CoordinationV1().Leases(ns), trackerLister{client}, time.Now)
		require.NoError(t, err)
		var got string
		requests := requestsOf(client, func() {
			var won bool
			got, won, err = s.TryAcquire(context.Background())
			require.NoError(t, err)
			require.True(t, won)
		})
		require.Equal(t, tc.slot, got, "the preferred slot was free")
		require.Equal(t, tc.verbs, requests)
	}
	require.Zero(t, nodeLookups, "free slots were open: no holder needed a look")

	// A taken slot is released and reused: one list, one update.
	c, _ := newSem(t, client, Config{Slots: 5, Identity: "c"}, nil)
	require.NoError(t, c.Release(context.Background()))
	f, err := New(Config{Name: "nodepatch-lock", Namespace: ns, Slots: 5, Identity: "f", NodeExists: exists},
		client.CoordinationV1().Leases(ns), trackerLister{client}, time.Now)
	require.NoError(t, err)
	requests := requestsOf(client, func() { require.True(t, take(t, f)) })
	require.Equal(t, []string{"list leases", "update leases"}, requests)
	require.Equal(t, "f", holderOfSlot(t, client, "nodepatch-lock-2"))
	require.Zero(t, nodeLookups)
}

func slotIndexOf(t *testing.T, name string) int {
	t.Helper()
	i, err := strconv.Atoi(name[len("nodepatch-lock-"):])
	require.NoError(t, err)
	return i
}

// TestFullLockLooksUpEachHolderOnce: a waiting agent wakes on every change of
// the lock; while it is full, each holder's Node is looked up once, not on
// every wake, until its slot changes or NodeRecheck passes.
func TestFullLockLooksUpEachHolderOnce(t *testing.T) {
	client := newClient()
	lookups := map[string]int{}
	exists := func(_ context.Context, name string) (bool, error) { lookups[name]++; return true, nil }
	for i, id := range []string{"a", "b"} {
		s, _ := newSem(t, client, Config{Slots: 2, Identity: id, PreferredSlot: slot(i)}, nil)
		require.True(t, take(t, s))
	}
	d, dClock := newSem(t, client, Config{Slots: 2, Identity: "d", NodeExists: exists}, nil)
	for range 3 {
		require.False(t, take(t, d))
	}
	require.Equal(t, map[string]int{"a": 1, "b": 1}, lookups)

	dClock.elapsed += NodeRecheck
	require.False(t, take(t, d))
	require.Equal(t, map[string]int{"a": 2, "b": 2}, lookups, "past NodeRecheck each holder is looked up again")

	// A slot that changes hands is a new record: its holder is looked up.
	a, _ := newSem(t, client, Config{Slots: 2, Identity: "a"}, nil)
	require.NoError(t, a.Release(context.Background()))
	g, _ := newSem(t, client, Config{Slots: 2, Identity: "g", PreferredSlot: slot(0)}, nil)
	require.True(t, take(t, g))
	require.False(t, take(t, d))
	require.Equal(t, map[string]int{"a": 2, "b": 2, "g": 1}, lookups)
}

// TestAdmittedTogetherTryDifferentSlots: takers with no hint start from an
// offset of their own, so that of several nodes admitted at once most find
// their first slot free (no conflict).
func TestAdmittedTogetherTryDifferentSlots(t *testing.T) {
	s := func(id string) *Semaphore {
		sem, err := New(Config{Name: "nodepatch-lock", Namespace: ns, Slots: 8, Identity: id}, nil, nil, time.Now)
		require.NoError(t, err)
		return sem
	}
	live := liveLock{count: slotCount{limit: 8}, slots: map[string]*coordinationv1.Lease{}}
	first := map[string]bool{}
	for i := range 8 {
		order := s(fmt.Sprintf("node-%d", i)).takeOrder(live)
		require.Len(t, order, 8, "every open slot is tried")
		first[order[0]] = true
	}
	require.Greater(t, len(first), 1, "every taker starts at the same slot")
}

// TestPreferredSlotIsAwaitedWhileItIsReleased: a taker suggested a slot that
// is still held waits for it (the other free slots are likely suggested to
// others) for PreferredWait, then takes any free slot.
func TestPreferredSlotIsAwaitedWhileItIsReleased(t *testing.T) {
	client := newClient()
	a, _ := newSem(t, client, Config{Slots: 3, Identity: "a", PreferredSlot: slot(0)}, nil)
	require.True(t, take(t, a))
	b, bClock := newSem(t, client, Config{Slots: 3, Identity: "b", PreferredSlot: slot(0)}, nil)
	require.False(t, take(t, b), "b took another slot while its own was being released")
	bClock.elapsed += PreferredWait / 2
	require.False(t, take(t, b))

	require.NoError(t, a.Release(context.Background()))
	require.True(t, take(t, b))
	require.Equal(t, "b", holderOfSlot(t, client, "nodepatch-lock-0"), "b took the slot it was suggested")

	c, cClock := newSem(t, client, Config{Slots: 3, Identity: "c", PreferredSlot: slot(0)}, nil)
	require.False(t, take(t, c))
	cClock.elapsed += PreferredWait
	require.True(t, take(t, c), "c waited PreferredWait for a slot that stays held")
	require.NotEqual(t, "c", holderOfSlot(t, client, "nodepatch-lock-0"))
}

// TestPreferredSlotIsAwaitedAfreshEachCycle: the wait for a suggested slot
// ends with the take; suggested the same slot in a later cycle, the taker
// waits for it again rather than racing for another.
func TestPreferredSlotIsAwaitedAfreshEachCycle(t *testing.T) {
	client := newClient()
	a, _ := newSem(t, client, Config{Slots: 3, Identity: "a", PreferredSlot: slot(0)}, nil)
	require.True(t, take(t, a))
	b, bClock := newSem(t, client, Config{Slots: 3, Identity: "b", PreferredSlot: slot(0)}, nil)
	require.False(t, take(t, b))
	require.NoError(t, a.Release(context.Background()))
	require.True(t, take(t, b))
	bClock.elapsed += 2 * PreferredWait // b's cycle
	require.NoError(t, b.Release(context.Background()))

	require.True(t, take(t, a))
	require.False(t, take(t, b), "b took another slot instead of waiting for the one it was suggested again")
}

// TestEnsureHeaderReadsTheCacheFirst: an agent start whose header the cache
// shows bound (the controller's limit, or this agent's own) costs no request;
// one that must write reads the API server's copy.
func TestEnsureHeaderReadsTheCacheFirst(t *testing.T) {
	client := newClient()
	sem, err := New(Config{Name: "nodepatch-lock", Namespace: ns, Slots: 2, Identity: "a"},
		client.CoordinationV1().Leases(ns), trackerLister{client}, time.Now)
	require.NoError(t, err)
	require.Equal(t, []string{"get leases", "create leases"}, requestsOf(client, func() { require.NoError(t, sem.EnsureHeader(context.Background())) }))
	require.Empty(t, requestsOf(client, func() { require.NoError(t, sem.EnsureHeader(context.Background())) }), "its own limit is there")
	require.NoError(t, SetControllerLimit(context.Background(), client.CoordinationV1().Leases(ns), ns, "nodepatch-lock", 5, "max-unavailable=5"))
	require.Empty(t, requestsOf(client, func() { require.NoError(t, sem.EnsureHeader(context.Background())) }), "the controller's limit binds")
	newer, err := New(Config{Name: "nodepatch-lock", Namespace: ns, Slots: 3, Identity: "a"},
		client.CoordinationV1().Leases(ns), trackerLister{client}, time.Now)
	require.NoError(t, err)
	require.Empty(t, requestsOf(client, func() { require.NoError(t, newer.EnsureHeader(context.Background())) }))
}

// frozenLister is an informer cache that stopped at one moment.
type frozenLister map[string]*coordinationv1.Lease

func (f frozenLister) List(labels.Selector) ([]*coordinationv1.Lease, error) {
	out := make([]*coordinationv1.Lease, 0, len(f))
	for _, l := range f {
		out = append(out, l)
	}
	return out, nil
}

func (f frozenLister) Get(name string) (*coordinationv1.Lease, error) {
	if l, ok := f[name]; ok {
		return l, nil
	}
	return nil, apierrors.NewNotFound(coordinationv1.Resource("leases"), name)
}

// TestHeldOnlyOnTheAPIServersWord: a cache that still shows this identity
// holding a slot the API server has since freed does not make TryAcquire say
// held (the agent would taint on it); the API server's List decides.
func TestHeldOnlyOnTheAPIServersWord(t *testing.T) {
	client := newClient()
	a, _ := newSem(t, client, Config{Slots: 1, Identity: "a"}, nil)
	require.True(t, take(t, a))
	frozen := frozenLister{}
	leases, err := client.CoordinationV1().Leases(ns).List(context.Background(), metav1.ListOptions{})
	require.NoError(t, err)
	for i := range leases.Items {
		frozen[leases.Items[i].Name] = &leases.Items[i]
	}
	require.NoError(t, a.Release(context.Background()))

	restarted, err := New(Config{Name: "nodepatch-lock", Namespace: ns, Slots: 1, Identity: "a"},
		client.CoordinationV1().Leases(ns), frozen, time.Now)
	require.NoError(t, err)
	var won bool
	require.Contains(t, requestsOf(client, func() {
		_, won, err = restarted.TryAcquire(context.Background())
	}), "list leases")
	require.NoError(t, err)
	require.False(t, won, "held on the word of a stale cache")
}
