// Package lock is a cluster-wide counting semaphore made of coordination.k8s.io/v1
// Leases: slot Leases NAME-0 … NAME-(N-1), each held by at most one node (its
// holderIdentity), and a header Lease NAME that carries the cluster-wide pause.
//
// Safety rests on the API server's optimistic concurrency: a slot changes hands
// only by an update that carries the resourceVersion the taker read, so two nodes
// can never both win the same slot, and there are only N slots. A holder count
// over all slots (including slots left from a larger concurrency) is checked
// before taking one, so shrinking the concurrency never lets in more than N.
//
// The limit in force is written on the header Lease, with the configuration
// generation that set it (the DaemonSet's pod-template-generation): an agent of
// an older generation obeys the newer limit, so a helm upgrade that shrinks the
// limit holds even for agents not yet replaced.
package lock

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	coordclient "k8s.io/client-go/kubernetes/typed/coordination/v1"
	coordlisters "k8s.io/client-go/listers/coordination/v1"
	"k8s.io/client-go/util/retry"

	"github.com/nodepatch/nodepatch/pkg/state"
)

// LabelLock marks every Lease of a lock; its value is the lock's name.
const LabelLock = "nodepatch.io/lock"

// Annotations of the header Lease that carry the limit in force.
const (
	AnnotationLimit           = "nodepatch.io/limit"
	AnnotationLimitGeneration = "nodepatch.io/limit-generation"
	// AnnotationLimitSource "controller": the rollout controller keeps the
	// limit, and it binds every agent whatever its generation.
	AnnotationLimitSource = "nodepatch.io/limit-source"
	// AnnotationRolloutPolicy: the rollout controller's rules (policy.Rules'
	// text), so that `nodepatch status` can tell which one holds each node.
	AnnotationRolloutPolicy = "nodepatch.io/rollout-policy"
	// AnnotationRolloutPolicyError: why the rollout controller's pools
	// ConfigMap is not in force (it keeps the last good pools); absent when it is.
	AnnotationRolloutPolicyError = "nodepatch.io/rollout-policy-error"
)

// LimitSourceController is AnnotationLimitSource's value when the rollout
// controller sets the limit.
const LimitSourceController = "controller"

// ErrNotHeld: the API server says this identity holds no slot.
var ErrNotHeld = errors.New("the lock slot is not held according to the API server")

// Config says which lock a Semaphore is and who takes it.
type Config struct {
	Name      string // header Lease name; slots are Name-0 … Name-(Slots-1)
	Namespace string
	Slots     int
	// Generation is the configuration generation Slots comes from; a limit on the
	// header from a newer generation wins over Slots.
	Generation int64
	Identity   string // the node name
	// TTL, when positive, lets a slot whose holder has not renewed it for TTL be taken.
	// Zero (the default) never takes a live node's slot: a node that did not come back
	// keeps its slot and the rollout halts, which is safer than going on. Expiry is
	// judged by the taker's own monotonic clock since it last saw the slot's record
	// change, never by comparing its clock with the holder's renew time.
	TTL time.Duration
	// NodeExists tells whether a holder is still a Node of the cluster; the slot of a
	// deleted node is reclaimed. A holder found to exist is not asked about
	// again for NodeRecheck while its slot's record is unchanged.
	NodeExists func(ctx context.Context, name string) (bool, error)
	// NodeRecheck, when positive, stands for the NodeRecheck constant.
	NodeRecheck time.Duration
	// PreferredSlot, when set, names the slot index to try first (-1: none):
	// the rollout controller's hint, so that the nodes it admits together do
	// not race for the same slot.
	PreferredSlot func() int
}

// NodeRecheck is how long a holder found to be a Node is taken to stay one
// (while its slot is unchanged): a waiting agent wakes on every change of the
// lock, and would otherwise look up every holder's Node each time.
const NodeRecheck = 30 * time.Second

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
	now    func() time.Time // written into the Leases, for people to read
	// mono is this process's monotonic clock, for elapsed times only.
	mono func() time.Time

	mu sync.Mutex
	// seen is, per slot, its record's resourceVersion and when this process
	// first saw that version: the base of TTL expiry.
	seen map[string]seenRecord
	// exists is, per slot, the record whose holder was last found to be a
	// Node, and when.
	exists map[string]seenRecord
	// waitingFor is the preferred slot this process last found held, since
	// waitingSince (see awaitPreferred).
	waitingFor   int
	waitingSince time.Time
	// confirmed is when this process last wrote its own slot successfully
	// (take or renew): the base of self-fencing.
	confirmed time.Time
}

type seenRecord struct {
	version string
	at      time.Time
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
	return &Semaphore{cfg: cfg, leases: leases, lister: lister, now: now, mono: time.Now, seen: map[string]seenRecord{}, exists: map[string]seenRecord{}, waitingFor: -1}, nil
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
	version  string
}

// Snapshot is the lock as the cache sees it.
type Snapshot struct {
	Holders     []Holder
	PauseReason string
	// Limit is the limit in force: the header's, when a newer generation set it.
	Limit int
}

// PastLimit says whether h's slot lies past the limit in force: a slot taken
// under a larger limit. Its holder may finish a cycle under way in it, but must
// not begin one (the holders would outnumber the limit).
func (s Snapshot) PastLimit(h Holder) bool {
	i := strings.LastIndex(h.Slot, "-")
	n, err := strconv.Atoi(h.Slot[i+1:])
	return i >= 0 && err == nil && s.Limit > 0 && n >= s.Limit
}

// heldSlot says whether slot is held, by anyone, as the cache shows it.
func (s Snapshot) heldSlot(slot string) bool {
	for _, h := range s.Holders {
		if h.Slot == slot {
			return true
		}
	}
	return false
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
	snap := Snapshot{Limit: s.cfg.Slots}
	for _, l := range list {
		if l.Name == s.cfg.Name {
			snap.PauseReason = l.Annotations[state.AnnotationPause]
			snap.Limit = s.limitFrom(l)
			continue
		}
		s.noteSeen(l)
		if h := holderOf(l); h.Identity != "" {
			snap.Holders = append(snap.Holders, h)
		}
	}
	sort.Slice(snap.Holders, func(i, j int) bool { return snap.Holders[i].Slot < snap.Holders[j].Slot })
	return snap, nil
}

// limitFrom is the limit in force given the header Lease: the header's when it
// was set by a newer configuration generation than this agent's, else its own.
func (s *Semaphore) limitFrom(header *coordinationv1.Lease) int {
	limit, gen, ok := ParseLimit(header)
	if ok && (gen > s.cfg.Generation || controllerLimit(header)) {
		return limit
	}
	return s.cfg.Slots
}

func controllerLimit(header *coordinationv1.Lease) bool {
	return header.Annotations[AnnotationLimitSource] == LimitSourceController
}

// ParseLimit reads the limit and its generation off a header Lease.
func ParseLimit(header *coordinationv1.Lease) (limit int, generation int64, ok bool) {
	limit, err := strconv.Atoi(header.Annotations[AnnotationLimit])
	if err != nil || limit < 1 {
		return 0, 0, false
	}
	generation, err = strconv.ParseInt(header.Annotations[AnnotationLimitGeneration], 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return limit, generation, true
}

// noteSeen remembers when this process first saw each version of a slot.
func (s *Semaphore) noteSeen(l *coordinationv1.Lease) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec, ok := s.seen[l.Name]; !ok || rec.version != l.ResourceVersion {
		s.seen[l.Name] = seenRecord{version: l.ResourceVersion, at: s.mono()}
	}
}

// unchangedFor is how long this process has seen the slot's record unchanged.
func (s *Semaphore) unchangedFor(slot, version string) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.seen[slot]
	if !ok || rec.version != version {
		return 0
	}
	return s.mono().Sub(rec.at)
}

func (s *Semaphore) markConfirmed() {
	s.mu.Lock()
	s.confirmed = s.mono()
	s.mu.Unlock()
}

func holderOf(l *coordinationv1.Lease) Holder {
	h := Holder{Slot: l.Name, version: l.ResourceVersion}
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
// that an operator can always annotate it, and writes this agent's limit on it
// unless a newer configuration generation wrote one.
func (s *Semaphore) EnsureHeader(ctx context.Context) error {
	if cached, err := s.lister.Get(s.cfg.Name); err == nil && !s.headerNeedsWrite(cached) {
		// The cache shows nothing to write: no request (every agent start
		// would otherwise read the header once more).
		return nil
	}
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		current, err := s.leases.Get(ctx, s.cfg.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			header := s.newLease(s.cfg.Name, "")
			setLimit(header, s.cfg.Slots, s.cfg.Generation)
			_, err = s.leases.Create(ctx, header, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(coordinationv1.Resource("leases"), s.cfg.Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if !s.headerNeedsWrite(current) {
			return nil
		}
		next := current.DeepCopy()
		setLimit(next, s.cfg.Slots, s.cfg.Generation)
		_, err = s.leases.Update(ctx, next, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("writing the limit on lock header lease %s/%s: %w", s.cfg.Namespace, s.cfg.Name, err)
	}
	return nil
}

// headerNeedsWrite: this agent's limit is not on the header, and no newer
// generation (or the controller) wrote one that binds it.
func (s *Semaphore) headerNeedsWrite(header *coordinationv1.Lease) bool {
	limit, gen, ok := ParseLimit(header)
	switch {
	case ok && (gen > s.cfg.Generation || controllerLimit(header)):
		return false
	case ok && limit == s.cfg.Slots && gen == s.cfg.Generation:
		return false
	}
	return true
}

// SetControllerLimit is the rollout controller's write of the limit on the
// header Lease of the lock called name: it binds every agent from then on.
func SetControllerLimit(ctx context.Context, leases coordclient.LeaseInterface, namespace, name string, limit int, policy string) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		current, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			header := &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace,
				Labels: map[string]string{LabelLock: name, "app.kubernetes.io/managed-by": "nodepatch"}}}
			setLimit(header, limit, 0)
			header.Annotations[AnnotationLimitSource] = LimitSourceController
			header.Annotations[AnnotationRolloutPolicy] = policy
			_, err = leases.Create(ctx, header, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(coordinationv1.Resource("leases"), name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if l, _, ok := ParseLimit(current); ok && l == limit && controllerLimit(current) && current.Annotations[AnnotationRolloutPolicy] == policy {
			return nil
		}
		next := current.DeepCopy()
		_, gen, _ := ParseLimit(current)
		setLimit(next, limit, gen)
		next.Annotations[AnnotationLimitSource] = LimitSourceController
		next.Annotations[AnnotationRolloutPolicy] = policy
		_, err = leases.Update(ctx, next, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("writing the limit %d on lock header lease %s/%s: %w", limit, namespace, name, err)
	}
	return nil
}

func setLimit(l *coordinationv1.Lease, limit int, generation int64) {
	if l.Annotations == nil {
		l.Annotations = map[string]string{}
	}
	l.Annotations[AnnotationLimit] = strconv.Itoa(limit)
	l.Annotations[AnnotationLimitGeneration] = strconv.FormatInt(generation, 10)
}

// SlotName is the name of slot i.
func (s *Semaphore) SlotName(i int) string { return s.cfg.Name + "-" + strconv.Itoa(i) }

// TryAcquire takes a free slot, or confirms the one this identity already holds. It
// returns false, with no error, when every slot is held or another taker won
// the slot it tried (it tries again on the next change of the Leases). Slots
// of holders that are gone (or expired, with a TTL) are freed first, wherever
// they are: a slot left from a larger limit, held by a deleted node, would
// otherwise count for ever.
//
// A take costs one List of the slots and one write: the List is the fresh
// read both of the holder count and of the slot's version, and the write
// carries that version.
func (s *Semaphore) TryAcquire(ctx context.Context) (string, bool, error) {
	snap, err := s.Snapshot()
	if err != nil {
		return "", false, err
	}
	if _, ok := snap.Held(s.cfg.Identity); ok {
		// The caller acts on a true answer (the agent taints next), so the
		// cache's word is not enough: the API server's List says.
		return s.heldOnServer(ctx)
	}
	if s.awaitPreferred(snap.heldSlot, snap.Limit) {
		return "", false, nil
	}
	if len(snap.Holders) >= snap.Limit && !s.reclaimAny(ctx, snap) {
		return "", false, nil
	}
	live, err := s.liveSlots(ctx)
	if err != nil {
		return "", false, err
	}
	if name, ok := live.heldBy(s.cfg.Identity); ok {
		s.markConfirmed()
		return name, true, nil
	}
	if s.awaitPreferred(live.heldSlot, live.count.limit-live.count.past) {
		return "", false, nil
	}
	for _, name := range s.takeOrder(live) {
		won, lost, err := s.takeFrom(ctx, live, name)
		switch {
		case err != nil:
			return name, false, err
		case won:
			s.markConfirmed()
			s.forgetWait()
			s.awaitCache(ctx, name, true)
			return name, true, nil
		case lost:
			// Another taker moved since the List: what it shows is stale.
			return "", false, nil
		}
	}
	return "", false, nil
}

// heldOnServer is the slot the API server shows this identity holding, if
// any; a cache that showed one the server no longer has is caught up later
// (the taker tries again on the next change of the Leases).
func (s *Semaphore) heldOnServer(ctx context.Context) (string, bool, error) {
	live, err := s.liveSlots(ctx)
	if err != nil {
		return "", false, err
	}
	name, ok := live.heldBy(s.cfg.Identity)
	if ok {
		s.markConfirmed()
	}
	return name, ok, nil
}

// PreferredWait is how long a taker waits for the slot it was suggested while
// that slot is still held, before it tries the others: the suggestion is a
// slot about to be released, and the other free slots are likely suggested
// to other nodes admitted at the same time. It outlasts a busy API server's
// delay between a holder's cleaned Node and its release (seconds at 1,000
// nodes on a small machine); a holder that never releases costs a suggested
// node this long, and only while other slots are free.
const PreferredWait = 15 * time.Second

// awaitPreferred says whether to wait for the preferred slot: held (by
// someone else) says it is, it lies below open, and this process has not
// waited for it PreferredWait yet.
func (s *Semaphore) awaitPreferred(held func(slot string) bool, open int) bool {
	preferred := s.preferred()
	if preferred < 0 || preferred >= open || !held(s.SlotName(preferred)) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.waitingFor != preferred {
		s.waitingFor, s.waitingSince = preferred, s.mono()
	}
	return s.mono().Sub(s.waitingSince) < PreferredWait
}

// preferred is the slot index the rollout controller suggests; -1 for none.
func (s *Semaphore) preferred() int {
	if s.cfg.PreferredSlot == nil {
		return -1
	}
	return s.cfg.PreferredSlot()
}

// forgetWait ends the wait for a suggested slot once a slot is won: a later
// cycle suggested the same slot waits for it afresh.
func (s *Semaphore) forgetWait() {
	s.mu.Lock()
	s.waitingFor = -1
	s.mu.Unlock()
}

// takeOrder is the order in which slots are tried: free slots before held
// ones (a held slot is taken only from a holder that is gone, which costs a
// look at its Node); among the free, the preferred one (the rollout
// controller's hint) first, then the others from an offset of this
// identity's own, so that takers admitted together try different slots
// rather than all the lowest free one.
func (s *Semaphore) takeOrder(live liveLock) []string {
	open := live.count.limit - live.count.past
	if open <= 0 {
		return nil
	}
	preferred := s.preferred()
	indices := make([]int, 0, open)
	if preferred >= 0 && preferred < open {
		indices = append(indices, preferred)
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(s.cfg.Identity))
	offset := int(h.Sum32() % uint32(open))
	for k := range open {
		if i := (offset + k) % open; i != preferred {
			indices = append(indices, i)
		}
	}
	var free, held []string
	for _, i := range indices {
		name := s.SlotName(i)
		if l, ok := live.slots[name]; ok && holderOf(l).Identity != "" {
			held = append(held, name)
		} else {
			free = append(free, name)
		}
	}
	return append(free, held...)
}

// reclaimAny frees every reclaimable slot outside the limit's range, and says
// whether any slot (inside the range too) may be taken.
func (s *Semaphore) reclaimAny(ctx context.Context, snap Snapshot) bool {
	found := false
	for _, h := range snap.Holders {
		ok, _ := s.reclaimable(ctx, h)
		if !ok {
			continue
		}
		found = true
		if s.slotIndex(h.Slot) >= snap.Limit {
			s.clearSlot(ctx, h)
		}
	}
	return found
}

// slotIndex is the number of a slot Lease, or -1.
func (s *Semaphore) slotIndex(name string) int {
	i, err := strconv.Atoi(strings.TrimPrefix(name, s.cfg.Name+"-"))
	if err != nil || !strings.HasPrefix(name, s.cfg.Name+"-") {
		return -1
	}
	return i
}

// clearSlot frees a reclaimable slot that no taker would take (its index is past
// the limit), if it still holds what was judged.
func (s *Semaphore) clearSlot(ctx context.Context, h Holder) {
	current, err := s.leases.Get(ctx, h.Slot, metav1.GetOptions{})
	if err != nil || holderOf(current).Identity != h.Identity || current.ResourceVersion != h.version {
		return
	}
	_, _ = s.update(ctx, current, "")
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

// tryTake takes one slot when it is free or reclaimable, on a fresh List; a
// conflict means another node moved first and is a loss, not an error.
func (s *Semaphore) tryTake(ctx context.Context, name string) (bool, error) {
	live, err := s.liveSlots(ctx)
	if err != nil {
		return false, err
	}
	won, _, err := s.takeFrom(ctx, live, name)
	return won, err
}

// takeFrom takes slot name as live shows it: creates it when it does not
// exist, takes it when it is free or its holder reclaimable, and only when the
// holders of the other slots leave room. lost says that another writer
// changed the slot since live was read.
func (s *Semaphore) takeFrom(ctx context.Context, live liveLock, name string) (won, lost bool, err error) {
	count := live.count
	current, ok := live.slots[name]
	if !ok {
		if count.holders >= count.limit || !count.usable(s.slotIndex(name)) {
			return false, false, nil
		}
		return s.create(ctx, name)
	}
	s.noteSeen(current)
	h := holderOf(current)
	if h.Identity == s.cfg.Identity {
		return true, false, nil
	}
	if h.Identity != "" {
		if ok, err := s.reclaimable(ctx, h); !ok {
			return false, false, err
		}
	}
	// Taking a reclaimable slot replaces its holder only: the holders of the
	// other slots must still leave room. After a shrink they can be past the
	// new limit (live nodes finishing under the old one), so the count binds
	// a reclaim as it binds a free slot.
	others := count.holders
	if h.Identity != "" {
		others--
	}
	if others >= count.limit || !count.usable(s.slotIndex(name)) {
		return false, false, nil
	}
	won, err = s.update(ctx, current, s.cfg.Identity)
	return won, !won && err == nil, err
}

// slotCount is the lock as one List of its Leases shows it.
type slotCount struct {
	holders int // slots held by anyone
	limit   int // the limit in force
	past    int // slots held at an index past the limit (left from a larger one)
}

// usable: a slot of this index may be taken. After a shrink, each holder still
// past the limit takes one slot off the top of the range, so that two takers
// racing for two free slots can never both get in while a leftover holds on:
// with past leftovers, only slots 0 … limit-past-1 are open, one holder each,
// and leftovers only ever go (no slot past the limit is taken), so a count
// read a moment ago only errs on the safe side.
func (c slotCount) usable(index int) bool {
	return index >= 0 && index < c.limit-c.past
}

// liveLock is one List of the lock's Leases from the API server: the count,
// and the slot Leases by name with the versions a write must carry.
type liveLock struct {
	count slotCount
	slots map[string]*coordinationv1.Lease
}

// heldSlot says whether slot is held, by anyone, as the List showed it.
func (l liveLock) heldSlot(slot string) bool {
	lease, ok := l.slots[slot]
	return ok && holderOf(lease).Identity != ""
}

func (l liveLock) heldBy(identity string) (string, bool) {
	for name, lease := range l.slots {
		if holderOf(lease).Identity == identity {
			return name, true
		}
	}
	return "", false
}

// liveSlots lists every Lease of the lock from the API rather than the cache,
// so that the count and the versions taken just before a write are current.
func (s *Semaphore) liveSlots(ctx context.Context) (liveLock, error) {
	list, err := s.leases.List(ctx, metav1.ListOptions{LabelSelector: Selector(s.cfg.Name).String()})
	if err != nil {
		return liveLock{}, fmt.Errorf("counting holders of lock %s: %w", s.cfg.Name, err)
	}
	live := liveLock{count: slotCount{limit: s.cfg.Slots}, slots: map[string]*coordinationv1.Lease{}}
	var held []int
	for i := range list.Items {
		l := &list.Items[i]
		if l.Name == s.cfg.Name {
			live.count.limit = s.limitFrom(l)
			continue
		}
		live.slots[l.Name] = l
		if holderOf(l).Identity != "" {
			live.count.holders++
			held = append(held, s.slotIndex(l.Name))
		}
	}
	for _, i := range held {
		if i >= live.count.limit {
			live.count.past++
		}
	}
	return live, nil
}

// reclaimable says whether a held slot may be taken: its holder is no longer a
// Node, or (only with a TTL) this process has seen its record unchanged for the TTL.
func (s *Semaphore) reclaimable(ctx context.Context, h Holder) (bool, error) {
	if s.cfg.TTL > 0 && s.unchangedFor(h.Slot, h.version) > s.cfg.TTL {
		return true, nil
	}
	if s.cfg.NodeExists == nil || s.knownToExist(h) {
		return false, nil
	}
	exists, err := s.cfg.NodeExists(ctx, h.Identity)
	if err != nil {
		return false, fmt.Errorf("checking whether lock holder %s still exists: %w", h.Identity, err)
	}
	if exists {
		s.mu.Lock()
		s.exists[h.Slot] = seenRecord{version: h.version, at: s.mono()}
		s.mu.Unlock()
	}
	return !exists, nil
}

// knownToExist: h's holder was found to be a Node less than NodeRecheck ago,
// and its slot has not changed since. Remembering only that a holder exists
// can delay a reclaim, never allow one.
func (s *Semaphore) knownToExist(h Holder) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.exists[h.Slot]
	recheck := NodeRecheck
	if s.cfg.NodeRecheck > 0 {
		recheck = s.cfg.NodeRecheck
	}
	return ok && rec.version == h.version && s.mono().Sub(rec.at) < recheck
}

// create makes slot name, held by this identity; the caller has checked the
// count. AlreadyExists is a loss to another taker.
func (s *Semaphore) create(ctx context.Context, name string) (won, lost bool, err error) {
	_, err = s.leases.Create(ctx, s.newLease(name, s.cfg.Identity), metav1.CreateOptions{})
	switch {
	case err == nil:
		return true, false, nil
	case apierrors.IsAlreadyExists(err):
		return false, true, nil
	default:
		return false, false, fmt.Errorf("creating lock slot %s: %w", name, err)
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

// Release frees every slot this identity holds. Releasing a slot not held is a
// no-op. A conflict (the slot changed since it was read: a renewal, an operator's
// edit) is retried on a fresh read; Release fails rather than report a slot free
// that is still held.
func (s *Semaphore) Release(ctx context.Context) error {
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		return s.forEachOwnSlot(ctx, func(l *coordinationv1.Lease) error {
			next := l.DeepCopy()
			s.setHolder(next, "")
			_, err := s.leases.Update(ctx, next, metav1.UpdateOptions{})
			if apierrors.IsNotFound(err) {
				return nil
			}
			if err != nil {
				return err
			}
			s.awaitCache(ctx, l.Name, false)
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("releasing lock %s: %w", s.cfg.Name, err)
	}
	return nil
}

// Renew refreshes the renew time of the slot this identity holds, which only
// matters when a TTL is set. Each renewal is a new version of the record, which
// is what takers time the TTL by.
func (s *Semaphore) Renew(ctx context.Context) error {
	_, err := s.renewOwn(ctx)
	return err
}

// renewOwn renews every slot this identity holds, on the API server's copy,
// and says whether it holds any. A conflict (another renewal of this process,
// or any write in between) is read again and retried: only a slot that is no
// longer ours, or an API error, ends it.
func (s *Semaphore) renewOwn(ctx context.Context) (bool, error) {
	held := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		held = false
		return s.forEachOwnSlot(ctx, func(l *coordinationv1.Lease) error {
			held = true
			next := l.DeepCopy()
			now := metav1.NewMicroTime(s.now())
			next.Spec.RenewTime = &now
			_, err := s.leases.Update(ctx, next, metav1.UpdateOptions{})
			return err
		})
	})
	if err != nil {
		return false, fmt.Errorf("renewing the lock slot of %s: %w", s.cfg.Identity, err)
	}
	if held {
		s.markConfirmed()
	}
	return held, nil
}

// Fenced says, with a TTL, that this holder may no longer count on its slot: it
// has not renewed it for half the TTL (a renewal is tried first). A taker waits a
// whole TTL of seeing no change before it takes the slot, so a holder that fences
// itself at half stops before anyone else can start. Without a TTL, slots never
// expire and nothing is fenced.
func (s *Semaphore) Fenced(ctx context.Context) bool {
	if s.cfg.TTL <= 0 {
		return false
	}
	s.mu.Lock()
	last := s.confirmed
	s.mu.Unlock()
	if !last.IsZero() && s.mono().Sub(last) < s.cfg.TTL/2 {
		return false
	}
	return s.Renew(ctx) != nil || s.sinceConfirmed() >= s.cfg.TTL/2
}

func (s *Semaphore) sinceConfirmed() time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.confirmed.IsZero() {
		return s.cfg.TTL
	}
	return s.mono().Sub(s.confirmed)
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
// The agent calls it before it taints and again right before rebooting: no
// reboot without the lock. With a TTL it renews the slot too, and a holder that
// cannot renew does not hold it.
func (s *Semaphore) HoldsNow(ctx context.Context) (bool, error) {
	if s.cfg.TTL > 0 {
		return s.renewOwn(ctx)
	}
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

// APILister reads the lock's Leases straight from the API server, as a lister
// with no cache: for one-shot commands and tests, where an informer would only
// add start-up time. An agent uses an informer's lister.
type APILister struct {
	Leases coordclient.LeaseInterface
}

// List implements the lister's List.
func (l APILister) List(sel labels.Selector) ([]*coordinationv1.Lease, error) {
	list, err := l.Leases.List(context.Background(), metav1.ListOptions{LabelSelector: sel.String()})
	if err != nil {
		return nil, err
	}
	out := make([]*coordinationv1.Lease, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// Get implements the lister's Get.
func (l APILister) Get(name string) (*coordinationv1.Lease, error) {
	return l.Leases.Get(context.Background(), name, metav1.GetOptions{})
}
