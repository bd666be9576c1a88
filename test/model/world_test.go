package model

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/record"

	"github.com/nodepatch/nodepatch/pkg/agent"
	"github.com/nodepatch/nodepatch/pkg/controller"
	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/metrics"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// The model's timing. The clock moves only in ticks, and a tick is longer than
// the longest jittered host-check period, so every tick lets each agent ask its
// host again: the jitter never changes what happens.
const (
	tick          = 2 * time.Minute
	period        = time.Minute
	rebootTimeout = 3 * time.Minute
	drainBackoff  = time.Minute
)

var t0 = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// world is one state of everything outside the agents' memory: the API
// server, each agent's caches, the hosts, the clock and the faults spent.
type world struct {
	clock  time.Time
	nodes  map[string]*corev1.Node
	leases map[string]*coordinationv1.Lease
	rv     map[string]int
	caches []*cache // nil while the node's agent is down
	// ctls are the controllers' caches, which outlive their processes (see
	// restartController); they are never changed in place, so a clone shares them.
	ctls   []*ctlCache
	hosts  []machine
	faults int // faults spent on the way here
	ticks  int // ticks taken while something was still in flight
}

// cache is one agent's two informer caches: its own Node, and the lock's
// Leases. Each informer gets the server's writes in order, after a watch delay:
// its queue holds the writes it has not delivered yet. Once the agent's own
// write is done, its cache shows that write and everything queued before it
// (read-your-writes: the agent waits for exactly that before it goes on).
type cache struct {
	node   *corev1.Node
	nodeQ  []*corev1.Node
	leases map[string]*coordinationv1.Lease
	leaseQ []*coordinationv1.Lease
}

// machine is a node's host as the model plays it.
type machine struct {
	boot    int  // the boot id is "<node>-boot-<boot>"
	needs   bool // the reboot-required sentinel
	pending bool // a reboot was asked for and has not happened yet
	asked   time.Time
	reboots int
	// askedFor is the last attempt asked for ("cycle N/boot-id-before/attempt");
	// cycles counts the cycles begun.
	askedFor string
	cycles   int
	// bootAtAttempt is the boot the current cycle's first attempt left.
	bootAtAttempt int
	// admitted: a controller wrote an admission for this node, and no agent
	// has removed it since (the end of a cycle, or a withdrawn need). A
	// controller's revocation leaves it set: an agent whose cache still shows
	// the admission may take a slot on it, a race the design accepts (the lock
	// is the bound).
	admitted bool
}

func (w *world) clone() *world {
	c := *w
	c.nodes, c.leases, c.rv = maps.Clone(w.nodes), maps.Clone(w.leases), maps.Clone(w.rv)
	c.caches = make([]*cache, len(w.caches))
	for i, k := range w.caches {
		if k != nil {
			c.caches[i] = &cache{node: k.node, nodeQ: slices.Clone(k.nodeQ), leases: maps.Clone(k.leases), leaseQ: slices.Clone(k.leaseQ)}
		}
	}
	c.ctls = slices.Clone(w.ctls)
	c.hosts = slices.Clone(w.hosts)
	return &c
}

// synced is a cache just after its informers' first list: the server's newest.
func (w *world) synced(name string) *cache {
	return &cache{node: w.nodes[name], leases: maps.Clone(w.leases)}
}

// deliver shows the first nodes queued Node writes and leases queued Lease writes.
func (c *cache) deliver(nodes, leases int) {
	if nodes > 0 {
		c.node = c.nodeQ[nodes-1]
		c.nodeQ = slices.Delete(c.nodeQ, 0, nodes)
	}
	for _, l := range c.leaseQ[:leases] {
		c.leases[l.Name] = l
	}
	c.leaseQ = slices.Delete(c.leaseQ, 0, leases)
}

// publishNode queues a stored Node for the informer that watches it; the
// writer's own informer delivers it at once. writer is -1 for the model's own
// clients (the kubelet, the operator).
func (m *model) publishNode(writer int, n *corev1.Node) {
	for j, c := range m.w.caches {
		if c != nil && m.name(j) == n.Name {
			c.nodeQ = append(c.nodeQ, n)
			if j == writer {
				c.deliver(len(c.nodeQ), 0)
			}
		}
	}
	m.publishNodeToControllers(n)
}

// publishLease queues a stored Lease for every agent's Lease informer.
func (m *model) publishLease(writer int, l *coordinationv1.Lease) {
	for j, c := range m.w.caches {
		if c != nil {
			c.leaseQ = append(c.leaseQ, l)
			if j == writer {
				c.deliver(0, len(c.leaseQ))
			}
		}
	}
	m.publishLeaseToControllers(l)
}

// model is the live state the checker moves through: the world and each node's
// agent (nil while down), with the lock each agent uses, and the controllers.
// The actors are numbered agents first (node i is actor i), then controllers
// (controller j is actor cfg.nodes+j): clients, dirty and the memory keys go
// by actor.
type model struct {
	cfg     config
	w       *world
	agents  []*agent.Agent
	sems    []*lock.Semaphore
	refs    []*lockRef
	ctrls   []*controller.Rollout
	clients []*fake.Clientset
	step    *stepCtl
	// bad collects the invariants broken during the move being made.
	bad []string
	// objHashes remembers each stored object's hash (objects never change).
	objHashes map[any][]byte
	seeds     [2]maphash.Seed
	buf       []byte
	restores  int
	// live is the snapshot the live agents were last restored from (or
	// captured into); dirty marks those changed since.
	live  *snapshot
	dirty []bool
	// agentKeys remembers each actor's memory hash while keyed says it holds.
	agentKeys []key
	keyed     []bool
	keyedAt   []time.Time
	// The names of the model's objects, in the order they are hashed.
	nodeNames, leaseNames []string
	metrics               []*metrics.Metrics // per node, shared by its agent's incarnations: never read
	// ctlMetrics are per controller, shared by its incarnations: never read.
	ctlMetrics []*controller.Metrics
	settings   controller.Settings
}

// lockRef is the agent's Lock: the model points it at the Semaphore of the
// state it restores, so that the lock's memory is per state like the agent's.
type lockRef struct{ agent.Lock }

// stepCtl is the move in progress: whose step, its fault plan, and what it did.
type stepCtl struct {
	agent      int // the actor: a node's agent, or a controller
	plan       plan
	effects    []effect
	drained    bool
	nodeGets   int // API reads of the agent's own Node
	polls      map[string]poll
	cancel     context.CancelFunc
	waitRanOut string
	// dead: the process died after a planned effect; nothing it does from
	// then on reaches the world.
	dead bool
	// resettable: the step began in a phase the operator may reset.
	resettable bool
}

// effect is an API write or a reboot request of the stepping agent.
type effect struct {
	kind string // create, update, reboot
	key  string
}

// plan is a step's faults: crash right after effect crashAt; another client's
// write (interfere) right before the step's write interfereAt, or right before
// its API read atGet of its own Node; a failing drain.
//
// An operator's write racing the agent's read-modify-write of its Node is
// explored as landing right before the read (atGet). Landing between the read
// and the write instead gives a 409, and nodeops reads again and reaches the
// same state, after a real 10 ms back-off: the fault kind "conflict" explores
// that way too, for the tests that want the conflict itself.
type plan struct {
	crashAt     int
	interfereAt int
	atGet       int
	interfere   string // bump (a write nodepatch does not read), block, reset or edit (the operator's)
	drainFails  bool
	// raceAt runs node racer's whole next step right before effect raceAt:
	// the two agents race, e.g. both read a slot free and both write it.
	raceAt, racer int
	// failAt answers effect failAt with a 500 (or the first effect failOn
	// names: "reboot", or "node" for a Node write): before it happens, or
	// (failAfter) after it happened, the answer lost.
	failAt    int
	failOn    string
	failAfter bool
}

func (m *model) name(i int) string { return fmt.Sprintf("node-%d", i) }
func (m *model) now() time.Time    { return m.w.clock }

func bootID(name string, boot int) string { return fmt.Sprintf("%s-boot-%d", name, boot) }

// newModel builds the initial state: every node Ready, needing a reboot, the
// operator's cordon on cfg.cordoned, every agent started, then the controllers.
func newModel(cfg config) *model {
	m := &model{cfg: cfg, objHashes: map[any][]byte{}, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()},
		w: &world{clock: t0, nodes: map[string]*corev1.Node{}, leases: map[string]*coordinationv1.Lease{}, rv: map[string]int{}}}
	n := cfg.nodes
	m.leaseNames = []string{lockName}
	for i := range max(cfg.limit, n) {
		m.leaseNames = append(m.leaseNames, fmt.Sprintf("%s-%d", lockName, i))
	}
	m.agents, m.sems, m.refs = make([]*agent.Agent, n), make([]*lock.Semaphore, n), make([]*lockRef, n)
	m.w.caches, m.w.hosts = make([]*cache, n), make([]machine, n)
	actors := n + cfg.controllers
	m.dirty, m.agentKeys, m.keyed, m.keyedAt = make([]bool, actors), make([]key, actors), make([]bool, actors), make([]time.Time, actors)
	for i := range n {
		m.nodeNames = append(m.nodeNames, m.name(i))
		m.metrics = append(m.metrics, metrics.New(m.name(i), "model"))
		m.clients = append(m.clients, m.newClient(i))
		m.w.hosts[i] = machine{boot: 1, needs: true}
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: m.name(i)}}
		node.Spec.Unschedulable = i == cfg.cordoned
		node.Status.NodeInfo.BootID = bootID(m.name(i), 1)
		node.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
		node.ResourceVersion = m.w.bump(nodeKey(node.Name))
		m.w.nodes[node.Name] = node
	}
	for i := range n {
		m.start(i)
	}
	m.startControllers()
	return m
}

// start starts node i's agent as a DaemonSet would: caches synced, the lock's
// header ensured, then agent.New with the model's effects.
func (m *model) start(i int) {
	name := m.name(i)
	m.w.caches[i] = m.w.synced(name)
	client := m.clients[i]
	sem, err := lock.New(lock.Config{Name: lockName, Namespace: namespace, Slots: m.cfg.limit, Identity: name,
		TTL: m.cfg.ttl, NodeExists: lock.NodeExistsIn(client)},
		client.CoordinationV1().Leases(namespace), leaseLister{m, i}, m.now)
	must(err)
	setMonotonic(sem, m.now)
	ref := &lockRef{Lock: sem}
	a, err := agent.New(agent.Config{
		NodeName: name,
		Limits: agent.Limits{RebootTimeout: rebootTimeout, MaxRebootAttempts: 2, MinRebootInterval: time.Hour,
			MaxRepeatedReboots: 3, BusyTimeout: 30 * time.Minute},
		Drain:             nodeops.DrainOptions{Timeout: time.Minute, GracePeriod: -1, DeleteEmptyDirData: true, Log: io.Discard},
		DrainRetryBackoff: drainBackoff, MaxDrainRetryBackoff: time.Hour,
		Period:    period,
		Clock:     m.now,
		Node:      nodeReader{m, i},
		Nodes:     &nodeWriter{Node: &nodeops.Node{Client: client, Name: name}, m: m, i: i},
		Lock:      ref,
		Detector:  detector{m, i},
		BootID:    bootIDReader{m, i},
		Rebooter:  rebooter{m, i},
		Events:    &record.FakeRecorder{},
		Metrics:   m.metrics[i],
		Log:       slog.New(slog.DiscardHandler),
		Admission: m.cfg.controllers > 0,
	})
	must(err)
	m.agents[i], m.sems[i], m.refs[i] = a, sem, ref
	m.touched(i)
	m.withStep(i, plan{}, func(ctx context.Context) { must(sem.EnsureHeader(ctx)) })
}

// restart is node i's agent process dying and the DaemonSet starting a new one.
// The new process starts at once: starting it later is the same as starting it
// now with caches that lag until then, which the deliveries before its first
// step cover, and while it is down it writes nothing.
func (m *model) restart(i int) {
	if i >= m.cfg.nodes {
		m.restartController(i - m.cfg.nodes)
		return
	}
	m.kill(i)
	m.start(i)
}

// kill ends node i's agent process: its memory and caches are gone.
func (m *model) kill(i int) {
	m.touched(i)
	m.agents[i], m.sems[i], m.refs[i] = nil, nil, nil
	m.w.caches[i] = nil
}

// withStep runs fn as a step of actor i under plan; after a planned crash the
// process is gone.
func (m *model) withStep(i int, p plan, fn func(context.Context)) *stepCtl {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctl := &stepCtl{agent: i, plan: p, polls: map[string]poll{}, cancel: cancel}
	if i < m.cfg.nodes {
		ctl.resettable = resettable(m.w.nodes[m.name(i)].Annotations)
	}
	m.step = ctl
	m.touched(i)
	fn(ctx)
	m.step = nil
	m.clients[i].ClearActions() // the fake records every call; nothing here reads them
	if ctl.dead {
		m.restart(i)
	}
	return ctl
}

// failsOn says whether e is the effect the plan's failOn names; only the first
// such effect fails.
func (p *plan) failsOn(e effect) bool {
	hit := (p.failOn == "reboot" && e.kind == "reboot") || (p.failOn == "node" && e.kind == "update" && strings.HasPrefix(e.key, "node/"))
	if hit {
		p.failOn = ""
	}
	return hit
}

// race runs agent j's next step inside the current one, with everything
// queued for its caches delivered first (the racer that knows most).
func (m *model) race(j int) {
	if m.agents[j] == nil {
		return
	}
	outer := m.step
	c := m.w.caches[j]
	c.deliver(len(c.nodeQ), len(c.leaseQ))
	m.withStep(j, plan{}, func(ctx context.Context) { _, _, _ = m.agents[j].ReconcileOnce(ctx) })
	m.step = outer
}

// errDead is what a dead process's calls return: they never happen.
var errDead = errors.New("model: the agent process is dead")

// gone tells whether node i's process died in this step.
func (m *model) gone(i int) bool {
	return m.step != nil && m.step.agent == i && m.step.dead
}

// effect carries out one effect (apply, as writer) of node i under the step's
// plan, and returns the error its client sees, if any. A planned crash right
// after it kills the process: its context ends and all its later calls fail
// without reaching the world, as if they were never made. A planned failure
// answers 500 before the effect (nothing happens) or after it (it happened,
// but the answer was lost, so the agent's cache learns of it as of anyone
// else's write: by delivery).
func (m *model) effect(i int, e effect, apply func(writer int)) error {
	ctl := m.step
	if ctl == nil || ctl.agent != i {
		apply(i)
		return nil
	}
	if ctl.dead {
		return errDead
	}
	ctl.effects = append(ctl.effects, e)
	k := len(ctl.effects)
	clear(ctl.polls)
	if ctl.plan.interfereAt == k {
		m.interfere(e.key, ctl.plan.interfere)
	}
	if ctl.plan.raceAt == k {
		m.race(ctl.plan.racer)
	}
	if ctl.plan.failAt == k || ctl.plan.failsOn(e) {
		if ctl.plan.failAfter {
			apply(-1)
		}
		return apierrors.NewInternalError(errors.New("model: the API server failed the request"))
	}
	apply(i)
	if ctl.plan.crashAt == k {
		ctl.dead = true
		ctl.cancel()
	}
	return nil
}

// interfere is another client's write to key landing in the middle of the
// agent's step: bump is a write nodepatch does not read (a kubelet heartbeat,
// an operator's unrelated annotation); block sets the operator's block; reset
// is the operator removing the phase annotation (the documented retry); edit
// removes the recorded boot id (an annotation edited away).
func (m *model) interfere(key, kind string) {
	const other = "model.nodepatch.io/other-writer"
	kindOf, name := splitKey(key)
	switch {
	case kindOf == "node":
		n := m.w.nodes[name].DeepCopy()
		switch kind {
		case "block":
			setAnnotation(&n.ObjectMeta, state.AnnotationBlockReboot, "operator: hold")
		case "reset":
			delete(n.Annotations, state.AnnotationPhase)
		case "edit":
			delete(n.Annotations, state.AnnotationBootIDBefore)
		default:
			setAnnotation(&n.ObjectMeta, other, toggle(n.Annotations[other]))
		}
		_, err := m.updateNode(-1, n)
		must(err)
	case m.w.leases[name] != nil:
		l := m.w.leases[name].DeepCopy()
		setAnnotation(&l.ObjectMeta, other, toggle(l.Annotations[other]))
		must(m.writeLease(-1, l, false))
	}
}

func toggle(v string) string {
	if v == "a" {
		return "b"
	}
	return "a"
}

func setAnnotation(meta *metav1.ObjectMeta, key, value string) {
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[key] = value
}

// nodeWriter is the real nodeops.Node; only a planned drain failure (a
// PodDisruptionBudget that allows no eviction) is stubbed. The nodes have no
// pods, so the real drain lists none and succeeds at once.
type nodeWriter struct {
	*nodeops.Node
	m *model
	i int
}

func (w *nodeWriter) Drain(ctx context.Context, opts nodeops.DrainOptions) error {
	if w.m.gone(w.i) {
		return errDead
	}
	if ctl := w.m.step; ctl != nil && ctl.agent == w.i {
		ctl.drained = true
		if ctl.plan.drainFails {
			return errors.New("model: cannot evict pod default/web-0: the disruption budget allows no disruption")
		}
	}
	return w.Node.Drain(ctx, opts)
}

type detector struct {
	m *model
	i int
}

func (d detector) RebootRequired(context.Context) (host.RebootCheck, error) {
	if d.m.w.hosts[d.i].needs {
		return host.RebootCheck{Required: true, Reasons: []string{"sentinel"}}, nil
	}
	return host.RebootCheck{}, nil
}

type bootIDReader struct {
	m *model
	i int
}

func (b bootIDReader) BootID(context.Context) (string, error) {
	return bootID(b.m.name(b.i), b.m.w.hosts[b.i].boot), nil
}

// rebooter takes the reboot request; the host reboots in a later move (or, as a
// fault, never). The request is where "no reboot without the lock" is judged.
type rebooter struct {
	m *model
	i int
}

func (r rebooter) Reboot(context.Context) error {
	return r.m.effect(r.i, effect{kind: "reboot", key: nodeKey(r.m.name(r.i))}, func(int) {
		r.m.checkRebootRequest(r.i)
		r.m.w.hosts[r.i].pending, r.m.w.hosts[r.i].asked = true, r.m.w.clock
	})
}

func splitKey(key string) (string, string) {
	for i := range len(key) {
		if key[i] == '/' {
			return key[:i], key[i+1:]
		}
	}
	return key, ""
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

func must(err error) {
	if err != nil {
		panic(err)
	}
}
