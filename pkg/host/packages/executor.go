package packages

import (
	"context"
	"fmt"
	"time"

	"github.com/nodepatch/nodepatch/pkg/host"
)

// executor runs package manager commands, waiting out a package database
// lock held by someone else (an unattended-upgrades run, an admin).
type executor struct {
	cfg      *Config
	isLocked func(output string) bool
}

const maxLockRetry = time.Minute

// run runs prog with the configured options then args. A non-zero exit is
// returned as is, except a lock error, which is retried until LockTimeout.
func (x *executor) run(ctx context.Context, name, prog string, env []string, args ...string) (host.Command, host.Result, error) {
	cmd := host.Command{
		Name: name,
		Args: append(append([]string{prog}, x.cfg.Options...), args...),
		Env:  append(append([]string{"LC_ALL=C"}, env...), x.cfg.Env...),
		// Never kill a package manager mid-transaction: a timeout only stops
		// the wait, and the agent will not reboot while it runs.
		Detach: true,
	}
	retry := x.cfg.LockRetry
	if retry == 0 {
		retry = 5 * time.Second
	}
	lockDeadline := time.Time{}
	if x.cfg.LockTimeout > 0 {
		lockDeadline = time.Now().Add(x.cfg.LockTimeout)
	}
	start := time.Now()
	for {
		if dl, ok := ctx.Deadline(); ok {
			// The unit's own timeout ends with the operation's.
			cmd.Timeout = time.Until(dl)
		}
		res, err := x.cfg.Runner.Run(ctx, cmd)
		if err != nil {
			return cmd, res, err
		}
		if res.ExitStatus == 0 || !x.isLocked(res.Output) {
			return cmd, res, nil
		}
		lockErr := &LockError{Command: cmd.String(), Waited: time.Since(start), Output: res.Output}
		if !lockDeadline.IsZero() && time.Now().Add(retry).After(lockDeadline) {
			return cmd, res, lockErr
		}
		select {
		case <-time.After(retry):
		case <-ctx.Done():
			return cmd, res, fmt.Errorf("%w (%v)", lockErr, ctx.Err())
		}
		retry = min(2*retry, maxLockRetry)
	}
}

// check turns a non-zero exit into a CommandError.
func check(cmd host.Command, res host.Result, err error) error {
	if err != nil {
		return err
	}
	if res.ExitStatus != 0 {
		return &CommandError{Command: cmd.String(), ExitStatus: res.ExitStatus, Output: res.Output}
	}
	return nil
}

// report fills a Result from the last command.
func report(cmd host.Command, res host.Result) Result {
	return Result{Command: cmd.String(), ExitStatus: res.ExitStatus, Output: res.Output}
}
