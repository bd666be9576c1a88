package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/agent"
	"github.com/nodepatch/nodepatch/pkg/policy"
	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/rollout"
	"github.com/nodepatch/nodepatch/test/sim"
)

const namespace = "nodepatch"

// ScaleOptions shape a scale rollout: Nodes in-process agents admitted by a
// real `nodepatch controller` at MaxUnavailable.
type ScaleOptions struct {
	Nodes          int
	MaxUnavailable string // the controller's --max-unavailable
	RebootDuration time.Duration
	// IdleWindow is how long the agents are watched with nothing to do before
	// the rollout (their idle requests); 0 skips it.
	IdleWindow time.Duration
	// Timeout bounds the rollout; default 30m.
	Timeout time.Duration
	Log     io.Writer // progress; nil discards it
	// Binary is the nodepatch binary the controller runs; empty builds one
	// from this tree (the agents are always this tree's, in this process).
	Binary string
}

// ScaleResult is what a scale rollout measured.
type ScaleResult struct {
	Nodes, Limit, Rebooted int
	Wall, Ideal, MeanDrain time.Duration
	RebootDuration         time.Duration
	// Requests made during the rollout, from the sentinels written to every
	// node idle again after its reboot.
	AgentRequests, ControllerRequests requests
	Admissions                        int
	// FreedToAdmission: a node back in service while others wait, to the
	// next admission.
	FreedToAdmission []time.Duration
	ControllerCPU    time.Duration // during the rollout
	ControllerPeak   uint64        // peak RSS over the controller's life, bytes
	Decisions        histogram     // the controller's decision times during the rollout
	Writes           histogram     // the times its decisions' writes took
	NodeEvents       int           // Node events the observer saw during the rollout
	// Idle requests per minute, per agent and of the controller; NaN when
	// not measured.
	IdleAgentPerMinute, IdleControllerPerMinute float64
	MaxHolders, MaxOutOfService                 int
	// PeakUnavailable is the most nodes unavailable at once as the
	// controller counts them (NotReady, cordoned, in a cycle or admitted).
	PeakUnavailable int
	Violations      []sim.Violation
}

// RequestsPerCycle is every request (agents' and controller's) per node cycle.
func (r ScaleResult) RequestsPerCycle() float64 {
	return (r.AgentRequests.total() + r.ControllerRequests.total()) / float64(r.Nodes)
}

// ConflictsPerAdmission is the agents' 409s on Leases per admission.
func (r ScaleResult) ConflictsPerAdmission() float64 {
	return r.AgentRequests.conflicts() / float64(max(r.Admissions, 1))
}

// Ratio is wall time over ideal time.
func (r ScaleResult) Ratio() float64 { return r.Wall.Seconds() / r.Ideal.Seconds() }

func (r ScaleResult) String() string {
	n := float64(r.Nodes)
	return fmt.Sprintf("%d nodes, limit %d: rebooted %d in %s; ideal %s = ceil(%d/%d) x (drain %s + reboot %s); ratio %.2f | "+
		"API requests per node cycle %.1f (agents %.1f + controller %.2f; target <= 25, flat within 10%% from 100 to 1,000 nodes) | "+
		"lease conflicts per admission %.3f (%.0f over %d admissions; target 0) | "+
		"freed slot -> next admission p50 %s p95 %s over %d (target p95 <= 1s at 1,000 nodes) | "+
		"controller CPU %.1fs during the rollout, peak RSS %.1f MiB; decisions %.0f, mean %s, p95 %s, for %d Node events; their writes mean %s, p95 %s | "+
		"idle: %.2f requests per agent per minute, controller %.1f per minute | "+
		"at most %d slot holders, %d nodes out of service and %d unavailable at once; %d violations\n"+
		"  agent requests per cycle: %s\n  controller requests per cycle: %s",
		r.Nodes, r.Limit, r.Rebooted, r.Wall.Round(100*time.Millisecond), r.Ideal.Round(100*time.Millisecond), r.Nodes, r.Limit,
		r.MeanDrain.Round(10*time.Millisecond), r.RebootDuration, r.Ratio(),
		r.RequestsPerCycle(), r.AgentRequests.total()/n, r.ControllerRequests.total()/n,
		r.ConflictsPerAdmission(), r.AgentRequests.conflicts(), r.Admissions,
		ms(percentile(r.FreedToAdmission, 0.5)), ms(percentile(r.FreedToAdmission, 0.95)), len(r.FreedToAdmission),
		r.ControllerCPU.Seconds(), float64(r.ControllerPeak)/mib, r.Decisions.count, seconds(r.Decisions.mean()), r.Decisions.quantileText(0.95), r.NodeEvents,
		seconds(r.Writes.mean()), r.Writes.quantileText(0.95),
		r.IdleAgentPerMinute, r.IdleControllerPerMinute,
		r.MaxHolders, r.MaxOutOfService, r.PeakUnavailable, len(r.Violations),
		r.AgentRequests.top(40, n), r.ControllerRequests.top(40, n))
}

func ms(d time.Duration) string { return d.Round(time.Millisecond).String() }

// seconds renders s to the millisecond, or to 10µs below one.
func seconds(s float64) string {
	if math.IsNaN(s) {
		return "n/a"
	}
	d := time.Duration(s * float64(time.Second))
	if d < time.Millisecond {
		return d.Round(10 * time.Microsecond).String()
	}
	return ms(d)
}

// RunScale starts a control plane with kwok, Nodes simulated hosts with their
// agents in this process, and the controller as a process; measures the agents
// idle, then makes every node need a reboot and measures the rollout until
// every node is back and idle. Everything it started is stopped when it
// returns.
func RunScale(ctx context.Context, o ScaleOptions) (ScaleResult, error) {
	if o.Nodes < 1 {
		return ScaleResult{}, fmt.Errorf("nodes %d: want at least 1", o.Nodes)
	}
	q, err := policy.ParseQuantity(o.MaxUnavailable)
	if err != nil {
		return ScaleResult{}, fmt.Errorf("max unavailable: %w", err)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	dir, cleanup, err := benchDir("nodepatch-scale-", o.Log)
	if err != nil {
		return ScaleResult{}, err
	}
	defer cleanup()
	bin, err := nodepatchBinary(ctx, o.Binary, dir)
	if err != nil {
		return ScaleResult{}, err
	}
	cp, err := harness.StartControlPlane(ctx, harness.Options{Kwok: true, Log: o.Log, Dir: filepath.Join(dir, "cp")})
	if err != nil {
		return ScaleResult{}, err
	}
	defer cp.Stop()
	if err := createNamespace(ctx, cp.Client); err != nil {
		return ScaleResult{}, err
	}
	s := &scaleRun{o: o, cp: cp, bin: bin, dir: dir, limit: q.Of(o.Nodes), tally: &agentTally{counts: requests{}}, scr: newScraper()}
	return s.run(ctx)
}

// scaleRun is one RunScale's world.
type scaleRun struct {
	o       ScaleOptions
	cp      *harness.ControlPlane
	bin     string
	dir     string
	limit   int
	names   []string
	world   *sim.InProcess
	watcher *sim.Watcher
	obs     *observer
	ctrl    *controllerProc
	tally   *agentTally
	scr     scraper // asks the agents' /readyz
}

func (s *scaleRun) run(ctx context.Context) (ScaleResult, error) {
	defer s.stop() // whatever start got to
	if err := s.start(ctx); err != nil {
		return ScaleResult{}, err
	}
	res := ScaleResult{Nodes: s.o.Nodes, Limit: s.limit, RebootDuration: s.o.RebootDuration,
		IdleAgentPerMinute: math.NaN(), IdleControllerPerMinute: math.NaN()}
	if s.o.IdleWindow > 0 {
		if err := s.measureIdle(ctx, &res); err != nil {
			return res, err
		}
	}
	if err := s.rollout(ctx, &res); err != nil {
		return res, err
	}
	var err error
	if res.MeanDrain, err = rollout.MeanDrain(ctx, s.cp.Client); err != nil {
		return res, err
	}
	res.Ideal = rollout.Ideal(s.o.Nodes, s.limit, res.MeanDrain, s.o.RebootDuration)
	for _, name := range s.names {
		res.Rebooted += min(s.world.Reboots(name), 1)
	}
	res.MaxHolders, res.MaxOutOfService, res.Violations = s.watcher.MaxHolders(), s.watcher.MaxCordoned(), s.watcher.Violations()
	res.PeakUnavailable = s.obs.peakOut()
	return res, s.world.Err()
}

// start registers the nodes, starts the observers, the controller and the
// agents, and waits until every agent is ready.
func (s *scaleRun) start(ctx context.Context) error {
	client := s.cp.Client
	world, err := sim.NewInProcess(client, sim.InProcessOptions{
		Kubeconfig: s.cp.AdminKubeconfig, Namespace: namespace, Dir: filepath.Join(s.dir, "hosts"),
		RebootDuration: s.o.RebootDuration,
		Agent: func(_ string, a *agent.Options) {
			a.Admission, a.Concurrency = "controller", s.limit
			a.DrainTimeout, a.RebootTimeout = 2*time.Minute, 2*time.Minute
			a.OnAPIRequest = s.tally.count
		},
		OnRebootRequest: s.onRebootRequest,
	})
	if err != nil {
		return err
	}
	s.world = world
	for i := range s.o.Nodes {
		s.names = append(s.names, fmt.Sprintf("node-%04d", i))
	}
	fmt.Fprintf(s.o.Log, "registering %d kwok nodes...\n", len(s.names))
	begun := time.Now()
	if err := world.AddNodes(ctx, s.names, 8); err != nil {
		return err
	}
	fmt.Fprintf(s.o.Log, "registered in %s\n", time.Since(begun).Round(time.Second))
	if s.watcher, err = sim.StartWatcher(ctx, client, namespace); err != nil {
		return err
	}
	s.watcher.SetLimit(s.limit)
	if s.obs, err = startObserver(ctx, client, nil); err != nil {
		return err
	}
	if s.ctrl, err = startController(ctx, s.bin, s.cp.AdminKubeconfig, namespace, s.o.MaxUnavailable, s.dir); err != nil {
		return err
	}
	fmt.Fprintf(s.o.Log, "starting %d agents in this process...\n", len(s.names))
	begun = time.Now()
	if err := world.StartAgents(); err != nil {
		return err
	}
	if err := s.waitAgentsReady(ctx); err != nil {
		return err
	}
	fmt.Fprintf(s.o.Log, "every agent ready in %s\n", time.Since(begun).Round(time.Second))
	return nil
}

func (s *scaleRun) stop() {
	// Agents first: a controller gone under them changes nothing they do.
	if s.world != nil {
		_ = s.world.Stop()
	}
	if s.ctrl != nil {
		_ = s.ctrl.stop()
	}
	if s.obs != nil {
		s.obs.stop()
	}
	if s.watcher != nil {
		s.watcher.Stop()
	}
}

// onRebootRequest asks the API server whether the node holds a slot.
func (s *scaleRun) onRebootRequest(node string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.watcher.CheckRebootRequest(ctx, node); err != nil {
		s.watcher.AddViolation("%v", err)
	}
}

// waitAgentsReady waits until every agent answers /readyz (its caches
// synced, the lock's header written), asking only those not ready yet.
func (s *scaleRun) waitAgentsReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	var mu sync.Mutex
	ready := map[string]bool{}
	err := s.watcher.WaitFor(ctx, func() bool {
		var pending []string
		mu.Lock()
		for _, name := range s.names {
			if !ready[name] {
				pending = append(pending, name)
			}
		}
		mu.Unlock()
		_ = eachLimited(pending, 16, func(name string) error {
			if addr := s.world.MetricsAddress(name); addr != "" && s.scr.ready(ctx, addr) {
				mu.Lock()
				ready[name] = true
				mu.Unlock()
			}
			return nil
		})
		mu.Lock()
		defer mu.Unlock()
		return len(ready) == len(s.names) || s.world.Err() != nil
	})
	if err != nil {
		return fmt.Errorf("waiting for every agent to be ready: %w", err)
	}
	return s.world.Err()
}

// measureIdle samples every agent and the controller IdleWindow apart, with
// nothing to do.
func (s *scaleRun) measureIdle(ctx context.Context, res *ScaleResult) error {
	fmt.Fprintf(s.o.Log, "measuring %s of idle agents...\n", s.o.IdleWindow)
	a0, c0, err := s.sample(ctx)
	if err != nil {
		return err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.o.IdleWindow):
	}
	a1, c1, err := s.sample(ctx)
	if err != nil {
		return err
	}
	minutes := time.Since(start).Minutes()
	a1.add(a0, -1)
	c1.add(c0, -1)
	res.IdleAgentPerMinute = a1.total() / float64(len(s.names)) / minutes
	res.IdleControllerPerMinute = c1.total() / minutes
	return nil
}

// sample reads every agent's and the controller's requests so far.
func (s *scaleRun) sample(ctx context.Context) (agents, ctrl requests, err error) {
	agents = s.tally.sample()
	families, err := s.ctrl.metrics(ctx)
	if err != nil {
		return nil, nil, err
	}
	return agents, requestsIn(families, controllerRequestsMetric), nil
}

// rollout makes every node need a reboot and waits until all are back and
// idle, measuring from before the first sentinel to after the last node.
func (s *scaleRun) rollout(ctx context.Context, res *ScaleResult) error {
	a0, c0, err := s.sample(ctx)
	if err != nil {
		return err
	}
	before, err := s.ctrlSnapshot(ctx)
	if err != nil {
		return err
	}
	_, _, events0 := s.obs.timings()
	fmt.Fprintf(s.o.Log, "every node now needs a reboot; the controller admits %s (%d) at a time...\n", s.o.MaxUnavailable, s.limit)
	start := time.Now()
	for _, name := range s.names {
		if err := s.world.Host(name).SetRebootRequired(); err != nil {
			return err
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	err = s.watcher.WaitFor(waitCtx, func() bool {
		return s.obs.finished() == len(s.names) || s.world.Err() != nil
	})
	if err != nil {
		return fmt.Errorf("waiting for every node to reboot (%d of %d done): %w", s.obs.finished(), len(s.names), err)
	}
	res.Wall = time.Since(start)
	if err := s.world.Err(); err != nil {
		return err
	}
	a1, c1, err := s.sample(ctx)
	if err != nil {
		return err
	}
	after, err := s.ctrlSnapshot(ctx)
	if err != nil {
		return err
	}
	a1.add(a0, -1)
	c1.add(c0, -1)
	res.AgentRequests, res.ControllerRequests = a1, c1
	res.ControllerCPU, res.ControllerPeak = after.usage.cpu-before.usage.cpu, after.usage.peakRSS
	res.Decisions, res.Writes = after.decisions.minus(before.decisions), after.writes.minus(before.writes)
	var events int
	res.FreedToAdmission, res.Admissions, events = s.obs.timings()
	res.NodeEvents = events - events0
	return nil
}

// ctrlSnapshot is the controller's usage, decision and write times so far.
type ctrlSnapshot struct {
	usage             usage
	decisions, writes histogram
}

func (s *scaleRun) ctrlSnapshot(ctx context.Context) (ctrlSnapshot, error) {
	return snapshotController(ctx, s.ctrl)
}

func snapshotController(ctx context.Context, c *controllerProc) (ctrlSnapshot, error) {
	families, err := c.metrics(ctx)
	if err != nil {
		return ctrlSnapshot{}, err
	}
	h, ok := histogramIn(families, decisionMetric)
	if !ok {
		return ctrlSnapshot{}, fmt.Errorf("the controller's metrics have no %s", decisionMetric)
	}
	w, ok := histogramIn(families, writeMetric)
	if !ok {
		return ctrlSnapshot{}, fmt.Errorf("the controller's metrics have no %s", writeMetric)
	}
	u, err := processUsage(c.proc.PID())
	if err != nil {
		return ctrlSnapshot{}, err
	}
	return ctrlSnapshot{usage: u, decisions: h, writes: w}, nil
}

// agentTally adds up the API requests of every agent run, as each agent's
// client counts them (agent.Options.OnAPIRequest): in process, so a busy
// process's slow /metrics pages cannot lose a count, and the runs a reboot
// ended stay counted.
type agentTally struct {
	mu     sync.Mutex
	counts requests
}

func (t *agentTally) count(verb, resource string, code int) {
	k := requestKey{verb, resource, strconv.Itoa(code)}
	t.mu.Lock()
	t.counts[k]++
	t.mu.Unlock()
}

// sample is a copy of the counts so far.
func (t *agentTally) sample() requests {
	t.mu.Lock()
	defer t.mu.Unlock()
	total := requests{}
	total.add(t.counts, 1)
	return total
}

// nodepatchBinary is binary, or this tree's build in dir.
func nodepatchBinary(ctx context.Context, binary, dir string) (string, error) {
	if binary != "" {
		return binary, nil
	}
	return harness.BuildNodepatch(ctx, dir)
}

// benchDir is a fresh folder for a run; NODEPATCH_KEEP_BENCH keeps it.
func benchDir(prefix string, log io.Writer) (string, func(), error) {
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, fmt.Errorf("benchmark folder: %w", err)
	}
	if os.Getenv("NODEPATCH_KEEP_BENCH") != "" {
		fmt.Fprintln(log, "keeping the hosts' folders and the logs in", dir)
		return dir, func() {}, nil
	}
	return dir, func() { _ = os.RemoveAll(dir) }, nil
}

func createNamespace(ctx context.Context, client kubernetes.Interface) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", namespace, err)
	}
	return nil
}
