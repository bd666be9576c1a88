package harness

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// ProcessSpec describes a child process whose output goes to a log file.
type ProcessSpec struct {
	Name    string   // short name used in errors
	Path    string   // executable
	Args    []string // arguments, without the executable
	LogPath string   // stdout and stderr are appended here
	Env     []string // full environment; nil inherits ours
	Dir     string   // working directory; empty inherits ours
}

// Process is a child started in its own process group, so that stopping it
// also stops anything it started, and nothing else.
type Process struct {
	spec    ProcessSpec
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// StartProcess starts spec.Path in a new process group. The child is killed
// if this process dies (Pdeathsig), so a crashed test leaves nothing behind.
func StartProcess(spec ProcessSpec) (*Process, error) {
	logFile, err := os.OpenFile(spec.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log for %s: %w", spec.Name, err)
	}
	defer logFile.Close()
	cmd := exec.Command(spec.Path, spec.Args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env, cmd.Dir = spec.Env, spec.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s (%s): %w", spec.Name, spec.Path, err)
	}
	p := &Process{spec: spec, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the child's process id, which is also its process group id.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Name is the short name given in the spec.
func (p *Process) Name() string { return p.spec.Name }

// LogPath is the file that receives the child's output.
func (p *Process) LogPath() string { return p.spec.LogPath }

// Done is closed when the child has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the child has exited, and its wait error if so.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Kill sends SIGKILL to the child's process group and waits for the child.
func (p *Process) Kill() error {
	return p.signalAndWait(syscall.SIGKILL, 30*time.Second)
}

// Stop asks the process group to end (SIGTERM) and kills it after grace.
func (p *Process) Stop(grace time.Duration) error {
	if err := p.signalAndWait(syscall.SIGTERM, grace); err == nil {
		return nil
	}
	return p.Kill()
}

func (p *Process) signalAndWait(sig syscall.Signal, timeout time.Duration) error {
	if exited, _ := p.Exited(); exited {
		return nil
	}
	// A negative pid addresses the whole process group we created.
	if err := syscall.Kill(-p.PID(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pgid %d): %w", p.spec.Name, p.PID(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running %s after %s", p.spec.Name, p.PID(), timeout, sig)
	}
}

// LogTail returns about the last n bytes of the child's log.
func (p *Process) LogTail(n int64) string {
	return TailFile(p.spec.LogPath, n)
}

// TailFile returns about the last n bytes of a file, or a note saying why not.
func TailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if info.Size() > n {
		if _, err := f.Seek(info.Size()-n, io.SeekStart); err != nil {
			return fmt.Sprintf("(no log: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return strings.TrimSpace(string(data))
}
