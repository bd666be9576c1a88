package sim

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nodepatch/nodepatch/test/harness"
)

// StartAgent starts the node's agent (see agentArgs for its command line),
// its output appended to AgentLogPath. The agent must not be running.
func (s *Supervisor) StartAgent(name string) error {
	var proc *harness.Process
	err := s.withNode(name, func(n *simNode) error {
		var err error
		proc, err = s.startLocked(name, n)
		return err
	})
	if err != nil {
		return err
	}
	s.started(name, proc)
	return nil
}

// StartAgentIfUp starts the node's agent unless it runs already or its host
// is rebooting (the reboot starts it): what a DaemonSet does after a crash.
// It reports whether it started one.
func (s *Supervisor) StartAgentIfUp(name string) (bool, error) {
	var proc *harness.Process
	err := s.withNode(name, func(n *simNode) error {
		// Checked under s.mu: Stop cancels first, then kills under s.mu, so
		// an agent started here is either killed by Stop or never started.
		if s.ctx.Err() != nil || n.rebooting || (n.agent != nil && !exitedProc(n.agent)) {
			return nil
		}
		var err error
		proc, err = s.startLocked(name, n)
		return err
	})
	if err != nil || proc == nil {
		return false, err
	}
	s.started(name, proc)
	return true, nil
}

// startLocked starts the agent process; s.mu held.
func (s *Supervisor) startLocked(name string, n *simNode) (*harness.Process, error) {
	if n.agent != nil && !exitedProc(n.agent) {
		return nil, fmt.Errorf("start agent of %s: already running (pid %d)", name, n.agent.PID())
	}
	p, err := harness.StartProcess(harness.ProcessSpec{
		Name:    "nodepatch agent " + name,
		Path:    s.opts.Binary,
		Args:    s.agentArgs(name, n),
		LogPath: s.AgentLogPath(name),
		Env:     ProcessEnv(),
	})
	if err != nil {
		return nil, err
	}
	n.agent, n.killed = p, false
	n.starts++
	return p, nil
}

// started logs a new agent run and watches for its exit; s.mu not held.
func (s *Supervisor) started(name string, proc *harness.Process) {
	s.logf("%s: agent started (pid %d)", name, proc.PID())
	s.exits.Add(1)
	go s.watchExit(name, proc)
}

func exitedProc(p *harness.Process) bool {
	exited, _ := p.Exited()
	return exited
}

// SetAgentFlags replaces the node's own extra flags (Options.NodeFlags);
// they apply from the agent's next start.
func (s *Supervisor) SetAgentFlags(name string, flags []string) error {
	return s.withNode(name, func(n *simNode) error {
		n.extraFlags = slices.Clone(flags)
		return nil
	})
}

// StartAgents starts the agent of every added node.
func (s *Supervisor) StartAgents() error {
	for _, name := range s.Nodes() {
		if err := s.StartAgent(name); err != nil {
			return err
		}
	}
	return nil
}

// KillAgent kills the node's agent (SIGKILL to its process group), as a
// crash or a power cut would, and waits for it to be gone. Killing an agent
// that is not running does nothing.
func (s *Supervisor) KillAgent(name string) error {
	var proc *harness.Process
	err := s.withNode(name, func(n *simNode) error {
		proc = n.agent
		n.killed = true
		return nil
	})
	if err != nil || proc == nil {
		return err
	}
	if exited, _ := proc.Exited(); exited {
		return nil
	}
	if err := proc.Kill(); err != nil {
		return fmt.Errorf("kill agent of %s: %w", name, err)
	}
	s.logf("%s: agent killed (pid %d)", name, proc.PID())
	return nil
}

// RestartAgent kills the node's agent if it runs and starts it again.
func (s *Supervisor) RestartAgent(name string) error {
	if err := s.KillAgent(name); err != nil {
		return err
	}
	return s.StartAgent(name)
}

// AgentPID is the process id of the node's agent, and whether it runs.
func (s *Supervisor) AgentPID(name string) (int, bool) {
	pid, running := 0, false
	_ = s.withNode(name, func(n *simNode) error {
		if n.agent != nil && !exitedProc(n.agent) {
			pid, running = n.agent.PID(), true
		}
		return nil
	})
	return pid, running
}

// AgentRunning reports whether the node's agent process is alive.
func (s *Supervisor) AgentRunning(name string) bool {
	running := false
	_ = s.withNode(name, func(n *simNode) error {
		if n.agent != nil {
			exited, _ := n.agent.Exited()
			running = !exited
		}
		return nil
	})
	return running
}

// watchExit records an agent that exits without being killed: a DaemonSet
// agent never ends on its own, so that is an error.
func (s *Supervisor) watchExit(name string, proc *harness.Process) {
	defer s.exits.Done()
	<-proc.Done()
	unexpected := false
	_ = s.withNode(name, func(n *simNode) error {
		unexpected = n.agent == proc && !n.killed
		return nil
	})
	if !unexpected {
		return
	}
	_, err := proc.Exited()
	tail := proc.LogTail(2000)
	lines := strings.Split(tail, "\n")
	s.recordErr(fmt.Errorf("agent of %s (pid %d) exited by itself: %v: %s; log ends:\n%s",
		name, proc.PID(), err, lines[len(lines)-1], tail))
	if s.opts.RestartExited > 0 && sleepCtx(s.ctx, s.opts.RestartExited) == nil {
		if _, err := s.StartAgentIfUp(name); err != nil {
			s.recordErr(err)
		}
	}
}

// agentArgs is the agent's command line: the host's files in place of
// the real ones, the reboot command that presses the simulated power
// button, then Options.ExtraFlags and the node's own flags.
func (s *Supervisor) agentArgs(name string, n *simNode) []string {
	h := n.host
	args := []string{
		"agent",
		"--node-name=" + name,
		"--kubeconfig=" + s.opts.Kubeconfig,
		"--namespace=" + s.opts.Namespace,
		"--sentinel-file=" + h.SentinelPath(),
		"--boot-id-file=" + h.BootIDPath(),
		"--reboot-method=command",
		"--reboot-command=touch " + shellQuote(h.RebootRequestPath()),
		"--host-exec=direct",
		// Host command output stays in the host's folder, not the machine's /var/lib.
		"--output-dir=" + filepath.Join(h.Dir, "output"),
		"--patch=off",
		"--period=1s",
		"--metrics-address=127.0.0.1:0",
		"--log-format=json",
	}
	args = append(args, s.opts.ExtraFlags...)
	return append(args, n.extraFlags...)
}

// ProcessEnv is our environment without the variables nodepatch reads its
// settings from (an agent's or a controller's), so that only the command
// line configures it.
func ProcessEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "NODEPATCH_") || name == "NODE_NAME" || name == "POD_NAMESPACE" || name == "POD_NAME" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
