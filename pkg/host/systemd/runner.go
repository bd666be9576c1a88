package systemd

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	"github.com/nodepatch/nodepatch/pkg/host"
)

const (
	// exitExec is systemd's status when it could not execute the program.
	exitExec = 203
	// cldExited is si_code CLD_EXITED: ExecMainStatus is an exit code;
	// otherwise it is a signal number.
	cldExited = 1
	// callTimeout bounds a single D-Bus call.
	callTimeout = 30 * time.Second
	// cleanupTimeout bounds stopping and resetting a unit.
	cleanupTimeout = 30 * time.Second
	// jobGrace is how long past a command's timeout Run waits for systemd
	// to report the job before giving up on it.
	jobGrace   = time.Minute
	noSuchUnit = "org.freedesktop.systemd1.NoSuchUnit"
)

// Runner runs commands as transient systemd services over D-Bus, so they run
// in the host's own namespaces and cgroups with no privileged container:
// Type=oneshot with RemainAfterExit keeps the unit, and so its result, until
// Run has read it; output goes to files in a folder both sides can see.
type Runner struct {
	// Address is the bus address; "" means $DBUS_SYSTEM_BUS_ADDRESS or the
	// system bus.
	Address string
	// OutputDir is where units write their output, as the host sees it.
	OutputDir string
	// LocalOutputDir is the same folder as the agent sees it; "" means
	// OutputDir (the agent mounts it at the same path).
	LocalOutputDir string
	// UnitPrefix starts every unit name; "" means "nodepatch-".
	UnitPrefix string
}

// Validate checks the configuration.
func (r *Runner) Validate() error {
	if !filepath.IsAbs(r.OutputDir) {
		return fmt.Errorf("systemd runner: output folder %q is not an absolute path", r.OutputDir)
	}
	if r.LocalOutputDir != "" && !filepath.IsAbs(r.LocalOutputDir) {
		return fmt.Errorf("systemd runner: local output folder %q is not an absolute path", r.LocalOutputDir)
	}
	return nil
}

func (r *Runner) localDir() string {
	if r.LocalOutputDir != "" {
		return r.LocalOutputDir
	}
	return r.OutputDir
}

func (r *Runner) prefix() string {
	if r.UnitPrefix != "" {
		return r.UnitPrefix
	}
	return "nodepatch-"
}

// unitRun is one command's unit and its files.
type unitRun struct {
	name               string
	hostOut, hostErr   string
	localOut, localErr string
}

func (r *Runner) newUnitRun(c host.Command) (unitRun, error) {
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return unitRun{}, fmt.Errorf("unit name: %w", err)
	}
	name := r.prefix() + UnitNamePart(c.Name) + "-" + hex.EncodeToString(suffix)
	return unitRun{
		name:     name + ".service",
		hostOut:  filepath.Join(r.OutputDir, name+".out"),
		hostErr:  filepath.Join(r.OutputDir, name+".err"),
		localOut: filepath.Join(r.localDir(), name+".out"),
		localErr: filepath.Join(r.localDir(), name+".err"),
	}, nil
}

// UnitNamePart turns a free name into characters valid in a unit name.
func UnitNamePart(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' {
			b.WriteRune(c)
		} else {
			b.WriteByte('-')
		}
		if b.Len() >= 64 {
			break
		}
	}
	if b.Len() == 0 {
		return "command"
	}
	return b.String()
}

// Run implements host.Runner.
func (r *Runner) Run(ctx context.Context, c host.Command) (host.Result, error) {
	if err := c.Validate(); err != nil {
		return host.Result{}, err
	}
	if err := r.Validate(); err != nil {
		return host.Result{}, err
	}
	u, err := r.newUnitRun(c)
	if err != nil {
		return host.Result{}, err
	}
	if err := os.MkdirAll(r.localDir(), 0o700); err != nil {
		return host.Result{}, fmt.Errorf("unit %s: output folder: %w", u.name, err)
	}
	defer os.Remove(u.localOut)
	defer os.Remove(u.localErr)

	// The connection outlives ctx so that a timed-out unit can still be
	// stopped; dialing is bounded by ctx.
	connCtx, closeConn := context.WithCancel(context.WithoutCancel(ctx))
	defer closeConn()
	stopDial := context.AfterFunc(ctx, closeConn)
	conn, err := Connect(connCtx, r.Address)
	stopDial()
	if err != nil {
		return host.Result{}, fmt.Errorf("unit %s (%s): %w", u.name, c, err)
	}
	defer conn.Close()
	return r.run(ctx, conn, u, c)
}

func (r *Runner) run(ctx context.Context, conn *Conn, u unitRun, c host.Command) (host.Result, error) {
	jobDone := make(chan string, 1) // buffered: go-systemd sends under its lock
	// Once asked, systemd may have started the unit: wait for its answer
	// even if ctx ends, so that the outcome is known.
	startCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), callTimeout)
	defer cancel()
	if _, err := conn.StartTransientUnitContext(startCtx, u.name, "fail", unitProperties(u, c), jobDone); err != nil {
		return host.Result{}, fmt.Errorf("unit %s (%s): start: %w", u.name, c, err)
	}
	jobResult, err := waitJob(ctx, conn, u, c, jobDone)
	if err != nil {
		return u.readOutput(c), err
	}
	props, err := conn.GetUnitTypePropertiesContext(ctx, u.name, "Service")
	if err != nil {
		if isDBusError(err, noSuchUnit) {
			err = errors.New("unit vanished before its result could be read")
		}
		return u.readOutput(c), fmt.Errorf("unit %s (%s): job %s: %w", u.name, c, jobResult, err)
	}
	res := u.readOutput(c)
	cleanup(conn, u.name)
	res, err = interpret(u.name, c, jobResult, props, res)
	if err == nil {
		// systemd creates the file before the program starts: without it the
		// agent is not looking at the folder the host writes to, and an
		// empty output would read as "nothing to do".
		if _, statErr := os.Stat(u.localOut); statErr != nil {
			return res, fmt.Errorf("unit %s (%s): output file: %w (is %s the host's %s?)", u.name, c, statErr, r.localDir(), r.OutputDir)
		}
	}
	return res, err
}

func unitProperties(u unitRun, c host.Command) []sdbus.Property {
	desc := "nodepatch: " + c.String()
	if len(desc) > 200 {
		desc = desc[:200] + "..."
	}
	timeout := uint64(math.MaxUint64) // infinity
	// A detached command is never killed by systemd: the caller's wait ends at
	// the timeout, the command runs on (see waitJob).
	if c.Timeout > 0 && !c.Detach {
		timeout = uint64(c.Timeout / time.Microsecond)
	}
	props := []sdbus.Property{
		sdbus.PropDescription(desc),
		sdbus.PropType("oneshot"),
		sdbus.PropRemainAfterExit(true),
		// The flag is systemd's "ignore failure" ("-" prefix), whatever
		// go-systemd calls it: a failed command must fail the unit.
		sdbus.PropExecStart(escapeDollars(c.Args), false),
		{Name: "StandardInput", Value: godbus.MakeVariant("null")},
		{Name: "StandardOutputFile", Value: godbus.MakeVariant(u.hostOut)},
		{Name: "StandardErrorFile", Value: godbus.MakeVariant(u.hostErr)},
		{Name: "TimeoutStartUSec", Value: godbus.MakeVariant(timeout)},
	}
	if len(c.Env) > 0 {
		props = append(props, sdbus.Property{Name: "Environment", Value: godbus.MakeVariant(c.Env)})
	}
	return props
}

// escapeDollars keeps arguments literal: systemd expands $VAR and ${VAR}
// in ExecStart at exec time, and reads "$$" as "$".
func escapeDollars(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "$", "$$")
	}
	return out
}

// waitJob waits for the start job's result. When ctx ends first (the agent
// is stopping) the unit is left to finish: killing a package transaction
// half way would leave the host worse off, and systemd enforces the
// command's timeout itself; Cleanup collects it later. Past the timeout plus
// a grace period, though, systemd failed to, and the unit is stopped.
func waitJob(ctx context.Context, conn *Conn, u unitRun, c host.Command, jobDone <-chan string) (string, error) {
	var deadline <-chan time.Time
	if c.Timeout > 0 {
		wait := c.Timeout + jobGrace
		if c.Detach {
			wait = c.Timeout
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		deadline = t.C
	}
	select {
	case result := <-jobDone:
		return result, nil
	case <-conn.Done():
		return "", fmt.Errorf("unit %s (%s): bus closed before the unit finished", u.name, c)
	case <-deadline:
		if c.Detach {
			return "", fmt.Errorf("unit %s (%s): stopped waiting after %v, the unit runs on", u.name, c, c.Timeout)
		}
		cleanup(conn, u.name)
		return "", fmt.Errorf("unit %s (%s): no job result within %v; unit stopped", u.name, c, c.Timeout+jobGrace)
	case <-ctx.Done():
		return "", fmt.Errorf("unit %s (%s): stopped waiting, the unit runs on: %w", u.name, c, ctx.Err())
	}
}

// interpret maps the unit's Service properties to a Result: the program ran
// (any exit status, or a signal) or it did not (timeout, exec failure, ...).
func interpret(unit string, c host.Command, jobResult string, props map[string]any, res host.Result) (host.Result, error) {
	result, _ := props["Result"].(string)
	code, _ := props["ExecMainCode"].(int32)
	status, _ := props["ExecMainStatus"].(int32)
	fail := func(what string) (host.Result, error) {
		res.ExitStatus = -1
		return res, fmt.Errorf("unit %s (%s): %s (job %s, result %s, exit status %d): %s",
			unit, c, what, jobResult, result, status, host.LastLines(res.Output, 5))
	}
	switch result {
	case "success", "exit-code", "signal", "core-dump":
	case "timeout":
		return fail(fmt.Sprintf("timed out after %v", c.Timeout))
	default:
		return fail("did not run to completion")
	}
	if code == cldExited && status == exitExec {
		return fail("systemd could not execute " + c.Args[0])
	}
	if code == cldExited {
		res.ExitStatus = int(status)
	} else {
		res.ExitStatus = 128 + int(status)
	}
	return res, nil
}

// readOutput reads the unit's output files: stdout's head for parsers, and
// the tails of stdout then stderr for people.
func (u unitRun) readOutput(c host.Command) host.Result {
	maxOutput, maxStdout := c.OutputLimits()
	var res host.Result
	stdout, truncated := readHead(u.localOut, maxStdout)
	res.Stdout, res.StdoutTruncated = string(stdout), truncated
	stderrTail := readTail(u.localErr, maxOutput/2)
	stdoutTail := readTail(u.localOut, maxOutput-len(stderrTail))
	res.Output = stdoutTail + stderrTail
	return res
}

func readHead(path string, max int) ([]byte, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if len(b) > max {
		return b[:max], true
	}
	return b, false
}

func readTail(path string, max int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	start := fi.Size() - int64(max)
	if start < 0 {
		start = 0
	}
	b, _ := io.ReadAll(io.NewSectionReader(f, start, fi.Size()-start))
	return host.TrimToValidUTF8Start(b, start > 0)
}

// cleanup stops the unit (kill its processes if still running), waits for
// the stop job within a bound, and resets a failed unit so it is collected.
func cleanup(conn *Conn, unit string) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	stopped := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, unit, "replace", stopped); err == nil {
		select {
		case <-stopped:
		case <-conn.Done():
		case <-ctx.Done():
		}
	}
	_ = conn.ResetFailedUnitContext(ctx, unit)
}

// Cleanup stops and resets this runner's units that finished while nobody
// waited for them (the agent stopped during a run) and removes their output
// files; units still running are left alone. It returns the units collected.
func (r *Runner) Cleanup(ctx context.Context) ([]string, error) {
	var done []string
	err := r.withUnits(ctx, "clean up units", func(conn *Conn, units []sdbus.UnitStatus) {
		for _, u := range units {
			finished := u.ActiveState == "failed" || (u.ActiveState == "active" && u.SubState == "exited")
			if !finished {
				continue
			}
			cleanup(conn, u.Name)
			base := filepath.Join(r.localDir(), strings.TrimSuffix(u.Name, ".service"))
			_ = os.Remove(base + ".out")
			_ = os.Remove(base + ".err")
			done = append(done, u.Name)
		}
	})
	return done, err
}

// Running lists this runner's units that are still running: commands the agent
// stopped waiting for (a package upgrade past its timeout, an agent restarted
// in the middle), which a reboot must not cut short.
func (r *Runner) Running(ctx context.Context) ([]string, error) {
	var running []string
	err := r.withUnits(ctx, "list running units", func(_ *Conn, units []sdbus.UnitStatus) {
		for _, u := range units {
			finished := u.ActiveState == "failed" || u.ActiveState == "inactive" || (u.ActiveState == "active" && u.SubState == "exited")
			if !finished {
				running = append(running, u.Name)
			}
		}
	})
	return running, err
}

// withUnits calls fn with this runner's units (nodepatch-*.service) on one
// connection to the bus.
func (r *Runner) withUnits(ctx context.Context, what string, fn func(*Conn, []sdbus.UnitStatus)) error {
	if err := r.Validate(); err != nil {
		return err
	}
	conn, err := Connect(ctx, r.Address)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer conn.Close()
	units, err := conn.ListUnitsByPatternsContext(ctx, nil, []string{r.prefix() + "*.service"})
	if err != nil {
		return fmt.Errorf("%s: list %s*: %w", what, r.prefix(), err)
	}
	fn(conn, units)
	return nil
}

func isDBusError(err error, name string) bool {
	var dbusErr godbus.Error
	if errors.As(err, &dbusErr) {
		return dbusErr.Name == name
	}
	var dbusErrPtr *godbus.Error
	return errors.As(err, &dbusErrPtr) && dbusErrPtr.Name == name
}
