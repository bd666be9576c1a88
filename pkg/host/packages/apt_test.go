package packages

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/test/hostenv"
)

// aptHost is a bare Debian root with foo, bar and kubelet 1.0 installed
// from a main repository, and a security repository.
type aptHost struct {
	root      *hostenv.AptRoot
	main, sec *hostenv.AptRepo
	runner    *hostenv.RecordingRunner
}

func newAptHost(t *testing.T) *aptHost {
	t.Helper()
	dir := t.TempDir()
	h := &aptHost{
		main: hostenv.NewAptRepo(t, filepath.Join(dir, "main"), "Debian", "bookworm"),
		sec:  hostenv.NewAptRepo(t, filepath.Join(dir, "security"), "Debian-Security", "bookworm-security"),
	}
	h.main.Add(t, hostenv.Deb{Name: "foo", Version: "1.0"}, hostenv.Deb{Name: "bar", Version: "1.0"},
		hostenv.Deb{Name: "kubelet", Version: "1.0"}, hostenv.Deb{Name: "broken", Version: "1.0"})
	h.main.Publish(t)
	h.root = hostenv.NewAptRoot(t, h.main, h.sec)
	h.root.AptGet(t, "update")
	h.root.AptGet(t, "install", "foo", "bar", "kubelet", "broken")
	h.runner = &hostenv.RecordingRunner{Runner: host.NewDirectRunner("/")}
	return h
}

func (h *aptHost) manager(t *testing.T, mutate ...func(*Config)) *Manager {
	t.Helper()
	cfg := Config{Kind: KindApt, Runner: h.runner, Exclude: DefaultExclude(), Env: h.root.Env(), Timeout: 5 * time.Minute}
	for _, m := range mutate {
		m(&cfg)
	}
	m, err := New(cfg)
	require.NoError(t, err)
	return m
}

func (h *aptHost) detector() *host.Detector {
	return &host.Detector{HostRoot: h.root.Root, SentinelFile: "/var/run/reboot-required"}
}

// TestAptUpgrade: 1.1 of foo is published in main, of bar (with a new
// dependency) in security, of kubelet (excluded) in main. Security mode
// upgrades bar only, all mode foo too; kubelet stays; the postinst's
// sentinel is seen by the Detector with its packages.
func TestAptUpgrade(t *testing.T) {
	ctx := context.Background()
	h := newAptHost(t)
	m := h.manager(t)

	p, err := m.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, Pending{}, p, "nothing pending before 1.1 is published")

	h.main.Add(t, hostenv.Deb{Name: "foo", Version: "1.1", RebootRequired: true},
		hostenv.Deb{Name: "kubelet", Version: "1.1"}, hostenv.Deb{Name: "baz", Version: "1.0"})
	h.main.Publish(t)
	h.sec.Add(t, hostenv.Deb{Name: "bar", Version: "1.1", Depends: "baz", RebootRequired: true})
	h.sec.Publish(t)
	require.NoError(t, m.Refresh(ctx))

	p, err = m.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, Pending{All: 2, Security: 1, Packages: []string{"bar", "foo"},
		SecurityPackages: []string{"bar"}, Excluded: []string{"kubelet"}}, p)

	check, err := h.detector().RebootRequired(ctx)
	require.NoError(t, err)
	require.False(t, check.Required)

	res, err := m.Download(ctx, ModeSecurity)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"bar", "baz"}, res.Packages)
	require.Equal(t, "1.0", h.root.Version(t, "bar"), "download only")
	// file: repositories are used in place: nothing lands in the cache.
	require.Contains(t, res.Command, " -d --no-remove install --only-upgrade bar")

	res, err = m.Upgrade(ctx, ModeSecurity)
	require.NoError(t, err)
	require.Equal(t, ModeSecurity, res.Mode)
	require.ElementsMatch(t, []string{"bar", "baz"}, res.Packages)
	require.Equal(t, 2, res.Count())
	require.Equal(t, 0, res.ExitStatus)
	require.Contains(t, res.Command, "install --only-upgrade bar")
	require.Contains(t, res.Output, "Setting up bar (1.1)")
	require.Positive(t, res.Duration)
	require.Equal(t, "1.1", h.root.Version(t, "bar"))
	require.Equal(t, "1.0", h.root.Version(t, "foo"), "security mode leaves foo")

	check, err = h.detector().RebootRequired(ctx)
	require.NoError(t, err)
	require.True(t, check.Required)
	require.Equal(t, []string{"bar"}, check.Packages)

	res, err = m.Upgrade(ctx, ModeAll)
	require.NoError(t, err)
	require.Equal(t, []string{"foo"}, res.Packages)
	require.Equal(t, "1.1", h.root.Version(t, "foo"))
	require.Equal(t, "1.0", h.root.Version(t, "kubelet"), "excluded")

	check, err = h.detector().RebootRequired(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"bar", "foo"}, check.Packages)

	p, err = m.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, Pending{Excluded: []string{"kubelet"}}, p)

	res, err = m.Upgrade(ctx, ModeAll)
	require.NoError(t, err)
	require.Empty(t, res.Packages, "nothing left to do")

	res, err = m.Upgrade(ctx, ModeOff)
	require.NoError(t, err)
	require.Equal(t, Result{Mode: ModeOff}, res)

	for _, r := range h.runner.Runs() {
		require.Contains(t, r.Command.Env, "DEBIAN_FRONTEND=noninteractive")
		require.Equal(t, "/usr/bin/apt-get", r.Command.Args[0])
	}
}

// TestAptExcludedDependency: upgrading foo would drag excluded kubelet
// along; the upgrade refuses and kubelet stays.
func TestAptExcludedDependency(t *testing.T) {
	ctx := context.Background()
	h := newAptHost(t)
	h.main.Add(t, hostenv.Deb{Name: "foo", Version: "1.1", Depends: "kubelet (>= 1.1)"}, hostenv.Deb{Name: "kubelet", Version: "1.1"})
	h.main.Publish(t)
	m := h.manager(t)
	require.NoError(t, m.Refresh(ctx))
	_, err := m.Upgrade(ctx, ModeAll)
	require.ErrorContains(t, err, "upgrading foo would also upgrade excluded package kubelet")
	require.Equal(t, "1.0", h.root.Version(t, "kubelet"))
	require.Equal(t, "1.0", h.root.Version(t, "foo"))
}

// TestAptPostinstFails: a package whose postinst fails is a reported patch
// failure, and no sentinel appears.
func TestAptPostinstFails(t *testing.T) {
	ctx := context.Background()
	h := newAptHost(t)
	h.main.Add(t, hostenv.Deb{Name: "broken", Version: "1.1", PostinstFails: true, RebootRequired: true})
	h.main.Publish(t)
	m := h.manager(t)
	require.NoError(t, m.Refresh(ctx))

	res, err := m.Upgrade(ctx, ModeAll)
	var cmdErr *CommandError
	require.ErrorAs(t, err, &cmdErr)
	require.Equal(t, 100, cmdErr.ExitStatus)
	require.Contains(t, cmdErr.Command, "/usr/bin/apt-get")
	require.Contains(t, cmdErr.Command, "install --only-upgrade broken")
	require.Contains(t, cmdErr.Output, "broken: postinst cannot configure this package")
	require.Contains(t, cmdErr.Output, "installed broken package post-installation script subprocess returned error exit status 1")
	require.ErrorContains(t, err, "exited 100")
	require.Equal(t, 100, res.ExitStatus)
	require.Equal(t, cmdErr.Command, res.Command)
	require.Contains(t, res.Output, "post-installation script")

	check, err := h.detector().RebootRequired(ctx)
	require.NoError(t, err)
	require.False(t, check.Required)
	require.NoFileExists(t, filepath.Join(h.root.Root, "run/reboot-required"))
}

// TestAptWaitsForLock: dpkg's frontend lock held by another process is
// waited out; held past LockTimeout it is a LockError.
func TestAptWaitsForLock(t *testing.T) {
	ctx := context.Background()
	h := newAptHost(t)
	h.main.Add(t, hostenv.Deb{Name: "foo", Version: "1.1"})
	h.main.Publish(t)
	fast := func(c *Config) { c.LockRetry = 50 * time.Millisecond }
	require.NoError(t, h.manager(t).Refresh(ctx))

	release := hostenv.HoldLock(t, filepath.Join(h.root.Root, "var/lib/dpkg/lock-frontend"))
	short := h.manager(t, fast, func(c *Config) { c.LockTimeout = 300 * time.Millisecond })
	_, err := short.Upgrade(ctx, ModeAll)
	var lockErr *LockError
	require.ErrorAs(t, err, &lockErr)
	require.Contains(t, lockErr.Output, "Could not get lock")
	require.Equal(t, "1.0", h.root.Version(t, "foo"))

	m := h.manager(t, fast)
	done := make(chan error, 1)
	var res Result
	go func() {
		var err error
		res, err = m.Upgrade(ctx, ModeAll)
		done <- err
	}()
	// Let it hit the lock at least twice, then let go.
	require.Eventually(t, func() bool { return lockedRuns(h.runner.Runs()) >= 3 }, time.Minute, 10*time.Millisecond)
	release()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatal("upgrade did not finish after the lock was released")
	}
	require.Equal(t, []string{"foo"}, res.Packages)
	require.Equal(t, "1.1", h.root.Version(t, "foo"))
}

func lockedRuns(runs []hostenv.Run) int {
	n := 0
	for _, r := range runs {
		if strings.Contains(r.Result.Output, "Could not get lock") {
			n++
		}
	}
	return n
}

// TestManagerRunsNeverOverlap: concurrent calls run one at a time.
func TestManagerRunsNeverOverlap(t *testing.T) {
	ctx := context.Background()
	h := newAptHost(t)
	m := h.manager(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := m.Pending(ctx)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Len(t, h.runner.Runs(), 4)
	require.Equal(t, 1, h.runner.MaxInFlight())

	// A caller whose context ends while another run holds the manager
	// gives up.
	m.busy <- struct{}{}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := m.Pending(cctx)
	require.True(t, errors.Is(err, context.DeadlineExceeded), "got %v", err)
	<-m.busy
}

// TestAptTimeoutLeavesTheTransactionRunning: the operation's timeout ends the
// wait for a hung upgrade but never kills dpkg in the middle of a transaction;
// the runner lists it as running (which holds any reboot) until it ends.
func TestAptTimeoutLeavesTheTransactionRunning(t *testing.T) {
	h := newAptHost(t)
	dir := t.TempDir()
	release := filepath.Join(dir, "release")
	// A dpkg that hangs when asked to unpack, through apt's own
	// Dir::Bin::dpkg, until the test lets it go (a minute at most).
	hang := filepath.Join(dir, "dpkg")
	require.NoError(t, os.WriteFile(hang, []byte(`#!/bin/sh
case "$*" in *--unpack*) echo hanging; i=0; while [ ! -e `+release+` ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done;; esac
exec dpkg "$@"
`), 0o755))
	h.main.Add(t, hostenv.Deb{Name: "foo", Version: "1.1"})
	h.main.Publish(t)
	require.NoError(t, h.manager(t).Refresh(context.Background()))
	direct := host.NewDirectRunner("/")
	m := h.manager(t, func(c *Config) {
		c.Timeout = 5 * time.Second
		c.Options = []string{"-o", "Dir::Bin::dpkg=" + hang}
		c.Runner = direct
	})
	_, err := m.Upgrade(context.Background(), ModeAll)
	require.ErrorContains(t, err, `command "apt-upgrade"`)
	require.ErrorContains(t, err, "timed out after")
	running, err := direct.Running(context.Background())
	require.NoError(t, err)
	require.Equal(t, []string{"apt-upgrade"}, running, "the timed-out upgrade should still run")

	require.NoError(t, os.WriteFile(release, nil, 0o644))
	require.Eventually(t, func() bool {
		running, err := direct.Running(context.Background())
		return err == nil && len(running) == 0
	}, time.Minute, 50*time.Millisecond, "the upgrade did not finish once let go")
}

func TestNewChecksConfig(t *testing.T) {
	r := host.NewDirectRunner("/")
	_, err := New(Config{Kind: "zypper", Runner: r})
	require.ErrorContains(t, err, `unknown package manager "zypper"`)
	_, err = New(Config{Kind: KindApt})
	require.ErrorContains(t, err, "no runner")
	_, err = New(Config{Kind: KindApt, Runner: r, Exclude: []string{"a,b"}})
	require.ErrorContains(t, err, `exclusion "a,b"`)
	_, err = New(Config{Kind: KindApt, Runner: r, Exclude: []string{"[x"}})
	require.ErrorContains(t, err, `exclusion "[x"`)
	_, err = ParseMode("sometimes")
	require.ErrorContains(t, err, `patch mode "sometimes"`)
	m, err := New(Config{Kind: KindApt, Runner: r})
	require.NoError(t, err)
	_, err = m.Upgrade(context.Background(), "sometimes")
	require.ErrorContains(t, err, `patch mode "sometimes"`)
}

func TestDetect(t *testing.T) {
	mk := func(files ...string) string {
		root := t.TempDir()
		for _, f := range files {
			require.NoError(t, os.MkdirAll(filepath.Join(root, filepath.Dir(f)), 0o755))
			require.NoError(t, os.WriteFile(filepath.Join(root, f), nil, 0o755))
		}
		return root
	}
	for want, files := range map[Kind][]string{
		KindApt: {"usr/bin/apt-get", "var/lib/dpkg/status", "usr/bin/dnf"},
		KindDnf: {"usr/bin/dnf", "usr/bin/yum", "usr/bin/apt-get"},
		KindYum: {"usr/bin/yum"},
	} {
		got, err := Detect(mk(files...))
		require.NoError(t, err)
		require.Equal(t, want, got)
	}
	// usr-merged roots reach /usr/bin through links, absolute ones too.
	root := mk("usr/bin/dnf")
	require.NoError(t, os.Symlink("/usr/bin", filepath.Join(root, "bin")))
	got, err := Detect(root)
	require.NoError(t, err)
	require.Equal(t, KindDnf, got)

	empty := mk()
	_, err = Detect(empty)
	require.ErrorContains(t, err, "no supported package manager")
	require.ErrorContains(t, err, empty)

	require.Equal(t, []string{"/usr/bin/dnf", "needs-restarting", "-r"}, NeedsRestartingCommand(KindDnf))
	require.Nil(t, NeedsRestartingCommand(KindApt))
}
