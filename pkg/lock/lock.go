// Package lock is a cluster-wide counting semaphore made of coordination.k8s.io/v1
// Leases: slot Leases NAME-0 … NAME-(N-1), each held by at most one node (its
// holderIdentity), and a header Lease NAME that carries the cluster-wide pause.
//
// Safety rests on the API server's optimistic concurrency: a slot changes hands
// only by an update that carries the resourceVersion the taker read, so two nodes
// can never both win the same slot, and there are only N slots. A holder count
// over all slots (including slots left from a larger concurrency) is checked
// before taking one, so shrinking the concurrency never lets in more than N.
package lock

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	coordclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	coordlisters "k8s.io/client-go/listers/coordination/v1"

	"github.com/nodepatch/nodepatch/pkg/state"
)

// LabelLock marks every Lease of a lock; its value is the lock's name.
const LabelLock = "nodepatch.io/lock"

// Config says which lock a Semaphore is and who takes it.
type Config struct {
	Name      string // header Lease name; slots are Name-0 … Name-(Slots-1)
	Namespace string
	Slots     int
	Identity  string // the node name
	// TTL, when positive, lets a slot whose holder has not renewed it for TTL be taken.
	// Zero (the default) never takes a live node's slot: a node that did not come back
	// keeps its slot and the rollout halts, which is safer than going on.
	TTL time.Duration
	// NodeExists tells whether a holder is still a Node of the cluster; the slot of a
	// deleted node is reclaimed.
	NodeExists func(ctx context.Context, name string) (bool, error)
}

// NodeExistsIn is the usual Config.NodeExists: a Get of the Node. Only a NotFound
// answer says the holder is gone; any other error keeps its slot.
func NodeExistsIn(client kubernetes.Interface) func(context.Context, string) (bool, error) {
	return func(ctx context.Context, name string) (bool, error) {
		_, err := client.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil, err
	}
}

// Semaphore reads the lock from an informer's lister and writes through the API.
type Semaphore struct {
	cfg    Config
	leases coordclient.LeaseInterface
	lister coordlisters.LeaseNamespaceLister
	now    func() time.Time
}

// New returns a Semaphore. lister must list the Leases labelled LabelLock=cfg.Name
// in cfg.Namespace (an informer's cache); writes go through leases.
func New(cfg Config, leases coordclient.LeaseInterface, lister coordlisters.LeaseNamespaceLister, now func() time.Time) (*Semaphore, error) {
	if cfg.Slots < 1 {
		return nil, fmt.Errorf("lock %s: %d slots: want at least 1", cfg.Name, cfg.Slots)
	}
	if cfg.Identity == "" || cfg.Name == "" || cfg.Namespace == "" {
		return nil, fmt.Errorf("lock: name %q, namespace %q and identity %q must all be set", cfg.Name, cfg.Namespace, cfg.Identity)
	}
	return &Semaphore{cfg: cfg, leases: leases, lister: lister, now: now}, nil
}

// Selector selects the Leases of the lock called name, for the informer that feeds New.
func Selector(name string) labels.Selector {
	return labels.SelectorFromSet(labels.Set{LabelLock: name})
}

// Holder is one held slot.
type Holder struct {
	Slot     string
	Identity string
	Since    time.Time
	Renewed  time.Time
}

// Snapshot is the lock as the cache sees it.
type Snapshot struct {
	Holders     []Holder
	PauseReason string
}

// Held returns the slot this identity holds, if any.
func (s Snapshot) Held(identity string) (Holder, bool) {
	for _, h := range s.Holders {
		if h.Identity == identity {
			return h, true
		}
	}
	return Holder{}, false
}

// Snapshot reads the lock from the cache.
func (s *Semaphore) Snapshot() (Snapshot, error) {
	list, err := s.lister.List(Selector(s.cfg.Name))
	if err != nil {
		return Snapshot{}, fmt.Errorf("listing leases of lock %s: %w", s.cfg.Name, err)
	}
	var snap Snapshot
	for _, l := range list {
		if l.Name == s.cfg.Name {
			snap.PauseReason = l.Annotations[state.AnnotationPause]
			continue
		}
		if h := holderOf(l); h.Identity != "" {
			snap.Holders = append(snap.Holders, h)
		}
	}
	sort.Slice(snap.Holders, func(i, j int) bool { return snap.Holders[i].Slot < snap.Holders[j].Slot })
	return snap, nil
}

func holderOf(l *coordinationv1.Lease) Holder {
	h := Holder{Slot: l.Name}
	if l.Spec.HolderIdentity != nil {
		h.Identity = *l.Spec.HolderIdentity
	}
	if l.Spec.AcquireTime != nil {
		h.Since = l.Spec.AcquireTime.Time
	}
	if l.Spec.RenewTime != nil {
		h.Renewed = l.Spec.RenewTime.Time
	}
	return h
}

// EnsureHeader creates the header Lease (where the pause lives) if it is missing, so
// that an operator can always annotate it.
func (s *Semaphore) EnsureHeader(ctx context.Context) error {
	if _, err := s.lister.Get(s.cfg.Name); err == nil {
		return nil
	}
	_, err := s.leases.Create(ctx, s.newLease(s.cfg.Name, ""), metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating lock header lease %s/%s: %w", s.cfg.Namespace, s.cfg.Name, err)
	}
	return nil
}

// SlotName is the name of slot i.
func (s *Semaphore) SlotName(i int) string { return s.cfg.Name + "-" + strconv.Itoa(i) }

// TryAcquire takes a free slot, or confirms the one this identity already holds. It
// returns false, with no error, when every slot is held.
func (s *Semaphore) TryAcquire(ctx context.Context) (string, bool, error) {
	snap, err := s.Snapshot()
	if err != nil {
		return "", false, err
	}
	if h, ok := snap.Held(s.cfg.Identity); ok {
		return h.Slot, true, nil
	}
	if len(snap.Holders) >= s.cfg.Slots && !s.anyReclaimable(ctx, snap) {
		return "", false, nil
	}
	for i := 0; i < s.cfg.Slots; i++ {
		won, err := s.tryTake(ctx, s.SlotName(i))
		if err != nil || won {
			if won {
				s.awaitCache(ctx, s.SlotName(i), true)
			}
			return s.SlotName(i), won, err
		}
	}
	return "", false, nil
}

// cacheLag bounds the wait for the informer to show this agent's own write.
const cacheLag = 5 * time.Second

// awaitCache waits until the cache shows slot held (or not held) by this
// identity: read-your-writes. Without it a decision taken right after a release
// could still see the slot as ours. The wait ends early if someone else's later
// write is what the cache shows; after cacheLag it gives up, and the API server
// stays the judge (HoldsNow before a reboot).
func (s *Semaphore) awaitCache(ctx context.Context, slot string, held bool) {
	deadline := time.Now().Add(cacheLag)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		l, err := s.lister.Get(slot)
		ours := err == nil && holderOf(l).Identity == s.cfg.Identity
		if ours == held {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (s *Semaphore) anyReclaimable(ctx context.Context, snap Snapshot) bool {
	for _, h := range snap.Holders {
		if ok, _ := s.reclaimable(ctx, h); ok {
			return true
		}
	}
	return false
}

// tryTake takes one slot when it is free or reclaimable; a conflict means another
// node moved first and is a loss, not an error.
func (s *Semaphore) tryTake(ctx context.Context, name string) (bool, error) {
	current, err := s.leases.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return s.create(ctx, name)
	}
	if err != nil {
		return false, fmt.Errorf("reading lock slot %s: %w", name, err)
	}
	h := holderOf(current)
	if h.Identity == s.cfg.Identity {
		return true, nil
	}
	if h.Identity != "" {
		if ok, err := s.reclaimable(ctx, h); !ok {
			return false, err
		}
	}
	if n, err := s.liveHolders(ctx); err != nil || (h.Identity == "" && n >= s.cfg.Slots) {
		return false, err
	}
	return s.update(ctx, current, s.cfg.Identity)
}

// liveHolders counts holders over every slot Lease of the lock, read from the API
// rather than the cache, so that the count taken just before a write is current.
func (s *Semaphore) liveHolders(ctx context.Context) (int, error) {
	list, err := s.leases.List(ctx, metav1.ListOptions{LabelSelector: Selector(s.cfg.Name).String()})
	if err != nil {
		return 0, fmt.Errorf("counting holders of lock %s: %w", s.cfg.Name, err)
	}
	n := 0
	for i := range list.Items {
		l := &list.Items[i]
		if l.Name != s.cfg.Name && holderOf(l).Identity != "" {
			n++
		}
	}
	return n, nil
}

// reclaimable says whether a held slot may be taken: its holder is no longer a
// Node, or (only with a TTL) it has not been renewed for the TTL.
func (s *Semaphore) reclaimable(ctx context.Context, h Holder) (bool, error) {
	if s.cfg.TTL > 0 && !h.Renewed.IsZero() && s.now().Sub(h.Renewed) > s.cfg.TTL {
		return true, nil
	}
	if s.cfg.NodeExists == nil {
		return false, nil
	}
	exists, err := s.cfg.NodeExists(ctx, h.Identity)
	if err != nil {
		return false, fmt.Errorf("checking whether lock holder %s still exists: %w", h.Identity, err)
	}
	return !exists, nil
}

func (s *Semaphore) create(ctx context.Context, name string) (bool, error) {
	if n, err := s.liveHolders(ctx); err != nil || n >= s.cfg.Slots {
		return false, err
	}
	_, err := s.leases.Create(ctx, s.newLease(name, s.cfg.Identity), metav1.CreateOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsAlreadyExists(err):
		return false, nil
	default:
		return false, fmt.Errorf("creating lock slot %s: %w", name, err)
	}
}

func (s *Semaphore) update(ctx context.Context, current *coordinationv1.Lease, identity string) (bool, error) {
	next := current.DeepCopy()
	s.setHolder(next, identity)
	_, err := s.leases.Update(ctx, next, metav1.UpdateOptions{})
	switch {
	case err == nil:
		return true, nil
	case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("writing lock slot %s: %w", current.Name, err)
	}
}

func (s *Semaphore) newLease(name, identity string) *coordinationv1.Lease {
	l := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{
		Name:      name,
		Namespace: s.cfg.Namespace,
		Labels:    map[string]string{LabelLock: s.cfg.Name, "app.kubernetes.io/managed-by": "nodepatch"},
	}}
	if name != s.cfg.Name {
		s.setHolder(l, identity)
	}
	return l
}

func (s *Semaphore) setHolder(l *coordinationv1.Lease, identity string) {
	now := metav1.NewMicroTime(s.now())
	if identity == "" {
		l.Spec.HolderIdentity, l.Spec.AcquireTime, l.Spec.RenewTime, l.Spec.LeaseDurationSeconds = nil, nil, nil, nil
		return
	}
	l.Spec.HolderIdentity = &identity
	l.Spec.AcquireTime, l.Spec.RenewTime = &now, &now
	if s.cfg.TTL > 0 {
		secs := int32(s.cfg.TTL / time.Second)
		l.Spec.LeaseDurationSeconds = &secs
	}
}

// Release frees every slot this identity holds. Releasing a slot not held is a no-op.
func (s *Semaphore) Release(ctx context.Context) error {
	return s.forEachOwnSlot(ctx, func(l *coordinationv1.Lease) error {
		if _, err := s.update(ctx, l, ""); err != nil {
			return err
		}
		s.awaitCache(ctx, l.Name, false)
		return nil
	})
}

// Renew refreshes the renew time of the slot this identity holds, which only
// matters when a TTL is set.
func (s *Semaphore) Renew(ctx context.Context) error {
	return s.forEachOwnSlot(ctx, func(l *coordinationv1.Lease) error {
		next := l.DeepCopy()
		now := metav1.NewMicroTime(s.now())
		next.Spec.RenewTime = &now
		_, err := s.leases.Update(ctx, next, metav1.UpdateOptions{})
		if err != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("renewing lock slot %s: %w", l.Name, err)
		}
		return nil
	})
}

// forEachOwnSlot reads the slots from the API (not the cache: a release must see
// the newest version) and calls fn for each one this identity holds.
func (s *Semaphore) forEachOwnSlot(ctx context.Context, fn func(*coordinationv1.Lease) error) error {
	list, err := s.leases.List(ctx, metav1.ListOptions{LabelSelector: Selector(s.cfg.Name).String()})
	if err != nil {
		return fmt.Errorf("reading lock %s: %w", s.cfg.Name, err)
	}
	for i := range list.Items {
		l := &list.Items[i]
		if l.Name != s.cfg.Name && holderOf(l).Identity == s.cfg.Identity {
			if err := fn(l); err != nil {
				return err
			}
		}
	}
	return nil
}

// HoldsNow asks the API server, not the cache, whether this identity holds a slot.
// The agent calls it right before rebooting: no reboot without the lock.
func (s *Semaphore) HoldsNow(ctx context.Context) (bool, error) {
	held := false
	err := s.forEachOwnSlot(ctx, func(*coordinationv1.Lease) error { held = true; return nil })
	return held, err
}

// Describe is a one-line account of the holders, for logs and Events.
func (snap Snapshot) Describe() string {
	if len(snap.Holders) == 0 {
		return "no holders"
	}
	parts := make([]string, len(snap.Holders))
	for i, h := range snap.Holders {
		parts[i] = h.Identity + " (" + h.Slot + ")"
	}
	return "held by " + strings.Join(parts, ", ")
}
