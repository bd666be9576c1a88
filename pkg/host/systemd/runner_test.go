package systemd

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/test/hostenv"
)

func setup(t *testing.T) (*hostenv.Bus, *hostenv.FakeSystemd, *Runner) {
	t.Helper()
	bus := hostenv.StartBus(t)
	fake := hostenv.StartFakeSystemd(t, bus.Address)
	return bus, fake, &Runner{Address: bus.Address, OutputDir: t.TempDir()}
}

func sh(name, script string) host.Command {
	return host.Command{Name: name, Args: []string{"/bin/sh", "-c", script}}
}

// requireClean checks that the unit was stopped or reset and its output
// files removed.
func requireClean(t *testing.T, fake *hostenv.FakeSystemd, r *Runner) {
	t.Helper()
	require.Empty(t, fake.Units(), "units left behind")
	left, err := os.ReadDir(r.OutputDir)
	require.NoError(t, err)
	require.Empty(t, left, "output files left behind")
}

func TestRunnerRunsTransientUnit(t *testing.T) {
	_, fake, r := setup(t)
	c := sh("apt upgrade", `echo "out $GREETING"; echo err >&2; exit 3`)
	c.Env = []string{"GREETING=hello"}
	c.Timeout = time.Minute
	res, err := r.Run(context.Background(), c)
	require.NoError(t, err)
	require.Equal(t, 3, res.ExitStatus)
	require.Equal(t, "out hello\n", res.Stdout)
	require.Equal(t, "out hello\nerr\n", res.Output)

	calls := fake.Calls()
	require.Equal(t, "StartTransientUnit", calls[0].Method)
	require.Regexp(t, `^nodepatch-apt-upgrade-[0-9a-f]{8}\.service$`, calls[0].Unit)
	require.Equal(t, "fail", calls[0].Mode)
	p := calls[0].Props
	require.Equal(t, "oneshot", p["Type"].Value())
	require.Equal(t, true, p["RemainAfterExit"].Value())
	require.Equal(t, uint64(time.Minute/time.Microsecond), p["TimeoutStartUSec"].Value())
	require.Equal(t, []string{"GREETING=hello"}, p["Environment"].Value())
	var exec []struct {
		Path          string
		Args          []string
		IgnoreFailure bool
	}
	require.NoError(t, p["ExecStart"].Store(&exec))
	require.Len(t, exec, 1)
	require.Equal(t, "/bin/sh", exec[0].Path)
	require.False(t, exec[0].IgnoreFailure, "a failing command must fail the unit")
	require.Equal(t, filepath.Join(r.OutputDir, strings.TrimSuffix(calls[0].Unit, ".service")+".out"), p["StandardOutputFile"].Value())
	var methods []string
	for _, c := range calls[1:] {
		require.Equal(t, calls[0].Unit, c.Unit)
		methods = append(methods, c.Method)
	}
	require.Equal(t, []string{"StopUnit", "ResetFailedUnit"}, methods)
	requireClean(t, fake, r)

	res, err = r.Run(context.Background(), sh("ok", "printf done"))
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitStatus)
	require.Equal(t, "done", res.Stdout)
	requireClean(t, fake, r)

	// Arguments reach the program as given, though systemd expands "$".
	c = host.Command{Name: "literal", Args: []string{"printf", "%s|", "${Version}", "$HOME", "$$", "a$"}, Env: []string{"Version=expanded"}}
	res, err = r.Run(context.Background(), c)
	require.NoError(t, err)
	require.Equal(t, "${Version}|$HOME|$$|a$|", res.Stdout)
}

func TestRunnerLocalOutputDir(t *testing.T) {
	bus := hostenv.StartBus(t)
	hostenv.StartFakeSystemd(t, bus.Address)
	// The double runs on this machine, so both views are the same folder,
	// reached here through a symlink.
	dir := t.TempDir()
	link := filepath.Join(t.TempDir(), "view")
	require.NoError(t, os.Symlink(dir, link))
	r := &Runner{Address: bus.Address, OutputDir: dir, LocalOutputDir: link}
	res, err := r.Run(context.Background(), sh("view", "echo seen"))
	require.NoError(t, err)
	require.Equal(t, "seen\n", res.Stdout)
}

// TestRunnerOutputFolderMismatch: an agent that does not see the folder the
// units write to gets an error, not an empty output.
func TestRunnerOutputFolderMismatch(t *testing.T) {
	_, _, r := setup(t)
	r.LocalOutputDir = t.TempDir()
	_, err := r.Run(context.Background(), sh("elsewhere", "echo lost"))
	require.ErrorContains(t, err, "output file")
	require.ErrorContains(t, err, "is "+r.LocalOutputDir+" the host's "+r.OutputDir+"?")
}

func TestRunnerSignal(t *testing.T) {
	_, fake, r := setup(t)
	res, err := r.Run(context.Background(), sh("killed", "kill -KILL $$"))
	require.NoError(t, err)
	require.Equal(t, 128+9, res.ExitStatus)
	requireClean(t, fake, r)
}

func TestRunnerCannotExecute(t *testing.T) {
	_, fake, r := setup(t)
	_, err := r.Run(context.Background(), host.Command{Name: "missing", Args: []string{"/nonexistent/program"}})
	require.ErrorContains(t, err, "systemd could not execute /nonexistent/program")
	require.ErrorContains(t, err, "result exit-code, exit status 203")
	require.Regexp(t, `unit nodepatch-missing-[0-9a-f]{8}\.service`, err.Error())
	requireClean(t, fake, r)
}

func TestRunnerTimeout(t *testing.T) {
	_, fake, r := setup(t)
	c := sh("slow", "echo begun; sleep 60")
	c.Timeout = 300 * time.Millisecond
	res, err := r.Run(context.Background(), c)
	require.ErrorContains(t, err, "timed out after 300ms")
	require.ErrorContains(t, err, "result timeout")
	require.ErrorContains(t, err, "begun")
	require.Equal(t, -1, res.ExitStatus)
	requireClean(t, fake, r)
}

func TestRunnerMissingUnit(t *testing.T) {
	_, fake, r := setup(t)
	fake.ForgetFinishedUnits()
	_, err := r.Run(context.Background(), sh("gone", "true"))
	require.ErrorContains(t, err, "unit vanished before its result could be read")
	require.ErrorContains(t, err, "job done")
}

func TestRunnerBusDisappears(t *testing.T) {
	bus, fake, r := setup(t)
	errs := make(chan error, 1)
	go func() {
		_, err := r.Run(context.Background(), sh("long", "sleep 60"))
		errs <- err
	}()
	require.Eventually(t, func() bool { return len(fake.RunningPIDs()) == 1 }, 30*time.Second, 10*time.Millisecond)
	bus.Kill()
	select {
	case err := <-errs:
		// The unit runs before its start reply reaches the runner, so the
		// bus may die while the runner waits for the reply or for the job.
		require.Regexp(t, `^unit nodepatch-long-[0-9a-f]{8}\.service \(.*\): (bus closed before the unit finished|start: .*EOF)`, err.Error())
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after the bus died")
	}
}

// TestRunnerLeavesUnitWhenContextEnds: an agent that stops waiting does not
// kill the command; Cleanup collects the unit once it finished.
func TestRunnerLeavesUnitWhenContextEnds(t *testing.T) {
	_, fake, r := setup(t)
	fake.HoldJobs()
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() {
		_, err := r.Run(ctx, sh("held", "true"))
		errs <- err
	}()
	require.Eventually(t, func() bool { return len(fake.Calls()) == 1 }, 30*time.Second, 10*time.Millisecond)
	cancel()
	select {
	case err := <-errs:
		require.ErrorIs(t, err, context.Canceled)
		require.ErrorContains(t, err, "the unit runs on")
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	require.Len(t, fake.Units(), 1, "the unit was left to finish")
	for _, c := range fake.Calls() {
		require.NotEqual(t, "StopUnit", c.Method)
	}

	// A finished unit is collected; a unit still running is not.
	require.Eventually(t, func() bool { return len(fake.RunningPIDs()) == 0 }, 30*time.Second, 10*time.Millisecond)
	collected, err := r.Cleanup(context.Background())
	require.NoError(t, err)
	require.Len(t, collected, 1)
	require.Empty(t, fake.Units())
	running := make(chan error, 1)
	go func() {
		_, err := r.Run(context.Background(), sh("running", "sleep 60"))
		running <- err
	}()
	require.Eventually(t, func() bool { return len(fake.RunningPIDs()) == 1 }, 30*time.Second, 10*time.Millisecond)
	require.Eventually(t, func() bool { return len(fake.Units()) == 1 }, 30*time.Second, 10*time.Millisecond)
	collected, err = r.Cleanup(context.Background())
	require.NoError(t, err)
	require.Empty(t, collected)
	require.Len(t, fake.Units(), 1)
	require.Len(t, fake.RunningPIDs(), 1, "a running unit is left alone")
	names, err := r.Running(context.Background())
	require.NoError(t, err)
	require.Len(t, names, 1, "a running unit is not listed as running: a reboot would cut it short")
}

// TestRunnerDetachedTimeoutLeavesTheUnit: a package command past its timeout
// is not killed, by systemd or by the runner; the wait ends and it runs on.
func TestRunnerDetachedTimeoutLeavesTheUnit(t *testing.T) {
	_, fake, r := setup(t)
	c := sh("apt-upgrade", "sleep 60")
	c.Timeout, c.Detach = 300*time.Millisecond, true
	_, err := r.Run(context.Background(), c)
	require.ErrorContains(t, err, "stopped waiting after 300ms, the unit runs on")
	for _, call := range fake.Calls() {
		require.NotEqual(t, "StopUnit", call.Method)
		if call.Method == "StartTransientUnit" {
			require.Equal(t, "@t 18446744073709551615", call.Props["TimeoutStartUSec"].String(), "systemd would kill it at the timeout")
		}
	}
	require.Len(t, fake.RunningPIDs(), 1, "the command was killed")
	names, err := r.Running(context.Background())
	require.NoError(t, err)
	require.Len(t, names, 1)
}

func TestRunnerCleanupCollectsFinishedUnits(t *testing.T) {
	_, fake, r := setup(t)
	fake.HoldJobs()
	for _, script := range []string{"true", "exit 3"} {
		ctx, cancel := context.WithCancel(context.Background())
		errs := make(chan error, 1)
		go func() { _, err := r.Run(ctx, sh("left", script)); errs <- err }()
		require.Eventually(t, func() bool {
			for _, c := range fake.Calls() {
				if c.Method == "StartTransientUnit" && c.Props["ExecStart"].String() != "" && strings.Contains(c.Props["ExecStart"].String(), script) {
					return true
				}
			}
			return false
		}, 30*time.Second, 10*time.Millisecond)
		cancel()
		require.ErrorIs(t, <-errs, context.Canceled)
	}
	require.Len(t, fake.Units(), 2)
	require.Eventually(t, func() bool { return len(fake.RunningPIDs()) == 0 }, 30*time.Second, 10*time.Millisecond)
	collected, err := r.Cleanup(context.Background())
	require.NoError(t, err)
	require.Len(t, collected, 2)
	requireClean(t, fake, r)
}

func TestRunnerNoBus(t *testing.T) {
	r := &Runner{Address: "unix:path=" + t.TempDir() + "/none", OutputDir: t.TempDir()}
	_, err := r.Run(context.Background(), sh("x", "true"))
	require.ErrorContains(t, err, "connect to systemd on bus unix:path=")

	r.OutputDir = "relative"
	_, err = r.Run(context.Background(), sh("x", "true"))
	require.ErrorContains(t, err, `output folder "relative" is not an absolute path`)
}

func TestUnitNamePart(t *testing.T) {
	require.Equal(t, "apt-get-upgrade", UnitNamePart("apt-get upgrade"))
	require.Equal(t, "command", UnitNamePart(""))
	require.Equal(t, "a-b", UnitNamePart("a/b"))
	require.Len(t, UnitNamePart(strings.Repeat("x", 300)), 64)
}
