package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/test/faultproxy"
	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/sim"
)

const (
	namespace = "nodepatch"
	lockName  = "nodepatch-lock"
	// runTimeout bounds one run, setup and settling included.
	runTimeout = 6 * time.Minute
	// settleTimeout bounds the wait for the world to settle once the faults
	// have stopped.
	settleTimeout = 3 * time.Minute
)

// Env is what runs share: the tools and the agent binary.
type Env struct {
	BinDir string // kube-apiserver, etcd, kwok
	Binary string // nodepatch
	// KeepDir, when set, keeps every run's folder (control plane and agent
	// logs); a failed run's folder is always kept.
	KeepDir bool
	Log     io.Writer // progress; nil discards it
}

// run is one seed's world while it runs.
type run struct {
	ctx     context.Context // the run's, for the goroutines that faults start
	env     Env
	cfg     config
	dir     string
	cp      *harness.ControlPlane
	client  kubernetes.Interface
	proxy   *faultproxy.Proxy
	sup     *sim.Supervisor
	ctl     *controllers // controller mode's replicas; nil otherwise
	watcher *sim.Watcher
	log     *os.File

	mu        sync.Mutex
	counts    map[string]int // faults injected, by kind
	forces    map[string]int // force-reboot=true set by the schedule, by node
	sentinels map[string]int // sentinels set by the schedule after the start, by node
	failed    map[string]int // times a node was seen Failed
	excused   map[string]int // of those, halts that kills between an attempt and its request explain
	// restartsSpent: agent restarts already taken to explain lost attempts.
	restartsSpent map[string]int
	halts         map[string][]string // why each halted node said it halted
	limit         int                 // the limit in force (before limitInForce)
	ctlLimit      int                 // the controllers' --max-unavailable
	generation    int64               // the agents' --config-generation, and the header's
	armed         []*writeKill
	restarts      sync.Mutex // one control plane restart at a time
	limitMu       sync.Mutex // one limit change at a time
	faultsWG      sync.WaitGroup
	background    sync.WaitGroup // agent restarts after kills
	harnessErrs   []error
}

// Run runs one seed and returns its result. An error means the run could
// not be carried out (the harness failed), not that an invariant broke.
func Run(ctx context.Context, env Env, seed uint64) (Result, error) {
	start := time.Now()
	cfg := drawConfig(seed)
	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	dir, err := os.MkdirTemp("", fmt.Sprintf("nodepatch-chaos-%d-", seed))
	if err != nil {
		return Result{}, fmt.Errorf("run folder: %w", err)
	}
	r := &run{ctx: ctx, env: env, cfg: cfg, dir: dir, counts: map[string]int{}, forces: map[string]int{}, sentinels: map[string]int{},
		failed: map[string]int{}, excused: map[string]int{}, restartsSpent: map[string]int{}, halts: map[string][]string{}, limit: cfg.limit, ctlLimit: cfg.limitInForce(cfg.limit)}
	res, err := r.execute(ctx)
	res.Seed, res.Elapsed, res.Dir = seed, time.Since(start), dir
	if err == nil && len(res.Violations) == 0 && !env.KeepDir {
		_ = os.RemoveAll(dir)
		res.Dir = ""
	}
	return res, err
}

func (r *run) execute(ctx context.Context) (Result, error) {
	var err error
	if r.log, err = os.Create(filepath.Join(r.dir, "chaos.log")); err != nil {
		return Result{}, fmt.Errorf("chaos log: %w", err)
	}
	defer r.log.Close()
	r.logf("%s", r.cfg.describe())
	defer r.teardown()
	if err := r.setUp(ctx); err != nil {
		return Result{}, err
	}
	r.playSchedule(ctx)
	r.settleAndCheck(ctx)
	if r.ctl != nil {
		r.checkControllers(ctx)
	}
	return r.result(), errors.Join(r.harnessErrs...)
}

// setUp starts the control plane, the proxy, the hosts with their Nodes,
// the watcher, the workload, in controller mode the controllers, and the
// agents, then sets the sentinels.
func (r *run) setUp(ctx context.Context) error {
	cp, err := harness.StartControlPlane(ctx, harness.Options{BinDir: r.env.BinDir, Dir: filepath.Join(r.dir, "cp"), Kwok: true})
	if err != nil {
		return err
	}
	r.cp, r.client = cp, cp.Client
	if err := r.createNamespaces(ctx); err != nil {
		return err
	}
	if r.watcher, err = sim.StartWatcher(ctx, r.client, namespace); err != nil {
		return err
	}
	r.watcher.SetLimit(r.cfg.limitInForce(r.cfg.limit))
	if err := r.startProxy(); err != nil {
		return err
	}
	if err := r.startSupervisor(ctx); err != nil {
		return err
	}
	if err := r.addWorkload(ctx); err != nil {
		return err
	}
	for _, n := range r.cfg.operatorCordon {
		if err := r.operatorCordon(ctx, n); err != nil {
			return err
		}
	}
	if r.cfg.controller != nil {
		if err := r.startControllers(ctx); err != nil {
			return err
		}
	}
	if err := r.sup.StartAgents(); err != nil {
		return err
	}
	for _, n := range r.cfg.needReboot {
		if err := r.sup.Host(n).SetRebootRequired(); err != nil {
			return err
		}
	}
	if r.cfg.skewNode != "" {
		r.count("clock-skew")
	}
	return nil
}

func (r *run) createNamespaces(ctx context.Context) error {
	_, err := r.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create namespace: %w", err)
	}
	// No kube-controller-manager: nobody else makes the ServiceAccount that
	// admission wants before it accepts a pod.
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := r.client.CoreV1().ServiceAccounts("default").Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create default service account: %w", err)
	}
	return nil
}

func (r *run) startProxy() error {
	p, err := faultproxy.New(faultproxy.Config{
		Upstream: r.cp.URL, CAFile: r.cp.CAFile, Seed: r.cfg.seed, OnWrite: r.onWrite,
	})
	if err != nil {
		return err
	}
	r.proxy = p
	for _, n := range r.listeners() {
		if _, err := p.Listen(n); err != nil {
			return err
		}
		if err := p.WriteKubeconfig(r.kubeconfigPath(n), n, r.cp.AdminToken); err != nil {
			return err
		}
	}
	return nil
}

// listeners are the proxy's listeners: one per node's agent and, in
// controller mode, one per controller replica.
func (r *run) listeners() []string {
	names := slices.Clone(r.cfg.nodes)
	if r.cfg.controller != nil {
		names = append(names, r.cfg.controller.replicas...)
	}
	return names
}

func (r *run) kubeconfigPath(node string) string {
	return filepath.Join(r.dir, "kubeconfig-"+node)
}

func (r *run) startSupervisor(ctx context.Context) error {
	flags := []string{
		"--reboot-timeout=6s", "--drain-timeout=4s", "--drain-retry-backoff=2s",
		"--lock-ttl=" + r.cfg.lockTTL.String(),
	}
	if r.cfg.controller != nil {
		flags = append(flags, "--admission=controller")
	}
	nodeFlags := map[string][]string{}
	for _, n := range r.cfg.nodes {
		nodeFlags[n] = r.nodeFlags(n, r.cfg.limit, 0)
	}
	sup, err := sim.NewSupervisor(r.client, sim.Options{
		Binary: r.env.Binary, Kubeconfig: r.cp.AdminKubeconfig, Namespace: namespace, Dir: filepath.Join(r.dir, "hosts"),
		RebootDuration: r.cfg.rebootDuration, ExtraFlags: flags, NodeFlags: nodeFlags,
		OnRebootRequest: r.onRebootRequest, RestartExited: time.Second, Log: r.log,
	})
	if err != nil {
		return err
	}
	r.sup = sup
	for _, n := range r.cfg.nodes {
		if _, err := sup.AddNode(ctx, n, nil); err != nil {
			return err
		}
	}
	return nil
}

// nodeFlags are a node's own flags: its way to the API server (through the
// proxy), the limit and its configuration generation, and its clock. The
// generation is left out until a limit change sets one, so that a seed
// without one replays against builds that predate the flag (-binary).
func (r *run) nodeFlags(node string, limit int, generation int64) []string {
	flags := []string{"--kubeconfig=" + r.kubeconfigPath(node), "--concurrency=" + strconv.Itoa(limit)}
	if generation > 0 {
		flags = append(flags, "--config-generation="+strconv.FormatInt(generation, 10))
	}
	if node == r.cfg.skewNode {
		flags = append(flags, "--clock-skew="+r.cfg.skew.String())
	}
	return flags
}

// onRebootRequest runs when a host sees its agent's reboot request: the
// watcher asks the API server whether the node holds a slot.
func (r *run) onRebootRequest(node string) {
	ctx, cancel := context.WithTimeout(r.ctx, time.Minute)
	defer cancel()
	if err := r.watcher.CheckRebootRequest(ctx, node); err != nil {
		r.harnessErr(err)
	}
}

func (r *run) teardown() {
	r.faultsWG.Wait()
	r.background.Wait()
	if r.ctl != nil {
		if err := r.ctl.stop(); err != nil {
			r.logf("stop controllers: %v", err)
		}
	}
	if r.sup != nil {
		if err := r.sup.Stop(); err != nil {
			r.logf("stop supervisor: %v", err)
		}
	}
	if r.proxy != nil {
		r.logf("writes through the proxy: %v", r.proxy.Writes())
		_ = r.proxy.Close()
	}
	if r.watcher != nil {
		r.watcher.Stop()
	}
	if r.cp != nil {
		if err := r.cp.Stop(); err != nil {
			r.logf("stop control plane: %v", err)
		}
	}
}

func (r *run) count(kind string) {
	r.mu.Lock()
	r.counts[kind]++
	r.mu.Unlock()
}

func (r *run) harnessErr(err error) {
	r.logf("harness error: %v", err)
	r.mu.Lock()
	r.harnessErrs = append(r.harnessErrs, err)
	r.mu.Unlock()
}

func (r *run) logf(format string, args ...any) {
	line := time.Now().Format("15:04:05.000") + " chaos: " + fmt.Sprintf(format, args...) + "\n"
	r.mu.Lock()
	defer r.mu.Unlock()
	_, _ = r.log.WriteString(line)
	if r.env.Log != nil {
		_, _ = io.WriteString(r.env.Log, line)
	}
}
