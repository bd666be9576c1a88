package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/agent"
	"github.com/nodepatch/nodepatch/pkg/notify"
)

// InProcessOptions configure an InProcess world.
type InProcessOptions struct {
	Kubeconfig string // every agent builds its own client from it
	Namespace  string // the agents' namespace (where the lock Leases live)
	Dir        string // hosts under Dir/<node>, every agent's log in Dir/agents.log

	// RebootDuration is how long a rebooting node stays down.
	RebootDuration time.Duration
	// DownTimeout bounds the wait for a rebooting Node to turn NotReady;
	// default 30s.
	DownTimeout time.Duration
	// Agent, when set, changes a node's agent options after the defaults
	// (DefaultAgentOptions): the in-process counterpart of ExtraFlags.
	Agent func(node string, o *agent.Options)
	// OnRebootRequest, when set, is called as soon as a host sees a reboot
	// request, while the node's agent still runs: the moment to ask whether
	// the node holds a slot, before the reboot ends the run.
	OnRebootRequest func(node string)
	// Log receives the world's events (also in Dir/supervisor.log).
	Log io.Writer
}

func (o InProcessOptions) validate() error {
	var errs []error
	if o.Kubeconfig == "" {
		errs = append(errs, errors.New("the kubeconfig is not set"))
	}
	if o.Namespace == "" {
		errs = append(errs, errors.New("the namespace is not set"))
	}
	if o.Dir == "" {
		errs = append(errs, errors.New("the folder is not set"))
	}
	if o.RebootDuration < 0 {
		errs = append(errs, fmt.Errorf("RebootDuration %s is negative", o.RebootDuration))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("in-process options: %w", err)
	}
	return nil
}

// InProcess is the Supervisor's world with the agents in this process: each
// node's agent is the real agent wiring (agent.Start) in a goroutine, with its
// own client, informers and metrics server. The hosts and the kwok Nodes are
// the same as the Supervisor's; a reboot ends the agent's run (its context is
// cancelled, as SIGKILL ends a process), gives the host a new boot id, takes
// the Node NotReady, brings it back Ready with the new boot id after
// RebootDuration and starts a new run. Hundreds of nodes fit on a small
// machine this way, where as many processes would not.
type InProcess struct {
	client kubernetes.Interface
	opts   InProcessOptions
	ctx    context.Context // cancelled by Stop
	cancel context.CancelFunc
	loops  sync.WaitGroup // the reboot poller and the reboots it started
	runs   sync.WaitGroup // agent runs
	log    *os.File
	agents *lockedWriter // Dir/agents.log, shared by every run

	mu    sync.Mutex
	nodes map[string]*inProcNode
	errs  []error
}

// inProcNode is one host and its agent; guarded by InProcess.mu.
type inProcNode struct {
	host      *Host
	run       *agentRun // the current run; nil while down
	starts    int
	reboots   int
	rebooting bool
}

// agentRun is one run of a node's agent, from start to cancel.
type agentRun struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	addr   string // its metrics address (host:port) once chosen
}

func (r *agentRun) address() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addr
}

// NewInProcess checks opts, creates opts.Dir and starts watching the hosts
// for reboot requests. Add hosts with AddNode, then StartAgents.
func NewInProcess(client kubernetes.Interface, opts InProcessOptions) (*InProcess, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.DownTimeout <= 0 {
		opts.DownTimeout = 30 * time.Second
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", opts.Dir, err)
	}
	logFile, err := os.OpenFile(filepath.Join(opts.Dir, "supervisor.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open supervisor log: %w", err)
	}
	agentLog, err := os.OpenFile(filepath.Join(opts.Dir, "agents.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		logFile.Close()
		return nil, fmt.Errorf("open agents' log: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &InProcess{client: client, opts: opts, ctx: ctx, cancel: cancel, log: logFile,
		agents: &lockedWriter{w: agentLog}, nodes: map[string]*inProcNode{}}
	s.loops.Add(1)
	go s.pollRebootRequests()
	return s, nil
}

// AddNode makes a host in Dir/<name> and registers its kwok Node (Ready,
// with the host's boot id). It does not start the agent. It may be called
// from several goroutines at once.
func (s *InProcess) AddNode(ctx context.Context, name string, labels map[string]string) (*Host, error) {
	host, err := NewHost(filepath.Join(s.opts.Dir, name), name)
	if err != nil {
		return nil, err
	}
	bootID, err := host.BootID()
	if err != nil {
		return nil, err
	}
	if _, err := CreateNode(ctx, s.client, name, labels, bootID); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.nodes[name]; dup {
		return nil, fmt.Errorf("add node %s: already added", name)
	}
	s.nodes[name] = &inProcNode{host: host}
	return host, nil
}

// AddNodes adds the named nodes, workers at a time, and returns the first
// error; the nodes after it are not added.
func (s *InProcess) AddNodes(ctx context.Context, names []string, workers int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	slots := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for _, name := range names {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			if _, err := s.AddNode(ctx, name, nil); err != nil {
				cancel(err)
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return fmt.Errorf("adding %d nodes: %w", len(names), err)
	}
	return nil
}

// Nodes returns the names of the added nodes, sorted.
func (s *InProcess) Nodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.nodes))
	for name := range s.nodes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Host returns the named host, or nil.
func (s *InProcess) Host(name string) *Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[name]; n != nil {
		return n.host
	}
	return nil
}

// Reboots is how many simulated reboots the node has completed.
func (s *InProcess) Reboots(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[name]; n != nil {
		return n.reboots
	}
	return 0
}

// AgentStarts is how many runs of the node's agent were started.
func (s *InProcess) AgentStarts(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[name]; n != nil {
		return n.starts
	}
	return 0
}

// MetricsAddress is where the node's current agent run serves /metrics and
// /readyz (host:port); "" while the node is down or before its agent chose
// a port.
func (s *InProcess) MetricsAddress(name string) string {
	s.mu.Lock()
	n := s.nodes[name]
	var run *agentRun
	if n != nil {
		run = n.run
	}
	s.mu.Unlock()
	if run == nil {
		return ""
	}
	return run.address()
}

// AgentLogPath is the file every agent run logs to (JSON, with a node key).
func (s *InProcess) AgentLogPath() string { return filepath.Join(s.opts.Dir, "agents.log") }

// Err returns the errors met while simulating, if any: reboots that went
// wrong and agent runs that ended by themselves.
func (s *InProcess) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

// StartAgents starts the agent of every added node.
func (s *InProcess) StartAgents() error {
	for _, name := range s.Nodes() {
		if err := s.StartAgent(name); err != nil {
			return err
		}
	}
	return nil
}

// StartAgent starts a run of the node's agent. The agent must not be running.
func (s *InProcess) StartAgent(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[name]
	switch {
	case n == nil:
		return fmt.Errorf("start agent: unknown node %q", name)
	case n.run != nil:
		return fmt.Errorf("start agent of %s: already running", name)
	case s.ctx.Err() != nil:
		return fmt.Errorf("start agent of %s: stopped", name)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	run := &agentRun{cancel: cancel, done: make(chan struct{})}
	n.run = run
	n.starts++
	s.runs.Add(1)
	go s.runAgent(ctx, name, n.host, run)
	return nil
}

// runAgent runs agent.Start until ctx ends. A metrics port taken meanwhile by
// someone else is tried again with another; any other end while ctx lives is
// an error, as a DaemonSet's agent never ends by itself.
func (s *InProcess) runAgent(ctx context.Context, name string, host *Host, run *agentRun) {
	defer s.runs.Done()
	defer close(run.done)
	log := slog.New(slog.NewJSONHandler(s.agents, &slog.HandlerOptions{Level: slog.LevelInfo})).With("node", name)
	var err error
	for range 3 {
		var addr string
		if addr, err = freeAddress(); err != nil {
			break
		}
		run.mu.Lock()
		run.addr = addr
		run.mu.Unlock()
		o := DefaultAgentOptions(name, host, s.opts.Kubeconfig, s.opts.Namespace, addr)
		if s.opts.Agent != nil {
			s.opts.Agent(name, &o)
		}
		if err = agent.Start(ctx, o, log); !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	if ctx.Err() == nil {
		s.recordErr(fmt.Errorf("agent of %s ended by itself: %v", name, err))
	}
}

// stopAgent ends the node's current run and waits for it, as a power cut
// ends the process (nothing of the run survives but what it wrote).
func (s *InProcess) stopAgent(name string) error {
	s.mu.Lock()
	n := s.nodes[name]
	if n == nil {
		s.mu.Unlock()
		return fmt.Errorf("stop agent: unknown node %q", name)
	}
	run := n.run
	n.run = nil
	s.mu.Unlock()
	if run == nil {
		return nil
	}
	run.cancel()
	select {
	case <-run.done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("agent of %s did not end within 30s of its cancel", name)
	}
}

// pollRebootRequests looks at every host's reboot request every 50ms (the
// hardware reacts at once) and reboots the hosts that ask. One loop over all
// hosts costs far less than a ticker per host.
func (s *InProcess) pollRebootRequests() {
	defer s.loops.Done()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-ticker.C:
		}
		for _, name := range s.rebootRequested() {
			s.loops.Add(1)
			go func() {
				defer s.loops.Done()
				if err := s.reboot(name); err != nil && s.ctx.Err() == nil {
					s.recordErr(err)
				}
			}()
		}
	}
}

// rebootRequested returns the hosts that ask for a reboot and are not
// rebooting yet, and marks them rebooting.
func (s *InProcess) rebootRequested() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for name, n := range s.nodes {
		if !n.rebooting && n.host.RebootRequested() {
			n.rebooting = true
			names = append(names, name)
		}
	}
	return names
}

// reboot is the Supervisor's reboot (powerCycle) with an in-process agent,
// after which the DaemonSet starts the agent again.
func (s *InProcess) reboot(name string) error {
	host := s.Host(name)
	if s.opts.OnRebootRequest != nil {
		s.opts.OnRebootRequest(name)
	}
	s.logf("%s: reboot requested; rebooting", name)
	bootID, err := powerCycle{
		client: s.client, name: name, host: host,
		duration: s.opts.RebootDuration, downTimeout: s.opts.DownTimeout,
		stopAgent: func() error { return s.stopAgent(name) }, logf: s.logf,
	}.run(s.ctx)
	if err != nil {
		return err
	}
	s.mu.Lock()
	n := s.nodes[name]
	n.reboots++
	n.rebooting = false
	s.mu.Unlock()
	s.logf("%s: rebooted, boot id %s", name, bootID)
	return s.StartAgent(name)
}

// Stop ends the reboots under way and every agent run, and waits for them.
// The Nodes stay.
func (s *InProcess) Stop() error {
	s.cancel()
	s.loops.Wait()
	s.runs.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.log.Close(), s.agents.Close())
}

func (s *InProcess) recordErr(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
	s.logf("error: %v", err)
}

func (s *InProcess) logf(format string, args ...any) {
	line := time.Now().Format("15:04:05.000") + " " + fmt.Sprintf(format, args...) + "\n"
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.log.WriteString(line)
	if s.opts.Log != nil {
		_, _ = io.WriteString(s.opts.Log, line)
	}
}

// DefaultAgentOptions are the options of `nodepatch agent` with the flags'
// defaults and the Supervisor's command line (agentArgs): the host's files in
// place of the real ones, the reboot command that presses the simulated power
// button, host commands run directly, no patching, a 1s period, metrics on
// metricsAddress and JSON logs.
func DefaultAgentOptions(name string, h *Host, kubeconfig, namespace, metricsAddress string) agent.Options {
	return agent.Options{
		NodeName: name, Kubeconfig: kubeconfig, Namespace: namespace, LockName: "nodepatch-lock",
		Concurrency: 1, Admission: "none", Period: time.Second,
		SentinelFile: h.SentinelPath(), BootIDFile: h.BootIDPath(),
		RebootMethod: "command", RebootCommand: "touch " + shellQuote(h.RebootRequestPath()),
		RebootTimeout: 10 * time.Minute, MinRebootInterval: time.Hour, MaxRepeatedReboots: 3,
		DrainTimeout: 10 * time.Minute, DrainGracePeriod: -1, DrainRetryBackoff: time.Minute,
		DeleteEmptyDirData: true, DrainTimeoutAction: "retry", ForceDrainGrace: 30, ExcludeFromLB: true,
		Notify: notify.Config{MessageTemplateDrain: notify.DefaultMessageTemplateDrain,
			MessageTemplateReboot: notify.DefaultMessageTemplateReboot, MessageTemplateUncordon: notify.DefaultMessageTemplateUncordon},
		NotifyBlockedAfter: time.Hour,
		RebootDays:         agent.DefaultRebootDays, StartTime: agent.DefaultStartTime, EndTime: agent.DefaultEndTime,
		TimeZone:       agent.DefaultTimeZone,
		MetricsAddress: metricsAddress, LogFormat: "json",
		HostRoot: "/", HostExec: "direct", OutputDir: filepath.Join(h.Dir, "output"),
		Patch: "off", PatchInterval: 24 * time.Hour, PatchTimeout: 30 * time.Minute,
		PatchExclude: slices.Clone(agent.DefaultPatchExclude),
		Checks: agent.CheckOptions{PrometheusTimeout: 10 * time.Second, KuredLockAnnotation: "weave.works/kured-node-lock",
			HealthDaemonSets: true, HealthTimeout: 10 * time.Minute},
	}
}

// freeAddress returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// lockedWriter lets many agent runs log to one file, one record at a time.
type lockedWriter struct {
	mu sync.Mutex
	w  *os.File
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lockedWriter) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.w.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return err
	}
	return nil
}
