// Package packages patches the host's OS packages with its own package
// manager (apt, dnf or yum), through a host.Runner so that the same code runs
// the commands directly or as systemd transient units.
package packages

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"github.com/nodepatch/nodepatch/pkg/host"
)

// Mode says which updates are applied.
type Mode string

// Modes.
const (
	ModeOff      Mode = "off"
	ModeSecurity Mode = "security"
	ModeAll      Mode = "all"
)

// ParseMode checks a --patch value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeOff, ModeSecurity, ModeAll:
		return m, nil
	}
	return "", fmt.Errorf("patch mode %q: want off, security or all", s)
}

// Kind names a package manager.
type Kind string

// Kinds. yum takes dnf's code path: on EL8+ it is dnf, and yum 3 on EL7
// takes the same options.
const (
	KindApt Kind = "apt"
	KindDnf Kind = "dnf"
	KindYum Kind = "yum"
)

// DefaultExclude returns the packages left alone by default: upgrading the
// container runtime or the kubelet under a running node is a cluster
// operation, not OS patching.
func DefaultExclude() []string {
	return []string{
		"kubelet", "kubeadm", "kubectl", "kubernetes-cni", "cri-tools",
		"containerd", "containerd.io", "cri-o", "docker-ce", "docker-ce-cli",
		"docker.io", "moby-engine", "runc",
	}
}

// Detect tells which package manager a host root uses.
func Detect(hostRoot string) (Kind, error) {
	exists := func(p string) bool {
		full, err := host.ResolveInRoot(hostRoot, p)
		if err != nil {
			return false
		}
		_, err = os.Stat(full)
		return err == nil
	}
	switch {
	case exists("/usr/bin/apt-get") && exists("/var/lib/dpkg/status"):
		return KindApt, nil
	case exists("/usr/bin/dnf"):
		return KindDnf, nil
	case exists("/usr/bin/yum"):
		return KindYum, nil
	}
	return "", fmt.Errorf("no supported package manager (apt-get with dpkg, dnf, yum) found under %q", hostRoot)
}

// NeedsRestartingCommand returns the command that tells whether an RPM host
// needs a reboot (see host.Detector), or nil for other kinds.
func NeedsRestartingCommand(kind Kind) []string {
	switch kind {
	case KindDnf, KindYum:
		return []string{programs[kind], "needs-restarting", "-r"}
	}
	return nil
}

var programs = map[Kind]string{KindApt: "/usr/bin/apt-get", KindDnf: "/usr/bin/dnf", KindYum: "/usr/bin/yum"}

// Config configures a Manager.
type Config struct {
	// Kind is the package manager; "" detects it under HostRoot.
	Kind Kind
	// HostRoot is where the agent sees the host's "/" (for detection).
	HostRoot string
	// Runner runs the commands on the host.
	Runner host.Runner
	// Exclude lists package names (shell globs) never upgraded.
	Exclude []string
	// Timeout bounds each operation; zero means 30 minutes.
	Timeout time.Duration
	// LockTimeout bounds the wait for a package database lock held by
	// someone else; zero means until Timeout.
	LockTimeout time.Duration
	// LockRetry is the first pause between attempts while the lock is held;
	// it doubles up to a minute. Zero means 5 seconds.
	LockRetry time.Duration
	// Program overrides the package manager's path (/usr/bin/apt-get,
	// /usr/bin/dnf, /usr/bin/yum).
	Program string
	// Env is extra environment for every command (e.g. APT_CONFIG).
	Env []string
	// Options are extra options given to every package manager command
	// (e.g. --installroot=... for dnf, -o Dir=... for apt).
	Options []string
}

// Pending is what an upgrade would do.
type Pending struct {
	// All counts the upgradable packages, excluded ones left out.
	All int
	// Security counts those with a security update, excluded ones left out.
	Security int
	// Packages and SecurityPackages name them.
	Packages         []string
	SecurityPackages []string
	// Excluded names upgradable packages that Exclude holds back.
	Excluded []string
}

// Result is the report of a Download or Upgrade.
type Result struct {
	Mode Mode
	// Packages names the packages upgraded (or installed as new
	// dependencies, or downloaded by Download).
	Packages []string
	Duration time.Duration
	// Command, ExitStatus and Output describe the last package manager
	// command run; Output is its tail.
	Command    string
	ExitStatus int
	Output     string
}

// Count returns the number of packages.
func (r Result) Count() int { return len(r.Packages) }

// CommandError is a package manager command that ran and failed.
type CommandError struct {
	Command    string
	ExitStatus int
	// Output is the tail of the command's output.
	Output string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("%s exited %d: %s", e.Command, e.ExitStatus, host.LastLines(e.Output, 8))
}

// LockError is a package database lock held by someone else for longer than
// LockTimeout.
type LockError struct {
	Command string
	Waited  time.Duration
	Output  string
}

func (e *LockError) Error() string {
	return fmt.Sprintf("%s: package database still locked by another process after %v: %s",
		e.Command, e.Waited.Round(time.Millisecond), host.LastLines(e.Output, 3))
}

// backend is one package manager's commands and output formats.
type backend interface {
	refresh(ctx context.Context, x *executor) error
	pending(ctx context.Context, x *executor) (Pending, error)
	apply(ctx context.Context, x *executor, mode Mode, downloadOnly bool) (Result, error)
	isLocked(output string) bool
}

// Manager patches a host. Its operations never overlap.
type Manager struct {
	cfg     Config
	kind    Kind
	backend backend
	busy    chan struct{}
}

// New checks cfg and returns a Manager.
func New(cfg Config) (*Manager, error) {
	if cfg.Runner == nil {
		return nil, errors.New("packages: no runner configured")
	}
	if cfg.Timeout < 0 || cfg.LockTimeout < 0 || cfg.LockRetry < 0 {
		return nil, fmt.Errorf("packages: negative timeout (timeout %v, lock timeout %v, lock retry %v)", cfg.Timeout, cfg.LockTimeout, cfg.LockRetry)
	}
	for _, pat := range cfg.Exclude {
		if _, err := path.Match(pat, ""); err != nil || strings.TrimSpace(pat) == "" || strings.ContainsAny(pat, " \t,") {
			return nil, fmt.Errorf("packages: exclusion %q is not a package name or glob", pat)
		}
	}
	kind := cfg.Kind
	if kind == "" {
		var err error
		if kind, err = Detect(cfg.HostRoot); err != nil {
			return nil, err
		}
	}
	m := &Manager{cfg: cfg, kind: kind, busy: make(chan struct{}, 1)}
	prog := cfg.Program
	if prog == "" {
		prog = programs[kind]
	}
	switch kind {
	case KindApt:
		m.backend = &apt{prog: prog}
	case KindDnf, KindYum:
		m.backend = &dnf{prog: prog}
	default:
		return nil, fmt.Errorf("packages: unknown package manager %q: want apt, dnf or yum", kind)
	}
	return m, nil
}

// Kind returns the package manager in use.
func (m *Manager) Kind() Kind { return m.kind }

// begin takes the manager's lock and bounds the operation by Timeout.
func (m *Manager) begin(ctx context.Context) (context.Context, func(), error) {
	select {
	case m.busy <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("packages: waiting for another run to finish: %w", ctx.Err())
	}
	timeout := m.cfg.Timeout
	if timeout == 0 {
		timeout = 30 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	return ctx, func() { cancel(); <-m.busy }, nil
}

func (m *Manager) executor() *executor {
	return &executor{cfg: &m.cfg, isLocked: m.backend.isLocked}
}

// Refresh updates the package lists (apt-get update, dnf makecache).
func (m *Manager) Refresh(ctx context.Context) error {
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	return m.backend.refresh(ctx, m.executor())
}

// Pending tells what an upgrade would do, from the current package lists.
func (m *Manager) Pending(ctx context.Context) (Pending, error) {
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return Pending{}, err
	}
	defer end()
	return m.backend.pending(ctx, m.executor())
}

// Download fetches the packages an Upgrade in mode would install.
func (m *Manager) Download(ctx context.Context, mode Mode) (Result, error) {
	return m.apply(ctx, mode, true)
}

// Upgrade applies the updates of mode, non-interactively, keeping the
// installed configuration files and leaving excluded packages alone.
func (m *Manager) Upgrade(ctx context.Context, mode Mode) (Result, error) {
	return m.apply(ctx, mode, false)
}

func (m *Manager) apply(ctx context.Context, mode Mode, downloadOnly bool) (Result, error) {
	if _, err := ParseMode(string(mode)); err != nil {
		return Result{}, err
	}
	if mode == ModeOff {
		return Result{Mode: mode}, nil
	}
	ctx, end, err := m.begin(ctx)
	if err != nil {
		return Result{Mode: mode}, err
	}
	defer end()
	start := time.Now()
	res, err := m.backend.apply(ctx, m.executor(), mode, downloadOnly)
	res.Mode, res.Duration = mode, time.Since(start)
	return res, err
}

// excluded tells whether name matches an exclusion.
func excluded(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}
