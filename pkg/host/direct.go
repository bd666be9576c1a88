package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// hostPath is where programs are looked up inside a host root, as systemd
// does for services.
const hostPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// waitDelay bounds how long Run waits for output pipes held open by
// grandchildren after the command itself was killed.
const waitDelay = 5 * time.Second

// DirectRunner runs commands as child processes of the agent. With a host
// root other than "/" they run chrooted into it, which needs a privileged
// container that mounts the host's "/" there.
type DirectRunner struct {
	hostRoot string

	mu      sync.Mutex
	running map[*exec.Cmd]string // detached commands still running
}

// NewDirectRunner returns a Runner that runs local processes, chrooted into
// hostRoot unless it is "" or "/".
func NewDirectRunner(hostRoot string) *DirectRunner {
	if hostRoot == "" {
		hostRoot = "/"
	}
	return &DirectRunner{hostRoot: filepath.Clean(hostRoot), running: map[*exec.Cmd]string{}}
}

// Running lists the detached commands that outlived their wait.
func (r *DirectRunner) Running(context.Context) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, name := range r.running {
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

func (r *DirectRunner) chrooted() bool { return r.hostRoot != "/" }

// Run implements Runner.
func (r *DirectRunner) Run(ctx context.Context, c Command) (Result, error) {
	if err := c.Validate(); err != nil {
		return Result{}, err
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	killCtx := ctx
	if c.Detach {
		killCtx = context.WithoutCancel(ctx)
	}
	cmd, err := r.command(killCtx, c)
	if err != nil {
		return Result{}, err
	}
	maxOutput, maxStdout := c.OutputLimits()
	tail := newTailBuffer(maxOutput)
	stdout := &headBuffer{max: maxStdout}
	cmd.Stdout = multiWriter{stdout, tail}
	cmd.Stderr = tail
	if err := cmd.Start(); err != nil {
		return finish(ctx, c, Result{}, err)
	}
	r.track(cmd, c.Name)
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		r.untrack(cmd)
		done <- err
	}()
	select {
	case runErr := <-done:
		res := Result{Output: tail.String(), Stdout: string(stdout.buf), StdoutTruncated: stdout.truncated}
		return finish(ctx, c, res, runErr)
	case <-ctx.Done():
		if !c.Detach {
			runErr := <-done // the context kills it; wait for the group to go
			res := Result{Output: tail.String(), Stdout: string(stdout.buf), StdoutTruncated: stdout.truncated}
			return finish(ctx, c, res, runErr)
		}
		// Left running: its output buffers are still being written, so none of
		// it is returned.
		return finish(ctx, c, Result{Output: "(left running)"}, nil)
	}
}

func (r *DirectRunner) track(cmd *exec.Cmd, name string) {
	r.mu.Lock()
	r.running[cmd] = name
	r.mu.Unlock()
}

func (r *DirectRunner) untrack(cmd *exec.Cmd) {
	r.mu.Lock()
	delete(r.running, cmd)
	r.mu.Unlock()
}

func finish(ctx context.Context, c Command, res Result, runErr error) (Result, error) {
	if ctxErr := ctx.Err(); ctxErr != nil {
		res.ExitStatus = -1
		if errors.Is(ctxErr, context.DeadlineExceeded) && c.Timeout > 0 {
			return res, fmt.Errorf("command %q (%s): timed out after %v", c.Name, c, c.Timeout)
		}
		return res, fmt.Errorf("command %q (%s): %w", c.Name, c, ctxErr)
	}
	var exitErr *exec.ExitError
	switch {
	case runErr == nil:
		res.ExitStatus = 0
	case errors.As(runErr, &exitErr):
		res.ExitStatus = exitStatus(exitErr.ProcessState)
	default:
		res.ExitStatus = -1
		return res, fmt.Errorf("command %q (%s): %w", c.Name, c, runErr)
	}
	return res, nil
}

func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

func (r *DirectRunner) command(ctx context.Context, c Command) (*exec.Cmd, error) {
	prog, err := r.lookPath(c.Args[0])
	if err != nil {
		return nil, fmt.Errorf("command %q: %w", c.Name, err)
	}
	cmd := exec.CommandContext(ctx, prog)
	// Path is already resolved (inside the host root when chrooted): keep
	// exec from looking it up again in the agent's own filesystem.
	cmd.Path, cmd.Args, cmd.Err = prog, c.Args, nil
	cmd.Env = append(os.Environ(), c.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Kill the whole process group when ctx ends, so that children of a
	// shell script do not outlive a timeout.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
	if r.chrooted() {
		cmd.SysProcAttr.Chroot = r.hostRoot
		cmd.Dir = "/"
	}
	return cmd, nil
}

// lookPath finds prog as seen from inside the host root.
func (r *DirectRunner) lookPath(prog string) (string, error) {
	if !r.chrooted() {
		p, err := exec.LookPath(prog)
		if err != nil {
			return "", fmt.Errorf("find %q: %w", prog, err)
		}
		return p, nil
	}
	candidates := []string{prog}
	if !strings.HasPrefix(prog, "/") {
		if strings.Contains(prog, "/") {
			return "", fmt.Errorf("program %q must be a bare name or an absolute path in a host root", prog)
		}
		candidates = candidates[:0]
		for _, dir := range filepath.SplitList(hostPath) {
			candidates = append(candidates, path.Join(dir, prog))
		}
	}
	for _, cand := range candidates {
		full, err := ResolveInRoot(r.hostRoot, cand)
		if err != nil {
			return "", err
		}
		if fi, err := os.Stat(full); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return cand, nil
		} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("find %q in %q: %w", prog, r.hostRoot, err)
		}
	}
	return "", fmt.Errorf("program %q not found in %q (PATH %s)", prog, r.hostRoot, hostPath)
}

type multiWriter [2]interface{ Write([]byte) (int, error) }

func (m multiWriter) Write(p []byte) (int, error) {
	for _, w := range m {
		if _, err := w.Write(p); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}
