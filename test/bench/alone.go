package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/policy"
	"github.com/nodepatch/nodepatch/pkg/state"
	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/sim"
)

// AloneOptions shape a run of the controller alone: Nodes kwok nodes whose
// agents are simulated by writing their reports on the Nodes directly.
type AloneOptions struct {
	Nodes          int
	MaxUnavailable string
	// RebootDuration is how long a simulated cycle stays Rebooting.
	RebootDuration time.Duration
	Timeout        time.Duration // bound on the rollout; default 30m
	Log            io.Writer
	Binary         string // as ScaleOptions.Binary
}

// AloneResult is what a run of the controller alone measured.
type AloneResult struct {
	Nodes, Limit, Cycles int
	Wall                 time.Duration
	ControllerCPU        time.Duration // during the rollout
	ControllerPeak       uint64        // bytes, over the controller's life (its first sync included)
	Decisions            histogram     // during the rollout
	Writes               histogram     // the times the decisions' writes took
	NodeEvents           int
	PeakUnavailable      int // the most nodes in a cycle or admitted at once
	FreedToAdmission     []time.Duration
	ControllerRequests   requests // during the rollout
}

func (r AloneResult) String() string {
	return fmt.Sprintf("controller alone, %d nodes, limit %d: %d simulated cycles in %s | peak RSS %.1f MiB (target <= 150 MiB), CPU %.1fs during the rollout | "+
		"decision time mean %s p50 %s p95 %s over %.0f decisions for %d Node events (%.2f decisions per event); their writes mean %s p95 %s | "+
		"freed slot -> next admission p50 %s p95 %s over %d | at most %d nodes unavailable at once | controller requests per cycle %.2f: %s",
		r.Nodes, r.Limit, r.Cycles, r.Wall.Round(100*time.Millisecond), float64(r.ControllerPeak)/mib, r.ControllerCPU.Seconds(),
		seconds(r.Decisions.mean()), r.Decisions.quantileText(0.5), r.Decisions.quantileText(0.95), r.Decisions.count,
		r.NodeEvents, r.Decisions.count/float64(max(r.NodeEvents, 1)), seconds(r.Writes.mean()), r.Writes.quantileText(0.95),
		ms(percentile(r.FreedToAdmission, 0.5)), ms(percentile(r.FreedToAdmission, 0.95)), len(r.FreedToAdmission),
		r.PeakUnavailable, r.ControllerRequests.total()/float64(r.Nodes), r.ControllerRequests.top(40, float64(r.Nodes)))
}

// RunControllerAlone starts a control plane with kwok and Nodes nodes, runs
// the controller as a process, and plays every agent's side of the protocol
// on the Nodes: the need, then on admission the cycle's phases, then the
// cycle's end. It measures the controller until every node has cycled once.
func RunControllerAlone(ctx context.Context, o AloneOptions) (AloneResult, error) {
	q, err := policy.ParseQuantity(o.MaxUnavailable)
	if err != nil || o.Nodes < 1 {
		return AloneResult{}, fmt.Errorf("nodes %d, max unavailable %q: %w", o.Nodes, o.MaxUnavailable, err)
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Minute
	}
	dir, cleanup, err := benchDir("nodepatch-alone-", o.Log)
	if err != nil {
		return AloneResult{}, err
	}
	defer cleanup()
	bin, err := nodepatchBinary(ctx, o.Binary, dir)
	if err != nil {
		return AloneResult{}, err
	}
	cp, err := harness.StartControlPlane(ctx, harness.Options{Kwok: true, Log: o.Log, Dir: filepath.Join(dir, "cp")})
	if err != nil {
		return AloneResult{}, err
	}
	defer cp.Stop()
	if err := createNamespace(ctx, cp.Client); err != nil {
		return AloneResult{}, err
	}
	names := make([]string, o.Nodes)
	for i := range names {
		names[i] = fmt.Sprintf("node-%04d", i)
	}
	fmt.Fprintf(o.Log, "registering %d kwok nodes...\n", len(names))
	begun := time.Now()
	err = eachLimited(names, 16, func(name string) error {
		_, err := sim.CreateNode(ctx, cp.Client, name, nil, "boot-"+name)
		return err
	})
	if err != nil {
		return AloneResult{}, err
	}
	fmt.Fprintf(o.Log, "registered in %s\n", time.Since(begun).Round(time.Second))
	// The simulated agents write as fast as thousands of agents would, each
	// with its own rate limit: one client without the default limit.
	cfg := cp.RESTConfig()
	cfg.QPS, cfg.Burst = 2000, 4000
	writer, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return AloneResult{}, fmt.Errorf("the simulated agents' client: %w", err)
	}
	agentCtx, cancelAgents := context.WithCancel(ctx)
	agents := &simAgents{ctx: agentCtx, client: writer, reboot: o.RebootDuration, need: map[string]time.Time{}, started: map[string]bool{}}
	defer func() {
		cancelAgents()
		agents.wait()
	}()
	obs, err := startObserver(ctx, cp.Client, agents.admitted)
	if err != nil {
		return AloneResult{}, err
	}
	defer obs.stop()
	ctrl, err := startController(ctx, bin, cp.AdminKubeconfig, namespace, o.MaxUnavailable, dir)
	if err != nil {
		return AloneResult{}, err
	}
	defer ctrl.stop()
	res := AloneResult{Nodes: o.Nodes, Limit: q.Of(o.Nodes)}
	return res, runAlone(ctx, o, names, agents, obs, ctrl, &res)
}

func runAlone(ctx context.Context, o AloneOptions, names []string, agents *simAgents, obs *observer, ctrl *controllerProc, res *AloneResult) error {
	before, err := snapshotController(ctx, ctrl)
	if err != nil {
		return err
	}
	families, err := ctrl.metrics(ctx)
	if err != nil {
		return err
	}
	requests0 := requestsIn(families, controllerRequestsMetric)
	_, _, events0 := obs.timings()
	start := time.Now()
	fmt.Fprintf(o.Log, "every node reports a need; the controller admits %s (%d) at a time...\n", o.MaxUnavailable, res.Limit)
	if err := eachLimited(names, 32, agents.reportNeed); err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	err = pollUntil(waitCtx, time.Second, func() (bool, error) {
		if err := agents.err(); err != nil {
			return false, err
		}
		return agents.finished() == len(names) && obs.idle() == len(names), nil
	})
	if err != nil {
		return fmt.Errorf("waiting for every simulated cycle (%d of %d done): %w", agents.finished(), len(names), err)
	}
	res.Wall = time.Since(start)
	after, err := snapshotController(ctx, ctrl)
	if err != nil {
		return err
	}
	if families, err = ctrl.metrics(ctx); err != nil {
		return err
	}
	res.ControllerRequests = requestsIn(families, controllerRequestsMetric)
	res.ControllerRequests.add(requests0, -1)
	res.Cycles = agents.finished()
	res.ControllerCPU, res.ControllerPeak = after.usage.cpu-before.usage.cpu, after.usage.peakRSS
	res.Decisions, res.Writes = after.decisions.minus(before.decisions), after.writes.minus(before.writes)
	var events int
	res.FreedToAdmission, _, events = obs.timings()
	res.NodeEvents = events - events0
	res.PeakUnavailable = obs.peakOut()
	return nil
}

// pollUntil calls cond every interval until it is true, fails, or ctx ends.
func pollUntil(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ticker.C:
		}
	}
}

// simAgents plays the agents' side of the rollout protocol on the Nodes, as
// an agent's writes show it: the need, then once admitted the cycle's phases
// (Draining, Rebooting for the reboot's duration), then the cycle's end, which
// clears the need and the admission.
type simAgents struct {
	client kubernetes.Interface
	reboot time.Duration
	ctx    context.Context // ends every simulated cycle
	wg     sync.WaitGroup

	mu      sync.Mutex
	need    map[string]time.Time
	started map[string]bool
	done    int
	errs    []error
}

func (a *simAgents) reportNeed(name string) error {
	now := time.Now()
	a.mu.Lock()
	a.need[name] = now
	a.mu.Unlock()
	return a.patch(a.ctx, name, state.Node{NeedSince: now}.AgentAnnotations(), false)
}

// admitted starts the node's simulated cycle, once; the observer calls it
// from its event handler, so it must not block.
func (a *simAgents) admitted(name string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	need, ok := a.need[name]
	if !ok || a.started[name] {
		return
	}
	a.started[name] = true
	a.wg.Go(func() {
		if err := a.cycle(name, need); err != nil && a.ctx.Err() == nil {
			a.mu.Lock()
			a.errs = append(a.errs, err)
			a.mu.Unlock()
		}
	})
}

func (a *simAgents) cycle(name string, need time.Time) error {
	ctx := a.ctx
	begun := time.Now()
	st := state.Node{NeedSince: need, Phase: state.PhaseDraining, CycleStarted: begun, BootIDBefore: "boot-" + name}
	if err := a.patch(ctx, name, st.AgentAnnotations(), false); err != nil {
		return err
	}
	st.Phase, st.Drained, st.DrainedAt = state.PhaseRebooting, true, time.Now()
	st.RebootRequestedAt, st.RebootAttempts = time.Now(), 1
	if err := a.patch(ctx, name, st.AgentAnnotations(), false); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(a.reboot):
	}
	end := state.Node{LastReboot: time.Now()}
	end.RememberCycle(time.Since(begun))
	if err := a.patch(ctx, name, end.AgentAnnotations(), true); err != nil {
		return err
	}
	a.mu.Lock()
	a.done++
	a.mu.Unlock()
	return nil
}

// patch merge-patches the node's annotations; clearAdmission also removes the
// admission, as the agent does at a cycle's end.
func (a *simAgents) patch(ctx context.Context, name string, annotations map[string]*string, clearAdmission bool) error {
	if clearAdmission {
		annotations[state.AnnotationAdmitted] = nil
	}
	data, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return err
	}
	if _, err := a.client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, data, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("simulated agent of %s: %w", name, err)
	}
	return nil
}

func (a *simAgents) finished() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.done
}

func (a *simAgents) err() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return errors.Join(a.errs...)
}

func (a *simAgents) wait() { a.wg.Wait() }
