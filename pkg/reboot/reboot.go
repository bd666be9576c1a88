// Package reboot reboots the host: through systemd over D-Bus, or with a
// command.
package reboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/pkg/host/systemd"
)

// Rebooter asks the host to reboot. A nil error means the request was
// accepted; the caller proves the reboot by the boot id.
type Rebooter interface {
	Reboot(ctx context.Context) error
}

// Command reboots by running a shell script on the host.
type Command struct {
	Runner host.Runner
	// Script is run with /bin/sh -c.
	Script string
	// Timeout bounds the script; zero means one minute.
	Timeout time.Duration
}

// Reboot implements Rebooter. A non-zero exit is an error carrying the
// output's tail.
func (c *Command) Reboot(ctx context.Context) error {
	if strings.TrimSpace(c.Script) == "" {
		return errors.New("reboot command: empty script")
	}
	if c.Runner == nil {
		return errors.New("reboot command: no runner configured")
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	cmd := host.Command{Name: "reboot", Args: []string{"/bin/sh", "-c", c.Script}, Timeout: timeout}
	res, err := c.Runner.Run(ctx, cmd)
	if err != nil {
		return fmt.Errorf("reboot command %q: %w", c.Script, err)
	}
	if res.ExitStatus != 0 {
		return fmt.Errorf("reboot command %q exited %d: %s", c.Script, res.ExitStatus, host.LastLines(res.Output, 5))
	}
	return nil
}

// Systemd reboots by starting reboot.target through systemd's D-Bus API,
// as `systemctl reboot` does.
type Systemd struct {
	// Address is the bus address; "" means $DBUS_SYSTEM_BUS_ADDRESS or the
	// system bus.
	Address string
	// JobTimeout bounds the wait for the job's result once systemd accepted
	// it; zero means 30 seconds.
	JobTimeout time.Duration
	// Logger, when set, records how the request ended.
	Logger *slog.Logger

	// afterAccept, when set, runs once systemd accepted the job (tests).
	afterAccept func()
}

const (
	rebootTarget = "reboot.target"
	// replace-irreversibly is what systemctl reboot uses: later jobs cannot
	// cancel the reboot.
	rebootMode = "replace-irreversibly"
)

// Reboot implements Rebooter. systemd refusing the job (no such unit, access
// denied, job failed) is an error. Once the job is accepted the bus usually
// dies with the host before any result comes: a closed bus or the end of
// JobTimeout then counts as success, pending proof by the boot id.
func (s *Systemd) Reboot(ctx context.Context) error {
	timeout := s.JobTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	conn, err := systemd.Connect(ctx, s.Address)
	if err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	defer conn.Close()
	// Buffered: go-systemd writes the result while holding its job lock.
	done := make(chan string, 1)
	jobID, err := conn.StartUnitContext(ctx, rebootTarget, rebootMode, done)
	if err != nil {
		return fmt.Errorf("reboot: start %s (%s): %w", rebootTarget, rebootMode, err)
	}
	if s.afterAccept != nil {
		s.afterAccept()
	}
	wait := time.NewTimer(timeout)
	defer wait.Stop()
	select {
	case result := <-done:
		if result != "done" {
			return fmt.Errorf("reboot: job %d for %s ended with result %q", jobID, rebootTarget, result)
		}
		s.log("reboot job done", "job", jobID)
	case <-conn.Done():
		s.log("reboot job accepted; bus closed before its result, as a rebooting host does", "job", jobID)
	case <-wait.C:
		s.log("reboot job accepted; no result within the job timeout", "job", jobID, "timeout", timeout)
	case <-ctx.Done():
		// The job was accepted: the reboot is on its way whatever we do now.
		s.log("reboot job accepted; stopped waiting for its result", "job", jobID, "reason", ctx.Err())
	}
	return nil
}

func (s *Systemd) log(msg string, args ...any) {
	if s.Logger != nil {
		s.Logger.Info(msg, args...)
	}
}
