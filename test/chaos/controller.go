package chaos

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/sim"
)

// The rollout controller's side of the protocol, as the harness reads it
// (the controller's own constants are not imported: the harness observes).
const (
	electionLease       = "nodepatch-controller"
	admittedAnnotation  = "nodepatch.io/admitted"
	needSinceAnnotation = "nodepatch.io/need-since"
	limitSourceKey      = "nodepatch.io/limit-source"
	limitSourceValue    = "controller"
)

const (
	// controllerRestartExited is how long a replica that exited by itself
	// stays down before it is started again, as the kubelet restarts a
	// crashed container.
	controllerRestartExited = time.Second
	// controllerStopGrace bounds a replica's graceful stop (SIGTERM: it
	// gives up the election Lease) before it is killed.
	controllerStopGrace = 10 * time.Second
	// headerLimitWait bounds the wait for the controllers' new limit on the
	// header Lease after they restarted with it: a leader killed meanwhile is
	// replaced within the election Lease's 15 s.
	headerLimitWait = time.Minute
)

// controllers runs a controller-mode run's replicas of `nodepatch
// controller`, each through its own proxy listener, and restarts a replica
// that exits by itself. A replica killed by a fault is restarted by the
// fault, like an agent.
type controllers struct {
	binary string
	dir    string // logs go to dir/<identity>.log
	args   func(id string) []string
	logf   func(format string, args ...any)
	ctx    context.Context // the run's: no restart after it ends
	wg     sync.WaitGroup  // exit watchers

	mu      sync.Mutex
	procs   map[string]*replica
	exited  []string // replicas that exited by themselves, and why
	stopped bool     // stop was called: nothing starts again
}

// replica is one replica's current process; guarded by controllers.mu.
type replica struct {
	proc   *harness.Process // nil before the first start
	killed bool             // the current process was ended on purpose
}

func newControllers(ctx context.Context, binary, dir string, ids []string, args func(string) []string,
	logf func(string, ...any)) (*controllers, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("controller log folder: %w", err)
	}
	c := &controllers{binary: binary, dir: dir, args: args, logf: logf, ctx: ctx, procs: map[string]*replica{}}
	for _, id := range ids {
		c.procs[id] = &replica{}
	}
	return c, nil
}

// has reports whether id names one of the replicas (a proxy listener that
// is not a node's).
func (c *controllers) has(id string) bool {
	if c == nil {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.procs[id]
	return ok
}

// startIfDown starts the replica unless it runs already or the run is over,
// with the arguments in force now, and reports whether it started it.
func (c *controllers) startIfDown(id string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := c.procs[id]
	if rep == nil {
		return false, fmt.Errorf("unknown controller replica %q", id)
	}
	if c.stopped || c.ctx.Err() != nil || (rep.proc != nil && !exitedProc(rep.proc)) {
		return false, nil
	}
	args := c.args(id)
	p, err := harness.StartProcess(harness.ProcessSpec{
		Name: "nodepatch controller " + id, Path: c.binary, Args: args,
		LogPath: filepath.Join(c.dir, id+".log"), Env: sim.ProcessEnv(),
	})
	if err != nil {
		return false, err
	}
	rep.proc, rep.killed = p, false
	c.logf("controller %s started (pid %d): %s", id, p.PID(), strings.Join(args[1:], " "))
	c.wg.Add(1)
	go c.watchExit(id, p)
	return true, nil
}

// end ends the replica's process: SIGKILL (kill) or SIGTERM with a grace (a
// rolling update's stop). Ending one that is down does nothing.
func (c *controllers) end(id string, kill bool) error {
	c.mu.Lock()
	rep := c.procs[id]
	if rep == nil {
		c.mu.Unlock()
		return fmt.Errorf("unknown controller replica %q", id)
	}
	p := rep.proc
	rep.killed = true
	c.mu.Unlock()
	if p == nil || exitedProc(p) {
		return nil
	}
	var err error
	if kill {
		err = p.Kill()
	} else {
		err = p.Stop(controllerStopGrace)
	}
	if err != nil {
		return fmt.Errorf("end controller %s: %w", id, err)
	}
	how := "stopped"
	if kill {
		how = "killed"
	}
	c.logf("controller %s %s (pid %d)", id, how, p.PID())
	return nil
}

// running reports whether the replica's process is alive.
func (c *controllers) running(id string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	rep := c.procs[id]
	return rep != nil && rep.proc != nil && !exitedProc(rep.proc)
}

// watchExit records a replica that exits without being ended on purpose (a
// Deployment's replica never ends on its own) and starts it again.
func (c *controllers) watchExit(id string, p *harness.Process) {
	defer c.wg.Done()
	<-p.Done()
	c.mu.Lock()
	unexpected := c.procs[id].proc == p && !c.procs[id].killed
	c.mu.Unlock()
	if !unexpected {
		return
	}
	_, err := p.Exited()
	lines := strings.Split(p.LogTail(2000), "\n")
	why := fmt.Sprintf("%s: %v: %s", id, err, lines[len(lines)-1])
	c.mu.Lock()
	c.exited = append(c.exited, why)
	c.mu.Unlock()
	c.logf("controller %s exited by itself", why)
	if sleepCtx(c.ctx, controllerRestartExited) {
		if _, err := c.startIfDown(id); err != nil {
			c.logf("restart controller %s: %v", id, err)
		}
	}
}

// exitedByThemselves lists the replicas that exited by themselves, and why.
func (c *controllers) exitedByThemselves() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.exited)
}

// stop kills every replica, for good, and waits for the exit watchers.
func (c *controllers) stop() error {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	var errs []error
	for id := range c.procs {
		errs = append(errs, c.end(id, true))
	}
	c.wg.Wait()
	return errors.Join(errs...)
}

func exitedProc(p *harness.Process) bool {
	exited, _ := p.Exited()
	return exited
}

// startControllers starts the replicas, each through its own proxy
// listener, and waits until one leads (holds the election Lease), so that
// the schedule's first faults find a leader.
func (r *run) startControllers(ctx context.Context) error {
	c, err := newControllers(r.ctx, r.env.Binary, filepath.Join(r.dir, "controllers"), r.cfg.controller.replicas,
		r.controllerArgs, r.logf)
	if err != nil {
		return err
	}
	r.ctl = c
	for _, id := range r.cfg.controller.replicas {
		if _, err := c.startIfDown(id); err != nil {
			return err
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var leader string
	err = r.watcher.WaitFor(waitCtx, func() bool {
		var readErr error
		leader, readErr = r.leader(waitCtx)
		return readErr == nil && leader != ""
	})
	if err != nil {
		return fmt.Errorf("no controller replica took the election lease (logs in %s): %w", c.dir, err)
	}
	r.logf("controller %s leads", leader)
	return nil
}

// controllerArgs is a replica's command line with the limit in force now.
func (r *run) controllerArgs(id string) []string {
	return []string{
		"controller",
		"--kubeconfig=" + r.kubeconfigPath(id),
		"--namespace=" + namespace,
		"--lock-name=" + lockName,
		"--identity=" + id,
		"--election-lease=" + electionLease,
		"--max-unavailable=" + strconv.Itoa(r.maxUnavailable()),
		"--admission-timeout=" + r.cfg.controller.admissionTimeout.String(),
		"--metrics-address=127.0.0.1:0",
		"--log-format=json",
	}
}

// maxUnavailable is the replicas' --max-unavailable now.
func (r *run) maxUnavailable() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ctlLimit
}

// leader is the election Lease's holder on the API server ("" when none).
func (r *run) leader(ctx context.Context) (string, error) {
	lease, err := r.client.CoordinationV1().Leases(namespace).Get(ctx, electionLease, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return holderOf(lease), nil
}

// killLeader kills the replica that holds the election Lease, as the API
// server shows it, and has the Deployment start it again after restart.
func (r *run) killLeader(ctx context.Context, restart time.Duration) error {
	var leader string
	err := r.retry(ctx, "read the election lease", func() error {
		var err error
		leader, err = r.leader(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if !r.ctl.running(leader) {
		// Down already (its Lease not yet expired), or no holder at all.
		r.logf("controller-kill: no live replica leads (election lease held by %q)", leader)
		return nil
	}
	r.count(faultKillController)
	r.logf("controller-kill: the leader is %s", leader)
	return r.killControllerAndRestart(leader, restart)
}

// killControllerAndRestart kills the replica at once (a crash, its node
// lost) and starts it again after restart.
func (r *run) killControllerAndRestart(id string, restart time.Duration) error {
	if err := r.ctl.end(id, true); err != nil {
		return err
	}
	r.background.Add(1)
	go func() {
		defer r.background.Done()
		if !sleepCtx(r.ctx, restart) {
			return
		}
		if _, err := r.ctl.startIfDown(id); err != nil {
			r.harnessErr(err)
		}
	}()
	return nil
}

// restartControllers restarts every replica, one after the other, with the
// arguments in force now, as a helm upgrade of the Deployment does: each is
// stopped (it gives up the election Lease) and started again.
func (r *run) restartControllers(ctx context.Context) error {
	for _, id := range r.cfg.controller.replicas {
		if err := r.ctl.end(id, false); err != nil {
			return err
		}
		if _, err := r.ctl.startIfDown(id); err != nil {
			return err
		}
		if !sleepCtx(ctx, time.Second) { // the rollout's pace
			return ctx.Err()
		}
	}
	return nil
}

// changeControllerLimit is a limit change in controller mode: the
// controllers restarted with the new --max-unavailable. A helm upgrade
// ("restart") also rolls the agents with a new --concurrency and generation,
// which must not undo the controller's limit; an operator who changes only
// the Deployment ("header", in controller mode) leaves them alone. The
// controller's limit on the header binds every agent whatever its
// generation, so the new limit is in force once a new replica has written
// it. It reports whether that happened within headerLimitWait.
func (r *run) changeControllerLimit(ctx context.Context, limit int, gen int64, how string) (bool, error) {
	want := r.cfg.limitInForce(limit)
	r.mu.Lock()
	r.ctlLimit = want
	r.mu.Unlock()
	agents := "left alone"
	if how == "restart" {
		agents = "restarted too"
	}
	r.logf("controllers restart with --max-unavailable=%d; agents %s", want, agents)
	if err := r.restartControllers(ctx); err != nil {
		return false, err
	}
	if how == "restart" {
		if err := r.restartAgents(ctx, limit, gen); err != nil {
			return false, err
		}
	}
	waitCtx, cancel := context.WithTimeout(ctx, headerLimitWait)
	defer cancel()
	err := r.watcher.WaitFor(waitCtx, func() bool {
		header, err := r.client.CoordinationV1().Leases(namespace).Get(waitCtx, lockName, metav1.GetOptions{})
		return err == nil && header.Annotations[limitSourceKey] == limitSourceValue &&
			header.Annotations[sim.LimitAnnotation] == strconv.Itoa(want)
	})
	if err != nil {
		r.watcher.AddViolation("the controllers restarted with --max-unavailable=%d did not write it on the header Lease within %s",
			want, headerLimitWait)
		return false, nil
	}
	sleepCtx(ctx, limitGrace) // the agents' informers see it
	return true, nil
}

// checkControllers is controller mode's end check: no replica exited by
// itself, and nothing is left admitted, or reporting a need, on an idle node
// that needs nothing. The agent withdraws both on its next step, and the
// controller revokes an admission after its timeout, so the check waits that
// long (from the API server) before it reports what is left.
func (r *run) checkControllers(ctx context.Context) {
	for _, why := range r.ctl.exitedByThemselves() {
		r.watcher.AddViolation("the controller %s exited by itself", strings.SplitN(why, ":", 2)[0])
		r.logf("controller exited by itself: %s", why)
	}
	waitCtx, cancel := context.WithTimeout(ctx, r.cfg.controller.admissionTimeout+30*time.Second)
	defer cancel()
	var left []string
	err := r.watcher.WaitFor(waitCtx, func() bool {
		nodes, err := r.client.CoreV1().Nodes().List(waitCtx, metav1.ListOptions{})
		if err != nil {
			return false
		}
		left = left[:0]
		for i := range nodes.Items {
			left = append(left, r.leftReported(&nodes.Items[i])...)
		}
		return len(left) == 0
	})
	if err != nil {
		for _, l := range left {
			r.watcher.AddViolation("at the end %s", l)
		}
	}
}

// leftReported names what an idle node that needs nothing still carries of
// the admission protocol.
func (r *run) leftReported(node *corev1.Node) []string {
	a := node.Annotations
	host := r.sup.Host(node.Name)
	if host == nil || a[sim.PhaseAnnotation] != "" || a[sim.ForceAnnotation] == "true" || host.RebootRequired() {
		return nil
	}
	var left []string
	for _, key := range []string{admittedAnnotation, needSinceAnnotation} {
		if v, ok := a[key]; ok {
			left = append(left, fmt.Sprintf("%s, idle and needing nothing, is left with %s=%s", node.Name, key, v))
		}
	}
	return left
}
