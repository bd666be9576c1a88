package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/test/harness"
)

// Options configure a Supervisor.
type Options struct {
	Binary     string // the nodepatch binary
	Kubeconfig string // the kubeconfig every agent uses
	Namespace  string // the agents' namespace (where the lock Leases live)
	Dir        string // hosts and logs go under Dir/<node>

	// RebootDuration is how long a rebooting node stays down.
	RebootDuration time.Duration
	// DownTimeout bounds the wait for a rebooting Node to turn NotReady;
	// default 30s.
	DownTimeout time.Duration
	// FailReboot makes every host ignore reboot requests: the boot id never
	// changes and the agent keeps running. SetFailReboot changes one node.
	FailReboot bool
	// ExtraFlags are appended to every agent's command line, after the
	// defaults, so they override them.
	ExtraFlags []string
	// NodeFlags are appended after ExtraFlags for the named node only.
	NodeFlags map[string][]string
	// RestartExited, when positive, starts an agent that exited by itself
	// again after this long, as the kubelet restarts a crashed container.
	// The exit is still an error (Err).
	RestartExited time.Duration
	// OnRebootRequest, when set, is called as soon as a host sees a reboot
	// request, before it obeys or ignores it: the moment to ask the API server
	// whether the node holds a slot (Watcher.CheckRebootRequest).
	OnRebootRequest func(node string)
	// Log receives the supervisor's events (also in Dir/supervisor.log).
	Log io.Writer
}

func (o Options) validate() error {
	var errs []error
	if o.Binary == "" {
		errs = append(errs, errors.New("sim options: the nodepatch binary is not set"))
	}
	if o.Kubeconfig == "" {
		errs = append(errs, errors.New("sim options: the kubeconfig is not set"))
	}
	if o.Namespace == "" {
		errs = append(errs, errors.New("sim options: the namespace is not set"))
	}
	if o.Dir == "" {
		errs = append(errs, errors.New("sim options: the folder is not set"))
	}
	if o.RebootDuration < 0 {
		errs = append(errs, fmt.Errorf("RebootDuration %s is negative", o.RebootDuration))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("supervisor options: %w", err)
	}
	return nil
}

// Supervisor runs a real `nodepatch agent` per simulated host and plays the
// hardware: when an agent runs its reboot command, the supervisor kills the
// agent, takes the Node down, boots the host with a new boot id, brings the
// Node back and starts the agent again.
type Supervisor struct {
	client kubernetes.Interface
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	loops  sync.WaitGroup // host watchers
	exits  sync.WaitGroup // agent exit watchers

	mu    sync.Mutex
	nodes map[string]*simNode
	errs  []error
	log   *os.File
}

// simNode is the supervisor's record of one host; guarded by Supervisor.mu.
type simNode struct {
	host    *Host
	agent   *harness.Process // the current run, nil before the first
	killed  bool             // the current run was killed on purpose
	starts  int
	reboots int
	ignored int
	// requestsThisBoot counts the reboot requests the host saw, obeyed or
	// not, since it last booted.
	requestsThisBoot int
	failReboot       bool
	extraFlags       []string
	// persistentNeed keeps the sentinel across reboots (SetPersistentNeed).
	persistentNeed bool
	// rebooting is set while the supervisor plays a reboot: the agent is down
	// with its host and only the reboot starts it again.
	rebooting bool
	// hardware is held while the host reboots or re-registers its Node, so
	// that the two never interleave.
	hardware *sync.Mutex
}

// NewSupervisor checks opts and creates opts.Dir. Add hosts with AddNode.
func NewSupervisor(client kubernetes.Interface, opts Options) (*Supervisor, error) {
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
	ctx, cancel := context.WithCancel(context.Background())
	return &Supervisor{
		client: client, opts: opts, ctx: ctx, cancel: cancel,
		nodes: map[string]*simNode{}, log: logFile,
	}, nil
}

// AddNode makes a host in Dir/<name>, registers its kwok Node (Ready, with
// the host's boot id) and starts watching for its reboot requests. It does
// not start the agent: call StartAgent.
func (s *Supervisor) AddNode(ctx context.Context, name string, labels map[string]string) (*Host, error) {
	host, err := NewHost(filepath.Join(s.opts.Dir, name), name)
	if err != nil {
		return nil, err
	}
	bootID, err := host.BootID()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if _, dup := s.nodes[name]; dup {
		s.mu.Unlock()
		return nil, fmt.Errorf("add node %s: already added", name)
	}
	s.nodes[name] = &simNode{host: host, failReboot: s.opts.FailReboot, extraFlags: s.opts.NodeFlags[name],
		hardware: &sync.Mutex{}}
	s.mu.Unlock()
	if _, err := CreateNode(ctx, s.client, name, labels, bootID); err != nil {
		s.mu.Lock()
		delete(s.nodes, name)
		s.mu.Unlock()
		return nil, err
	}
	s.loops.Add(1)
	go s.watchHost(name)
	s.logf("%s: node added, boot id %s", name, bootID)
	return host, nil
}

// Host returns the named host, or nil.
func (s *Supervisor) Host(name string) *Host {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[name]; n != nil {
		return n.host
	}
	return nil
}

// Nodes returns the names of the added nodes.
func (s *Supervisor) Nodes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.nodes))
	for name := range s.nodes {
		names = append(names, name)
	}
	return names
}

// AgentLogPath is the file that receives the node's agent output (all runs).
func (s *Supervisor) AgentLogPath(name string) string {
	return filepath.Join(s.opts.Dir, name, "agent.log")
}

// AgentLog returns the node's agent output so far.
func (s *Supervisor) AgentLog(name string) (string, error) {
	data, err := os.ReadFile(s.AgentLogPath(name))
	if err != nil {
		return "", fmt.Errorf("agent log of %s: %w", name, err)
	}
	return string(data), nil
}

// SetFailReboot makes the node ignore (fail=true) or obey reboot requests.
func (s *Supervisor) SetFailReboot(name string, fail bool) error {
	return s.withNode(name, func(n *simNode) error {
		n.failReboot = fail
		return nil
	})
}

// SetPersistentNeed makes the node's need for a reboot survive its reboots
// (persist=true), as a sentinel on persistent storage or a bootloader that
// boots the old kernel does, or lets reboots clear it again.
func (s *Supervisor) SetPersistentNeed(name string, persist bool) error {
	return s.withNode(name, func(n *simNode) error {
		n.persistentNeed = persist
		return nil
	})
}

// Reboots is how many simulated reboots the node has completed.
func (s *Supervisor) Reboots(name string) int {
	count := 0
	_ = s.withNode(name, func(n *simNode) error { count = n.reboots; return nil })
	return count
}

// IgnoredRebootRequests is how many reboot requests the node ignored
// because of FailReboot.
func (s *Supervisor) IgnoredRebootRequests(name string) int {
	count := 0
	_ = s.withNode(name, func(n *simNode) error { count = n.ignored; return nil })
	return count
}

// RebootRequestsThisBoot is how many reboot requests the host has seen since
// it last booted: with the attempts a node records, it tells an attempt the
// host ignored from one that never reached it (its agent died in between).
func (s *Supervisor) RebootRequestsThisBoot(name string) int {
	count := 0
	_ = s.withNode(name, func(n *simNode) error { count = n.requestsThisBoot; return nil })
	return count
}

// AgentStarts is how many times the node's agent has been started.
func (s *Supervisor) AgentStarts(name string) int {
	count := 0
	_ = s.withNode(name, func(n *simNode) error { count = n.starts; return nil })
	return count
}

// Err returns the errors met while simulating reboots, if any.
func (s *Supervisor) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}

func (s *Supervisor) withNode(name string, fn func(*simNode) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[name]
	if n == nil {
		return fmt.Errorf("unknown node %q", name)
	}
	return fn(n)
}

func (s *Supervisor) recordErr(err error) {
	s.mu.Lock()
	s.errs = append(s.errs, err)
	s.mu.Unlock()
	s.logf("error: %v", err)
}

func (s *Supervisor) logf(format string, args ...any) {
	line := time.Now().Format("15:04:05.000") + " " + fmt.Sprintf(format, args...) + "\n"
	s.mu.Lock()
	defer s.mu.Unlock()
	_, _ = s.log.WriteString(line)
	if s.opts.Log != nil {
		_, _ = io.WriteString(s.opts.Log, strings.TrimSuffix(line, "\n")+"\n")
	}
}

// Stop ends the host watchers and kills every agent. The Nodes stay.
func (s *Supervisor) Stop() error {
	s.cancel()
	s.loops.Wait()
	var errs []error
	for _, name := range s.Nodes() {
		if err := s.KillAgent(name); err != nil {
			errs = append(errs, err)
		}
	}
	s.exits.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.log.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
