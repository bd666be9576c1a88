package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/pkg/host/packages"
	"github.com/nodepatch/nodepatch/pkg/kube"
	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/metrics"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
	"github.com/nodepatch/nodepatch/pkg/version"
)

// countRequest counts an API request in m and tells OnAPIRequest of it.
func (o Options) countRequest(m *metrics.Metrics) kube.CountFunc {
	if o.OnAPIRequest == nil {
		return m.CountRequest
	}
	return func(verb, resource string, code int) {
		m.CountRequest(verb, resource, code)
		o.OnAPIRequest(verb, resource, code)
	}
}

// Start wires the agent to a cluster and a host from validated options and runs it
// until ctx ends.
func Start(ctx context.Context, o Options, log *slog.Logger) error {
	sched, err := o.Validate()
	if err != nil {
		return err
	}
	m := metrics.New(o.NodeName, version.Version)
	client, err := kube.NewClient(o.Kubeconfig, "nodepatch", kube.Rate{}, o.countRequest(m))
	if err != nil {
		return err
	}
	ready := &atomic.Bool{}
	srv, err := metrics.Serve(o.MetricsAddress, m.Registry, ready, log)
	if err != nil {
		return err
	}
	defer metrics.Shutdown(srv)

	clock := o.Clock()
	factories := newInformers(client, o)
	nodeInformer := factories.node.Core().V1().Nodes()
	nodeChanges := newChangeSignal()
	leaseInformer := factories.lease.Coordination().V1().Leases()
	sem, err := lock.New(lock.Config{
		Name: o.LockName, Namespace: o.Namespace, Slots: o.Concurrency, Generation: o.ConfigGeneration,
		Identity: o.NodeName, TTL: o.LockTTL, NodeExists: lock.NodeExistsIn(client),
		PreferredSlot: func() int {
			node, err := nodeInformer.Lister().Get(o.NodeName)
			if err != nil {
				return -1
			}
			return state.AdmittedSlot(node.Annotations)
		},
	}, client.CoordinationV1().Leases(o.Namespace), leaseInformer.Lister().Leases(o.Namespace), clock)
	if err != nil {
		return err
	}
	events, flushEvents, stopEvents := newRecorder(client.CoreV1().Events(""), o.NodeName)
	defer stopEvents()
	runner, err := o.hostRunner(ctx, log)
	if err != nil {
		return err
	}
	rebooter, err := o.rebooter(runner, log)
	if err != nil {
		return err
	}
	// The package manager decides patching and, on RPM hosts, adds
	// needs-restarting to the reboot detection; a host with none still reboots.
	kind, kindErr := o.packageManager(ctx, runner)
	if kindErr != nil {
		log.Info("no supported package manager on the host; only reboots are coordinated", "reason", kindErr)
	}
	detector := &host.Detector{HostRoot: o.HostRoot, SentinelFile: o.SentinelFile, SentinelCommand: o.SentinelCommand,
		NeedsRestarting: packages.NeedsRestartingCommand(kind), Runner: runner}
	nodeOps := &nodeops.Node{Client: client, Name: o.NodeName,
		Cached: func() (*corev1.Node, error) { return nodeInformer.Lister().Get(o.NodeName) }}
	notifier, stopNotifier, err := o.notifier(ctx, m.NotifyObserver(), log)
	if err != nil {
		return err
	}
	defer stopNotifier()
	gates, err := ParseGates(o.Gates)
	if err != nil {
		return fmt.Errorf("--gate: %w", err)
	}
	blockers, health, err := o.Checks.effects(client, nodeOps, o.NodeName)
	if err != nil {
		return err
	}
	a, err := New(Config{
		NodeName: o.NodeName,
		Limits: Limits{RebootTimeout: o.RebootTimeout, MaxRebootAttempts: 2, MinRebootInterval: o.MinRebootInterval,
			MaxRepeatedReboots: o.MaxRepeatedReboots, BusyTimeout: o.PatchTimeout,
			HealthGate: o.Checks.healthGate(o.soak()), Soak: o.soak(), HealthTimeout: o.Checks.HealthTimeout,
			DrainDelay: o.DrainDelay, RebootDelay: o.RebootDelay, Gates: gates},
		Drain: nodeops.DrainOptions{Timeout: o.DrainTimeout, GracePeriod: o.DrainGracePeriod,
			PodSelector: o.DrainPodSelector, DeleteEmptyDirData: o.DeleteEmptyDirData, Force: o.Force,
			SkipWaitForDeleteTimeout: o.SkipWaitForDeleteTimeout, Log: slogWriter{log}},
		DrainTimeoutAction: DrainTimeoutAction(o.DrainTimeoutAction), ForceDrainGrace: o.ForceDrainGrace,
		Labels:            o.cycleLabels(),
		DrainRetryBackoff: o.DrainRetryBackoff, MaxDrainRetryBackoff: time.Hour,
		RebootAfterDrainTimeout: o.RebootAfterDrainTimeout,
		Period:                  o.Period, Schedule: sched, DryRun: o.DryRun, Clock: clock,
		Admission:   o.Admission == "controller",
		Node:        cachedNode{lister: nodeInformer.Lister(), name: o.NodeName},
		NodeChanged: nodeChanges.Changed,
		Nodes:       nodeOps,
		Lock:        sem,
		Detector:    detector,
		BootID:      o.bootIDReader(runner),
		Rebooter:    rebooter,
		HostBusy:    o.busyChecker(runner),
		Blockers:    blockers,
		Notifier:    notifier, BlockedLongAfter: o.NotifyBlockedAfter,
		Health:      health,
		Patcher:     o.patcher(kind, runner, log),
		Patch:       PatchSettings{Mode: packages.Mode(o.Patch), Interval: o.PatchInterval, UnderLock: o.PatchUnderLock},
		Events:      events,
		FlushEvents: flushEvents,
		Metrics:     m,
		Log:         log,
	})
	if err != nil {
		return err
	}
	// The sentinel is watched so that a new need is seen at once; the period
	// stays as the fallback (and is the only way for commands).
	if err := detector.WatchSentinel(ctx, a.HostChanged); err != nil {
		log.Warn("cannot watch the sentinel file; it is looked at once a period", "err", err)
	}
	trigger := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { a.Trigger() },
		UpdateFunc: func(any, any) { a.Trigger() },
		DeleteFunc: func(any) { a.Trigger() },
	}
	// A handler runs after the informer's store took the change, so a waiter
	// woken here reads it from the lister.
	nodeTrigger := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { nodeChanges.notify(); a.Trigger() },
		UpdateFunc: func(any, any) { nodeChanges.notify(); a.Trigger() },
		DeleteFunc: func(any) { nodeChanges.notify(); a.Trigger() },
	}
	if _, err := nodeInformer.Informer().AddEventHandler(nodeTrigger); err != nil {
		return fmt.Errorf("watching node %s: %w", o.NodeName, err)
	}
	if _, err := leaseInformer.Informer().AddEventHandler(trigger); err != nil {
		return fmt.Errorf("watching the lock leases: %w", err)
	}
	factories.start(ctx)
	if err := factories.wait(ctx, nodeInformer.Informer(), leaseInformer.Informer()); err != nil {
		return err
	}
	if err := waitForNode(ctx, nodeInformer.Lister(), o.NodeName, log); err != nil {
		return err
	}
	if !o.DryRun {
		if err := ensureHeader(ctx, sem, log); err != nil {
			return err
		}
	}
	ready.Store(true)
	log.Info("agent started", "node", o.NodeName, "version", version.Version, "concurrency", o.Concurrency,
		"schedule", sched.String(), "dryRun", o.DryRun)
	go renewWhileHeld(ctx, sem, o.LockTTL, log)
	return a.Run(ctx)
}

type informerFactories struct {
	node, lease informers.SharedInformerFactory
}

// newInformers watches only the agent's own Node (field selector) and the lock's
// Leases (label selector): nothing cluster-wide in steady state.
func newInformers(client kubernetes.Interface, o Options) informerFactories {
	const resync = 0 // events, not resyncs, drive the agent; the period timer covers the host
	return informerFactories{
		node: informers.NewSharedInformerFactoryWithOptions(client, resync,
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
				lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.NodeName).String()
			})),
		lease: informers.NewSharedInformerFactoryWithOptions(client, resync, informers.WithNamespace(o.Namespace),
			informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
				lo.LabelSelector = lock.Selector(o.LockName).String()
			})),
	}
}

func (f informerFactories) start(ctx context.Context) {
	f.node.Start(ctx.Done())
	f.lease.Start(ctx.Done())
}

func (f informerFactories) wait(ctx context.Context, informers ...cache.SharedIndexInformer) error {
	synced := make([]cache.InformerSynced, len(informers))
	for i, inf := range informers {
		synced[i] = inf.HasSynced
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return errors.New("the node and lease caches did not sync before shutdown")
	}
	return nil
}

type cachedNode struct {
	lister interface {
		Get(name string) (*corev1.Node, error)
	}
	name string
}

func (c cachedNode) Get() (*corev1.Node, error) { return c.lister.Get(c.name) }

type bootIDFile string

func (f bootIDFile) BootID(context.Context) (string, error) { return host.ReadBootID(string(f)) }

// waitForNode waits until the agent's Node is in the cache. A Node that is
// missing at start is one being registered again (its kubelet deleted and
// re-created it): exiting would only crash-loop the pod, so the agent waits,
// not ready, and says so; only ctx ends the wait.
func waitForNode(ctx context.Context, nodes interface {
	Get(name string) (*corev1.Node, error)
}, name string, log *slog.Logger) error {
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: math.MaxInt32, Cap: 30 * time.Second}
	return wait.ExponentialBackoffWithContext(ctx, backoff, func(context.Context) (bool, error) {
		if _, err := nodes.Get(name); err != nil {
			log.Warn("no Node of this name in the cluster yet; waiting for it (check --node-name if this lasts)", "node", name, "err", err)
			return false, nil
		}
		return true, nil
	})
}

// ensureHeader writes the lock's header (the limit, and a place for the pause)
// before the agent acts, retrying with back-off: an API server that fails a
// write now is no reason for the agent to exit. Only ctx ends the wait.
func ensureHeader(ctx context.Context, sem *lock.Semaphore, log *slog.Logger) error {
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Steps: math.MaxInt32, Cap: 30 * time.Second}
	return wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		if err := sem.EnsureHeader(ctx); err != nil {
			log.Warn("cannot write the lock's header yet; retrying", "err", err)
			return false, nil
		}
		return true, nil
	})
}

// renewWhileHeld refreshes the held slot's renew time, which only a lock TTL
// reads: at once (a restarted holder confirms its slot before anything else) and
// every third of the TTL.
func renewWhileHeld(ctx context.Context, sem *lock.Semaphore, ttl time.Duration, log *slog.Logger) {
	if ttl <= 0 {
		return
	}
	if err := sem.Renew(ctx); err != nil {
		log.Warn("cannot renew the lock slot", "err", err)
	}
	ticker := time.NewTicker(ttl / 3)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := sem.Renew(ctx); err != nil {
				log.Warn("cannot renew the lock slot", "err", err)
			}
		}
	}
}

// slogWriter turns the drain helper's progress lines into log records.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Info(string(bytes.TrimRight(p, "\r\n")), "component", "drain")
	return len(p), nil
}
