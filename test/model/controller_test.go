package model

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/record"

	"github.com/nodepatch/nodepatch/pkg/controller"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// The rollout controller as actors of the model. Each controller believes it
// leads: it has its own caches and memory, and one of its moves is one round
// of the controller's own code (controller.Rollout's Reconcile: Decide over
// its caches, then the writes act makes through the model's API server).
// Two controllers are two leaders at once (a leader that lost its election
// Lease without noticing yet); a controller crash is a new leader, or the same
// replica restarted, with nothing remembered.

// admissionTimeout is --admission-timeout: longer than a tick, so that a
// revocation needs time to pass twice after the admission.
const admissionTimeout = 3 * time.Minute

// ctlCache is one controller's informer caches, as far as its round reads
// them: every Node, slimmed as its informer's transform slims them and
// without the resourceVersion (nothing the controller does reads it: it
// writes merge patches), and the lock's header Lease, whose pause is all a
// round reads of the lock.
//
// Each Node's writes reach the cache in order, after any delay, but each Node's
// queue lags on its own: the cache may show one Node's newest write and not an
// older write of another. One informer's watch delivers the writes to all Nodes
// in one order, so this lets the controller see more views than it can: a
// superset, which keeps the search from telling apart every order in which the
// writes to different Nodes interleaved (they multiply the states tenfold).
// A queue holds only the writes the controller can tell apart from the version
// before: one it cannot (a kubelet's boot id, a slot taken or renewed) would
// only multiply the interleavings of equal rounds. A ctlCache is never changed
// in place.
type ctlCache struct {
	nodes   []*corev1.Node   // by node number
	nodeQ   [][]*corev1.Node // by node number
	header  *coordinationv1.Lease
	headerQ []*coordinationv1.Lease
}

// deliveries are how many queued writes a round may see first: each number of
// each Node's queued writes, and of the header's. Delivery k is the mixed-radix
// number of those counts: Node 0's count is its lowest digit, the header's its
// highest, so one write fewer of any queue is a smaller k.
func (c *ctlCache) deliveries() int {
	n := len(c.headerQ) + 1
	for _, q := range c.nodeQ {
		n *= len(q) + 1
	}
	return n
}

// split is delivery k as counts: per Node, then the header's.
func (c *ctlCache) split(k int) ([]int, int) {
	counts := make([]int, len(c.nodeQ))
	for i, q := range c.nodeQ {
		counts[i] = k % (len(q) + 1)
		k /= len(q) + 1
	}
	return counts, k
}

// fewer is delivery k with one write fewer of queue i (the header's is
// len(nodeQ)), or -1 if k delivers none of it.
func (c *ctlCache) fewer(k, i int) int {
	stride := 1
	for _, q := range c.nodeQ[:min(i, len(c.nodeQ))] {
		stride *= len(q) + 1
	}
	radix := len(c.headerQ) + 1
	if i < len(c.nodeQ) {
		radix = len(c.nodeQ[i]) + 1
	}
	if k/stride%radix == 0 {
		return -1
	}
	return k - stride
}

// deliver is the cache after its informers show delivery k.
func (c *ctlCache) deliver(k int) *ctlCache {
	counts, headers := c.split(k)
	next := *c
	next.nodes, next.nodeQ = slices.Clone(c.nodes), slices.Clone(c.nodeQ)
	for i, n := range counts {
		if n > 0 {
			next.nodes[i], next.nodeQ[i] = c.nodeQ[i][n-1], c.nodeQ[i][n:]
		}
	}
	if headers > 0 {
		next.header, next.headerQ = c.headerQ[headers-1], c.headerQ[headers:]
	}
	return &next
}

// lastNode is the newest version of Node i the cache shows or has queued.
func (c *ctlCache) lastNode(i int) *corev1.Node {
	if q := c.nodeQ[i]; len(q) > 0 {
		return q[len(q)-1]
	}
	return c.nodes[i]
}

func (c *ctlCache) lastPause() string {
	last := c.header
	if len(c.headerQ) > 0 {
		last = c.headerQ[len(c.headerQ)-1]
	}
	return pauseOf(last)
}

func pauseOf(l *coordinationv1.Lease) string {
	if l == nil {
		return ""
	}
	return l.Annotations[state.AnnotationPause]
}

// slimmed is a Node as the controller's cache holds it.
func slimmed(n *corev1.Node) *corev1.Node {
	obj, err := controller.SlimNode(n)
	must(err)
	slim := obj.(*corev1.Node)
	slim.ResourceVersion = ""
	return slim
}

// syncedController is a controller cache just after its informers' first list.
func (m *model) syncedController() *ctlCache {
	c := &ctlCache{header: m.w.leases[lockName], nodeQ: make([][]*corev1.Node, len(m.nodeNames))}
	for _, name := range m.nodeNames {
		c.nodes = append(c.nodes, slimmed(m.w.nodes[name]))
	}
	return c
}

// publishNodeToControllers queues a stored Node for every controller's Node
// informer, unless it shows nothing new to the controller. A controller's own
// write is queued like anyone's: it reads its writes from its memory (the
// pending admissions), not from its cache.
func (m *model) publishNodeToControllers(n *corev1.Node) {
	if len(m.w.ctls) == 0 {
		return
	}
	slim, i := slimmed(n), m.index(n.Name)
	for j, c := range m.w.ctls {
		if !equality.Semantic.DeepEqual(c.lastNode(i), slim) {
			next := *c
			next.nodeQ = slices.Clone(c.nodeQ)
			next.nodeQ[i] = append(slices.Clip(c.nodeQ[i]), slim)
			m.w.ctls[j] = &next
		}
	}
}

// publishLeaseToControllers queues a header write whose pause is new to a
// controller for its Lease informer.
func (m *model) publishLeaseToControllers(l *coordinationv1.Lease) {
	if l.Name != lockName {
		return
	}
	for j, c := range m.w.ctls {
		if c.lastPause() != pauseOf(l) {
			next := *c
			next.headerQ = append(slices.Clip(c.headerQ), l)
			m.w.ctls[j] = &next
		}
	}
}

// startControllers starts cfg.controllers controllers with synced caches and
// the settings the controller's own flags make: --max-unavailable the limit.
func (m *model) startControllers() {
	if m.cfg.controllers == 0 {
		return
	}
	settings, err := controller.Options{Namespace: namespace, LockName: lockName, ElectionLease: "nodepatch-controller",
		Identity: "model", LogFormat: "text", MaxUnavailable: strconv.Itoa(m.cfg.limit), ControlPlane: "last",
		AdmissionTimeout: admissionTimeout, APIQPS: 50, APIBurst: 100}.Validate()
	must(err)
	m.settings = settings
	for j := range m.cfg.controllers {
		m.clients = append(m.clients, m.newClient(m.cfg.nodes+j))
		m.ctlMetrics = append(m.ctlMetrics, controller.NewMetrics())
		m.w.ctls = append(m.w.ctls, m.syncedController())
		m.ctrls = append(m.ctrls, nil)
		m.restartController(j)
	}
}

// restartController starts controller j anew: a new term of leadership with
// nothing remembered (no pending admission, no failure seen, no limit or pause
// written). It starts from the cache the old one had, queue and all: a new
// informer's list may be served from a lagging watch cache, and its first
// round may follow any number of deliveries, the newest state included.
func (m *model) restartController(j int) {
	i := m.cfg.nodes + j
	m.touched(i)
	m.ctrls[j] = controller.NewRollout(controller.Config{
		Client: m.clients[i], Namespace: namespace, LockName: lockName,
		Identity: fmt.Sprintf("controller-%d", j), ElectionLease: "nodepatch-controller",
		Settings: m.settings, Events: &record.FakeRecorder{}, Metrics: m.ctlMetrics[j],
		Log: slog.New(slog.DiscardHandler), Clock: m.now,
	}, ctlNodes{m, j}, ctlHeader{m, j})
}

// controlMoves are each controller's next round, after each delivery of
// queued writes its caches may have received by then.
func (m *model) controlMoves() []move {
	var moves []move
	for j, c := range m.w.ctls {
		for k := range c.deliveries() {
			counts, headers := c.split(k)
			moves = append(moves, move{kind: "control", i: j, nodes: k, counts: counts, leases: headers})
		}
	}
	return moves
}

// control makes one round of controller mv.i, after delivery mv.nodes.
func (m *model) control(mv move) *stepCtl {
	j := mv.i
	m.w.ctls[j] = m.w.ctls[j].deliver(mv.nodes)
	return m.withStep(m.cfg.nodes+j, mv.plan, func(ctx context.Context) {
		// An error is the round's to log; the next round tries again.
		_ = m.ctrls[j].Reconcile(ctx)
	})
}

// rounds prunes the controllers' rounds from one state. Two rounds of a
// controller that make the same writes and reach the same state but for how
// far its cache has got are one round for the search: the state whose cache
// has got less far can do whatever the other can (its next round may take the
// deliveries the other took, and more), so only the round with the fewest
// deliveries is explored, with its faults. Without this, the positions of a
// controller's cache among the writes it skips over multiply the states.
//
// The round that delivers every queued write is kept, though, when nothing but
// the controllers can move: the state it reaches, every cache caught up, may be
// settled (time passes for free; the end invariants are checked at the time
// bound) where the state with a lagging cache is not.
type rounds struct {
	s     *snapshot
	after map[[2]int]roundResult
}

type roundResult struct {
	key     key // the state reached, but for the controller's caches
	effects []effect
}

func (c *checker) newRounds(s *snapshot) *rounds {
	return &rounds{s: s, after: map[[2]int]roundResult{}}
}

// redundant says whether the round mv just made (ctl) is one a round with
// fewer deliveries already stands for. settled: no move but the controllers'
// changed the state.
func (r *rounds) redundant(m *model, mv move, ctl *stepCtl, settled bool) bool {
	res := roundResult{key: m.hashExcept(mv.i), effects: ctl.effects}
	r.after[[2]int{mv.i, mv.nodes}] = res
	c := r.s.w.ctls[mv.i]
	if len(m.bad) > 0 || (settled && mv.nodes == c.deliveries()-1) {
		return false
	}
	for q := range len(c.nodeQ) + 1 {
		if k := c.fewer(mv.nodes, q); k >= 0 {
			if prev := r.after[[2]int{mv.i, k}]; prev.key == res.key && slices.Equal(prev.effects, res.effects) {
				return true
			}
		}
	}
	return false
}

// controlVariants are the faults that may strike inside a controller's round:
// a crash after each of its writes but the last (a crash after the last is the
// ctlcrash move), a 500 before or after each. A round reads only its caches
// before it writes (the limit's write reads the header from the API server,
// and only agents starting write it too), so another actor's step between its
// reads and its writes is the same as that step before the round.
func controlVariants(step move, ctl *stepCtl, cfg config) []move {
	var moves []move
	for k := range ctl.effects {
		n := k + 1
		var plans []plan
		if n < len(ctl.effects) && cfg.kinds["ctlcrash"] {
			plans = append(plans, plan{crashAt: n})
		}
		if cfg.kinds["fail"] {
			plans = append(plans, plan{failAt: n}, plan{failAt: n, failAfter: true})
		}
		for _, p := range plans {
			mv := step
			mv.plan = p
			moves = append(moves, mv)
		}
	}
	return moves
}

// ctlNodes is controller j's Node informer cache, as its round lists it.
type ctlNodes struct {
	m *model
	j int
}

func (c ctlNodes) List(selector labels.Selector) ([]*corev1.Node, error) {
	if c.m.gone(c.m.cfg.nodes + c.j) {
		return nil, errDead
	}
	var out []*corev1.Node
	for _, n := range c.m.w.ctls[c.j].nodes {
		if selector.Matches(labels.Set(n.Labels)) {
			out = append(out, n)
		}
	}
	return out, nil
}

// ctlHeader is controller j's Lease informer cache, of which a round reads
// only the header: it lists no slot, so the controller's slot hints are
// explored at their worst (they may name held slots).
type ctlHeader struct {
	m *model
	j int
}

func (c ctlHeader) List(labels.Selector) ([]*coordinationv1.Lease, error) {
	if h, err := c.Get(lockName); err == nil {
		return []*coordinationv1.Lease{h}, nil
	}
	return nil, nil
}

func (c ctlHeader) Get(name string) (*coordinationv1.Lease, error) {
	if c.m.gone(c.m.cfg.nodes + c.j) {
		return nil, errDead
	}
	if name != lockName {
		return nil, errors.New("model: the controller's cache holds the lock's header only, not " + name)
	}
	if h := c.m.w.ctls[c.j].header; h != nil {
		return h, nil
	}
	return nil, apierrors.NewNotFound(coordinationv1.Resource("lease"), name)
}

// controllerConfig is nodes nodes needing a reboot, limit 1, and n
// controllers. No node is cordoned by the operator: the policy counts a node
// cordoned by someone else as out, so with a limit of 1 it would hold the
// others for ever.
func controllerConfig(t *testing.T, nodes, controllers, faults int, kinds ...string) config {
	cfg := baseConfig(t, 1, faults, kinds...)
	cfg.nodes, cfg.cordoned, cfg.controllers = nodes, -1, controllers
	return cfg
}

// TestControllerInterleavings runs the agents with controller admission and
// the rollout controller as more actors, and explores every interleaving of
// the agents' steps, the controllers' rounds and every cache's deliveries:
// one controller on three nodes; one that may crash once (between rounds or
// right after any write) and two controllers that both believe they lead, on
// two nodes. The lock stays the bound: slot holders never pass the limit,
// whatever the controllers admit; no node takes a slot no controller admitted
// it to; and every node is rebooted, its admission gone, by the end. make
// model (NODEPATCH_MODEL_LONG=1) runs the crash on three nodes, and two
// controllers, one of which crashes once, on two (three nodes with two
// controllers is more than 20 minutes).
func TestControllerInterleavings(t *testing.T) {
	type search struct {
		name   string
		cfg    config
		guards string
	}
	searches := []search{
		{"one", controllerConfig(t, 3, 1, 0),
			"an admission beyond the limit, or none, from a controller whose cache lags"},
		{"one-crash", controllerConfig(t, 2, 1, 1, "ctlcrash"),
			"a controller that forgets its pending admissions (a new leader, a restart) and admits from a lagging cache"},
		{"two-leaders", controllerConfig(t, 2, 2, 0),
			"two controllers that both believe they lead, each admitting from its own lagging cache"},
	}
	if os.Getenv("NODEPATCH_MODEL_LONG") != "" {
		searches = append(searches,
			search{"one-crash-3", controllerConfig(t, 3, 1, 1, "ctlcrash"), "a controller crash, on three nodes"},
			search{"two-leaders-crash", controllerConfig(t, 2, 2, 1, "ctlcrash"),
				"two leaders, one of which crashes"})
	}
	for _, c := range searches {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			t.Logf("guards against %s", c.guards)
			run(t, c.cfg)
		})
	}
}

// controllerKeys are the controllers' keys (caches and memory; ctl's memory
// only), in order of the keys: the controllers run the same code with the same
// settings, so two states that differ only in which controller is in which
// state are one state.
func (m *model) controllerKeys(ctl int) []key {
	keys := make([]key, len(m.ctrls))
	for j, c := range m.w.ctls {
		mem := m.agentKey(m.cfg.nodes + j)
		b := append([]byte(nil), mem[:]...)
		putBool(&b, j != ctl)
		if j != ctl {
			m.putCtlCache(&b, c)
		}
		keys[j] = m.sum(b)
	}
	slices.SortFunc(keys, func(a, b key) int { return bytes.Compare(a[:], b[:]) })
	return keys
}

func (m *model) putCtlCache(b *[]byte, c *ctlCache) {
	for i, n := range c.nodes {
		putBytes(b, m.objectHash(n))
		putInt(b, int64(len(c.nodeQ[i])))
		for _, q := range c.nodeQ[i] {
			putBytes(b, m.objectHash(q))
		}
	}
	putBytes(b, m.objectHash(c.header))
	putInt(b, int64(len(c.headerQ)))
	for _, l := range c.headerQ {
		putBytes(b, m.objectHash(l))
	}
}
