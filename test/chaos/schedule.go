// Package chaos runs seeded chaos runs: real `nodepatch agent` processes on
// simulated hosts (test/sim) and, on half the seeds, two replicas of
// `nodepatch controller`, against a real kube-apiserver and etcd, reached
// through a fault-injecting proxy (test/faultproxy), under a schedule of
// faults drawn from the seed, while sim.Watcher checks the invariants.
package chaos

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Fault kinds, as counted in reports.
const (
	faultKill             = "kill"
	faultKillAfterWrite   = "kill-after-write"
	faultAPIErrors        = "api-errors"
	faultAPIDelay         = "api-delay"
	faultDropWatches      = "drop-watches"
	faultDropConns        = "drop-conns"
	faultAPIServerRestart = "apiserver-restart"
	faultEtcdRestart      = "etcd-restart"
	faultReregister       = "node-reregister"
	faultLeaseDelete      = "lease-delete"
	faultLeaseEdit        = "lease-edit"
	faultLimitChange      = "limit-change"
	faultBlock            = "block"
	faultPause            = "pause"
	faultForce            = "force"
	faultFailReboot       = "fail-reboot"
	faultPDB              = "pdb-block"
	faultKillController   = "controller-kill"
	faultNeedReboot       = "need-reboot"
	faultPersistentNeed   = "persistent-need"
)

// writeKinds are the writes an agent makes, as faultproxy.Write.Kind names
// them: a kill-after-write fault kills the writer right after one of them.
var writeKinds = []string{
	"create leases", "update leases", "update nodes",
	"create pods/eviction", "create events", "patch events",
}

// config is one run's world and schedule, all drawn from the seed.
type config struct {
	seed           uint64
	nodes          []string
	limit          int           // --concurrency at the start
	rebootDuration time.Duration // how long a simulated reboot takes
	lockTTL        time.Duration // --lock-ttl; 0 leaves it off
	skewNode       string        // the node whose clock is off, if any
	skew           time.Duration
	operatorCordon []string // nodes the operator cordoned before the run
	needReboot     []string // nodes whose sentinel is set at the start
	window         time.Duration
	events         []event
	// controller, when set, runs the rollout controller: the agents wait for
	// its admissions (--admission=controller). Nil: they race for slots.
	controller *controllerConfig
}

// controllerConfig is a controller-mode run's rollout controller.
type controllerConfig struct {
	replicas         []string // identities, one proxy listener each
	admissionTimeout time.Duration
}

// limitInForce is the limit the lock holds the holders to under limit: the
// agents' --concurrency, or in controller mode the controller's
// --max-unavailable, which counts the operator's cordons against it (the
// rollout would halt for good at limit 1 with a node cordoned otherwise), so
// it is raised by as many.
func (c config) limitInForce(limit int) int {
	if c.controller == nil {
		return limit
	}
	return limit + len(c.operatorCordon)
}

// event is one fault of the schedule: it starts at at, and a fault with a
// duration is undone dur later.
type event struct {
	at        time.Duration
	kind      string
	node      string
	dur       time.Duration
	n         int     // a new limit; which write of the kind to kill after
	rate      float64 // error rate
	writeKind string
	sub       string // the variant of a fault (lease edits)
}

func (e event) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "+%5.1fs %-17s", e.at.Seconds(), e.kind)
	if e.node != "" {
		fmt.Fprintf(&b, " %s", e.node)
	}
	if e.writeKind != "" {
		fmt.Fprintf(&b, " after write %d of %q", e.n, e.writeKind)
	} else if e.kind == faultLimitChange {
		fmt.Fprintf(&b, " to %d", e.n)
	}
	if e.rate > 0 {
		fmt.Fprintf(&b, " rate %.2f", e.rate)
	}
	if e.sub != "" {
		fmt.Fprintf(&b, " (%s)", e.sub)
	}
	if e.dur > 0 {
		fmt.Fprintf(&b, " for %s", e.dur.Round(100*time.Millisecond))
	}
	return b.String()
}

// drawConfig draws the world and the schedule from the seed: the same seed
// always gives the same schedule (the timing of the processes under it
// varies from run to run).
func drawConfig(seed uint64) config {
	r := rand.New(rand.NewPCG(seed, 0x6e6f646570617463)) // "nodepatc"
	c := config{seed: seed, limit: 1 + r.IntN(2), window: 20*time.Second + between(r, 0, 10*time.Second)}
	for i := range 4 + r.IntN(3) {
		c.nodes = append(c.nodes, fmt.Sprintf("node-%d", i))
	}
	c.rebootDuration = between(r, 500*time.Millisecond, 1500*time.Millisecond)
	if r.IntN(2) == 0 {
		c.lockTTL = 30 * time.Second
	}
	if r.IntN(3) > 0 {
		c.skewNode = pick(r, c.nodes)
		c.skew = time.Duration(1+r.IntN(5)) * time.Minute
		if r.IntN(2) == 0 {
			c.skew = -c.skew
		}
	}
	if r.IntN(2) == 0 {
		c.operatorCordon = []string{pick(r, c.nodes)}
	}
	for _, n := range c.nodes {
		if r.IntN(6) > 0 {
			c.needReboot = append(c.needReboot, n)
		}
	}
	if len(c.needReboot) == 0 {
		c.needReboot = []string{c.nodes[0]}
	}
	c.events = drawEvents(r, c)
	drawController(seed, &c)
	return c
}

// drawEvents draws 8 to 15 faults spread over the window.
func drawEvents(r *rand.Rand, c config) []event {
	kinds := []string{
		faultKill, faultKill, faultKillAfterWrite, faultKillAfterWrite, faultKillAfterWrite,
		faultAPIErrors, faultAPIDelay, faultDropWatches, faultDropConns,
		faultAPIServerRestart, faultEtcdRestart, faultReregister, faultLeaseDelete, faultLeaseEdit,
		faultLimitChange, faultBlock, faultPause, faultForce, faultFailReboot, faultPDB, faultPersistentNeed,
		// New patches keep cycles going all through the window.
		faultNeedReboot, faultNeedReboot, faultNeedReboot, faultNeedReboot,
	}
	var events []event
	restarts := 0
	for range 8 + r.IntN(8) {
		e := drawEvent(r, c, pick(r, kinds))
		// A restart of the control plane costs seconds of a 2-core machine: at
		// most two per run.
		if e.kind == faultAPIServerRestart || e.kind == faultEtcdRestart {
			if restarts++; restarts > 2 {
				continue
			}
		}
		events = append(events, e)
	}
	slices.SortStableFunc(events, func(a, b event) int { return int(a.at - b.at) })
	return events
}

func drawEvent(r *rand.Rand, c config, kind string) event {
	e := event{at: between(r, 0, c.window), kind: kind, node: pick(r, c.nodes)}
	switch kind {
	case faultKill:
		e.dur = between(r, 0, 2*time.Second) // until the DaemonSet restarts it
	case faultKillAfterWrite:
		e.writeKind, e.n, e.node = pick(r, writeKinds), 1+r.IntN(3), ""
		e.dur = between(r, 0, 2*time.Second)
	case faultAPIErrors:
		e.rate, e.dur = 0.2+0.5*r.Float64(), between(r, 2*time.Second, 8*time.Second)
		if r.IntN(3) == 0 {
			e.node = "" // every node
		}
	case faultAPIDelay:
		e.dur = between(r, 2*time.Second, 8*time.Second)
		e.sub = between(r, 100*time.Millisecond, 1500*time.Millisecond).String()
		if r.IntN(3) == 0 {
			e.node = ""
		}
	case faultAPIServerRestart, faultEtcdRestart:
		e.node, e.dur = "", between(r, 0, 3*time.Second)
	case faultLeaseDelete:
		e.node = ""
	case faultLeaseEdit:
		e.node, e.sub = "", pick(r, []string{"ghost-holder", "free", "annotate"})
	case faultLimitChange:
		// A helm upgrade (every agent restarted with the new --concurrency of a
		// new --config-generation), or an operator editing the header Lease.
		e.node, e.n, e.sub = "", 1+r.IntN(3), pick(r, []string{"restart", "header"})
	case faultPersistentNeed:
		e.dur = between(r, 5*time.Second, 15*time.Second)
	case faultBlock:
		e.dur = between(r, 2*time.Second, 10*time.Second)
	case faultFailReboot:
		// Long enough, sometimes, for a request and its retry to be ignored
		// (--reboot-timeout=6s): the node halts in Failed.
		e.dur = between(r, 4*time.Second, 20*time.Second)
	case faultPause:
		e.node, e.dur = "", between(r, 2*time.Second, 8*time.Second)
	case faultForce:
		if r.IntN(3) == 0 {
			e.dur = between(r, 0, 3*time.Second) // then the operator takes it back
		}
	case faultPDB:
		e.dur = between(r, 5*time.Second, 15*time.Second)
	}
	if kind == faultReregister && slices.Contains(c.operatorCordon, e.node) {
		// A re-registered Node is schedulable: that would lift the operator's
		// cordon for the agent.
		e.node = otherThan(c.nodes, c.operatorCordon, e.node)
	}
	return e
}

// controllerStream seeds the controller's draws: a stream of their own, so
// that the draws above, and with them every seed's schedule, stay as they
// were before controller mode. It is "controll" plus an offset chosen so
// that the seeds chaos_test.go lists, all found before controller mode, keep
// their agents-only world (TestSeedsFoundBeforeTheControllerKeepTheirWorld),
// while 99 of seeds 1–200 draw controller mode.
const controllerStream = 0x636f6e74726f6c6c + 1583

// controllerReplicas are the identities of a controller-mode run's two
// replicas, as the chart's Deployment runs two.
func controllerReplicas() []string { return []string{"controller-0", "controller-1"} }

// drawController draws whether the run uses the rollout controller (half
// the seeds do) and, if it does, its admission timeout and its own faults:
// its leader killed once or twice, and up to two proxy faults on a replica's
// requests. They merge into the schedule by time; the other faults keep
// their order.
func drawController(seed uint64, c *config) {
	r := rand.New(rand.NewPCG(seed, controllerStream))
	if r.IntN(2) != 0 {
		return
	}
	c.controller = &controllerConfig{replicas: controllerReplicas(),
		admissionTimeout: between(r, 5*time.Second, 15*time.Second).Round(time.Second)}
	var events []event
	for range 1 + r.IntN(2) {
		events = append(events, event{at: between(r, 0, c.window), kind: faultKillController,
			dur: between(r, 0, 5*time.Second)}) // until the Deployment's pod restarts
	}
	for range r.IntN(3) {
		e := drawEvent(r, *c, pick(r, []string{faultAPIErrors, faultAPIDelay, faultDropWatches, faultDropConns}))
		e.node = pick(r, c.controller.replicas)
		events = append(events, e)
	}
	c.events = append(c.events, events...)
	slices.SortStableFunc(c.events, func(a, b event) int { return int(a.at - b.at) })
}

func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// otherThan returns the first node not in avoid, or fallback.
func otherThan(nodes, avoid []string, fallback string) string {
	for _, n := range nodes {
		if !slices.Contains(avoid, n) {
			return n
		}
	}
	return fallback
}

// describe is the run's world and schedule, for the log.
func (c config) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d nodes, limit %d, reboots of %s, lock TTL %s", c.seed, len(c.nodes), c.limit,
		c.rebootDuration.Round(10*time.Millisecond), c.lockTTL)
	if c.skewNode != "" {
		fmt.Fprintf(&b, ", clock of %s off by %s", c.skewNode, c.skew)
	}
	fmt.Fprintf(&b, ", operator cordoned %v, reboot needed on %v", c.operatorCordon, c.needReboot)
	if c.controller != nil {
		fmt.Fprintf(&b, ", controller mode (replicas %v, --max-unavailable=%d, --admission-timeout=%s)",
			c.controller.replicas, c.limitInForce(c.limit), c.controller.admissionTimeout)
	}
	fmt.Fprintf(&b, ", faults over %s:\n", c.window.Round(100*time.Millisecond))
	for _, e := range c.events {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	return b.String()
}
