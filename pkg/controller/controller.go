package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/policy"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// Config is everything the controller needs.
type Config struct {
	Client    kubernetes.Interface
	Namespace string
	LockName  string
	// Identity names this replica in the leader election (the pod's name).
	Identity string
	// ElectionLease is the Lease the replicas elect a leader on.
	ElectionLease string
	Settings      Settings
	// PoolsConfigMap names the ConfigMap of the pools, in Namespace; empty:
	// no pools, every node under Settings.Rules.
	PoolsConfigMap string
	// Resync bounds how long a decision waits without any event (admission
	// timeouts and the budget's window pass without one).
	Resync  time.Duration
	Events  record.EventRecorder
	Metrics *Metrics
	Log     *slog.Logger
	Clock   func() time.Time
}

// Run takes part in the leader election until ctx ends; while it leads, it
// watches every Node and the lock's Leases and decides.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Resync <= 0 {
		cfg.Resync = 30 * time.Second
	}
	rl := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: cfg.ElectionLease, Namespace: cfg.Namespace},
		Client:     cfg.Client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            rl,
		LeaseDuration:   15 * time.Second,
		RenewDeadline:   10 * time.Second,
		RetryPeriod:     2 * time.Second,
		ReleaseOnCancel: true,
		Name:            cfg.ElectionLease,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				cfg.Metrics.IsLeader.Set(1)
				cfg.Log.Info("leading the rollout", "identity", cfg.Identity)
				if err := lead(ctx, cfg); err != nil && ctx.Err() == nil {
					cfg.Log.Error("the rollout loop stopped", "err", err)
				}
			},
			OnStoppedLeading: func() {
				cfg.Metrics.IsLeader.Set(0)
				cfg.Log.Info("no longer leading", "identity", cfg.Identity)
			},
			OnNewLeader: func(id string) { cfg.Log.Info("the rollout's leader", "identity", id) },
		},
	})
	if err != nil {
		return fmt.Errorf("leader election on lease %s/%s: %w", cfg.Namespace, cfg.ElectionLease, err)
	}
	for ctx.Err() == nil {
		elector.Run(ctx) // returns when leadership is lost; stand again
	}
	return nil
}

// SlimNode keeps of a Node only what the decision reads, so that the cache of
// thousands of Nodes stays small: the leader's Node informer's transform.
func SlimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	slim := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion,
			Labels: n.Labels, Annotations: nodepatchAnnotations(n.Annotations)},
		Spec: corev1.NodeSpec{Unschedulable: n.Spec.Unschedulable, Taints: n.Spec.Taints},
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			slim.Status.Conditions = []corev1.NodeCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return slim, nil
}

func nodepatchAnnotations(all map[string]string) map[string]string {
	kept := map[string]string{}
	for k, v := range all {
		if len(k) > len("nodepatch.io/") && k[:len("nodepatch.io/")] == "nodepatch.io/" {
			kept[k] = v
		}
	}
	return kept
}

// lead watches and decides until ctx ends (leadership lost or shutdown).
func lead(ctx context.Context, cfg Config) error {
	nodes := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithTransform(SlimNode))
	leases := informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = lock.Selector(cfg.LockName).String() }))
	nodeInformer := nodes.Core().V1().Nodes()
	leaseInformer := leases.Coordination().V1().Leases()
	wake := make(chan struct{}, 1)
	poke := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	handler := cache.ResourceEventHandlerFuncs{AddFunc: func(any) { poke() }, UpdateFunc: func(any, any) { poke() }, DeleteFunc: func(any) { poke() }}
	if _, err := nodeInformer.Informer().AddEventHandler(handler); err != nil {
		return err
	}
	if _, err := leaseInformer.Informer().AddEventHandler(handler); err != nil {
		return err
	}
	nodes.Start(ctx.Done())
	leases.Start(ctx.Done())
	defer nodes.Shutdown()
	defer leases.Shutdown()
	synced := []cache.InformerSynced{nodeInformer.Informer().HasSynced, leaseInformer.Informer().HasSynced}
	var pools informers.SharedInformerFactory
	if cfg.PoolsConfigMap != "" {
		pools = poolsInformer(cfg)
		if _, err := pools.Core().V1().ConfigMaps().Informer().AddEventHandler(handler); err != nil {
			return err
		}
		pools.Start(ctx.Done())
		defer pools.Shutdown()
		synced = append(synced, pools.Core().V1().ConfigMaps().Informer().HasSynced)
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return errors.New("the node, lease and pools caches did not sync")
	}
	r := NewRollout(cfg, nodeInformer.Lister(), leaseInformer.Lister().Leases(cfg.Namespace))
	if pools != nil {
		r.ReadPoolsFrom(pools.Core().V1().ConfigMaps().Lister().ConfigMaps(cfg.Namespace))
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-timer.C:
		}
		if err := r.Reconcile(ctx); err != nil {
			cfg.Log.Error("rollout step failed; will retry", "err", err)
		}
		timer.Reset(cfg.Resync)
	}
}

// NodeLister is the leader's cache of every Node (its informer's lister).
type NodeLister interface {
	List(labels.Selector) ([]*corev1.Node, error)
}

// LeaseGetter is the leader's cache of the lock's Leases in its namespace.
type LeaseGetter interface {
	Get(string) (*coordinationv1.Lease, error)
	List(labels.Selector) ([]*coordinationv1.Lease, error)
}

// Rollout is one term of leadership: the caches it observes, and what it
// remembers between rounds (failures seen, admissions not yet in the cache,
// the limit and pause it wrote). A new leader starts a new one, with nothing
// remembered. lead runs its rounds; test/model runs them as steps, over its
// own caches and API server.
type Rollout struct {
	cfg      Config
	nodes    NodeLister
	leases   LeaseGetter
	failures map[string]time.Time
	// pending: admissions written, not yet seen in the cache (name -> when).
	pending map[string]time.Time
	// pendingSlots: the slots suggested to the pending admissions.
	pendingSlots map[string]int
	limit        int
	paused       string
	// rules: the rules written on the header with limit.
	rules string
	// The pools: where they are read from, the last good ones (known: there
	// are some), and what was last told of them (a fault, the pools applied,
	// nodes that several pools select, by node).
	configMaps   ConfigMapGetter
	pools        []policy.Pool
	poolsKnown   bool
	poolsFault   string
	poolsApplied string
	overlaps     map[string]string
}

// NewRollout starts a term of leadership over the given caches; writes go
// through cfg.Client. cfg is as Run takes it, with Events, Metrics and Log set.
func NewRollout(cfg Config, nodes NodeLister, leases LeaseGetter) *Rollout {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return &Rollout{cfg: cfg, nodes: nodes, leases: leases, failures: map[string]time.Time{}, pending: map[string]time.Time{},
		pendingSlots: map[string]int{}, overlaps: map[string]string{}}
}

// pendingView drops the admissions the cache shows now (or that are old enough
// that the cache must have had its chance) and returns the rest.
func (r *Rollout) pendingView(nodes []*corev1.Node, now time.Time) map[string]bool {
	seen := map[string]bool{}
	for _, n := range nodes {
		if _, ok := n.Annotations[state.AnnotationAdmitted]; ok {
			seen[n.Name] = true
		}
	}
	view := map[string]bool{}
	for name, at := range r.pending {
		if seen[name] || now.Sub(at) > time.Minute {
			delete(r.pending, name)
			delete(r.pendingSlots, name)
			continue
		}
		view[name] = true
	}
	return view
}

// suggestedSlots are the slots suggested to pending admissions.
func (r *Rollout) suggestedSlots() map[int]bool {
	used := map[int]bool{}
	for _, i := range r.pendingSlots {
		used[i] = true
	}
	return used
}

// slotHolders are the held slots the Lease cache shows, by index. A cache
// that cannot be read shows none: the suggestions made from it are hints,
// and the Leases stay the judge.
func (r *Rollout) slotHolders() map[int]string {
	holders := map[int]string{}
	leases, err := r.leases.List(lock.Selector(r.cfg.LockName))
	if err != nil {
		return holders
	}
	prefix := r.cfg.LockName + "-"
	for _, l := range leases {
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" || !strings.HasPrefix(l.Name, prefix) {
			continue
		}
		if i, err := strconv.Atoi(strings.TrimPrefix(l.Name, prefix)); err == nil {
			holders[i] = *l.Spec.HolderIdentity
		}
	}
	return holders
}

// Reconcile observes the caches, decides and acts once.
func (r *Rollout) Reconcile(ctx context.Context) error {
	start := time.Now()
	nodes, err := r.nodes.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("listing nodes from the cache: %w", err)
	}
	now := r.cfg.Clock()
	NoteFailures(r.failures, nodes, now)
	pause := ""
	header, err := r.leases.Get(r.cfg.LockName)
	if err == nil {
		pause = header.Annotations[state.AnnotationPause]
	} else {
		header = nil
	}
	pools, unknown, fault := r.poolsView(header)
	pending := r.pendingView(nodes, now)
	act := Decide(r.cfg.Settings, View{Now: now, Nodes: nodes, PauseReason: pause, Failures: r.failures,
		Pending: pending, Pools: pools, PoolsUnknown: unknown, SlotHolders: r.slotHolders(), SuggestedSlots: r.suggestedSlots()})
	decided := time.Now()
	r.notePools(act, fault)
	errs := r.act(ctx, act, now)
	if err := r.publishFault(ctx, header, fault); err != nil {
		errs = append(errs, err)
	}
	r.cfg.Metrics.Record(act, decided.Sub(start), time.Since(decided))
	return errors.Join(errs...)
}

func (r *Rollout) act(ctx context.Context, act Actions, now time.Time) []error {
	var errs []error
	if rules := act.Rules.String(); act.Limit != r.limit || rules != r.rules {
		if err := lock.SetControllerLimit(ctx, r.cfg.Client.CoordinationV1().Leases(r.cfg.Namespace), r.cfg.Namespace, r.cfg.LockName, act.Limit,
			rules); err != nil {
			errs = append(errs, err)
		} else {
			r.limit, r.rules = act.Limit, rules
		}
	}
	if act.Pause != "" && act.Pause != r.paused {
		if err := r.pause(ctx, act.Pause); err != nil {
			errs = append(errs, err)
		} else {
			r.paused = act.Pause
			r.cfg.Events.Event(r.headerRef(), corev1.EventTypeWarning, "FailureBudgetSpent", act.Pause)
			r.cfg.Metrics.BudgetTrips.Inc()
		}
	}
	stamp := now.UTC().Format(time.RFC3339Nano)
	patchErrs := inParallel(len(act.Admit), admitWorkers, func(i int) error {
		slot, hinted := act.Slots[act.Admit[i]]
		return r.annotate(ctx, act.Admit[i], &stamp, slotHint(slot, hinted))
	})
	for i, name := range act.Admit {
		if patchErrs[i] != nil {
			errs = append(errs, patchErrs[i])
			continue
		}
		slot, hinted := act.Slots[name]
		r.pending[name] = now
		if hinted {
			r.pendingSlots[name] = slot
		}
		r.cfg.Metrics.Admissions.Inc()
		r.cfg.Events.Event(nodeRef(name), corev1.EventTypeNormal, "Admitted", "the rollout controller lets the node start its reboot cycle")
	}
	for _, name := range act.Revoke {
		if err := r.annotate(ctx, name, nil, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		r.cfg.Events.Event(nodeRef(name), corev1.EventTypeWarning, "AdmissionRevoked",
			fmt.Sprintf("no cycle started within %s of the admission", r.cfg.Settings.AdmissionTimeout))
	}
	return errs
}

// admitWorkers is how many admissions are written at once: a wave of them
// (a tenth of a large cluster) one after the other would take a round trip
// each before the last node may start.
const admitWorkers = 8

// inParallel runs do(0..n-1) on up to workers goroutines and returns each
// one's error at its index.
func inParallel(n, workers int, do func(i int) error) []error {
	errs := make([]error, n)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				errs[i] = do(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

// slotHint is the admitted-slot annotation's value; nil (none) when no slot
// was suggested.
func slotHint(slot int, hinted bool) *string {
	if !hinted {
		return nil
	}
	v := strconv.Itoa(slot)
	return &v
}

// annotate sets (or, with nil, removes) the admission and its slot hint on a
// Node with a merge patch: only those annotations change, whatever else the
// agent writes meanwhile.
func (r *Rollout) annotate(ctx context.Context, node string, value, slot *string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]*string{
		state.AnnotationAdmitted: value, state.AnnotationAdmittedSlot: slot}}})
	if err != nil {
		return err
	}
	if _, err := r.cfg.Client.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("admission of node %s: %w", node, err)
	}
	return nil
}

// pause sets the same pause an operator sets, on the lock's header Lease.
func (r *Rollout) pause(ctx context.Context, reason string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{state.AnnotationPause: reason}}})
	if err != nil {
		return err
	}
	_, err = r.cfg.Client.CoordinationV1().Leases(r.cfg.Namespace).Patch(ctx, r.cfg.LockName, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("pausing the rollout: %w", err)
	}
	return nil
}

func nodeRef(name string) *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Node", Name: name, UID: types.UID(name)}
}

func (r *Rollout) headerRef() *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "Lease", APIVersion: "coordination.k8s.io/v1", Namespace: r.cfg.Namespace, Name: r.cfg.LockName}
}
