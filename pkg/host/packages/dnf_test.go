package packages

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/test/hostenv"
)

type dnfHost struct {
	root   *hostenv.DnfRoot
	repo   *hostenv.RPMRepo
	runner *hostenv.RecordingRunner
}

func newDnfHost(t *testing.T) *dnfHost {
	t.Helper()
	h := &dnfHost{repo: hostenv.NewRPMRepo(t, filepath.Join(t.TempDir(), "repo"))}
	h.repo.Add(t, hostenv.RPM{Name: "foo", Version: "1.0"}, hostenv.RPM{Name: "bar", Version: "1.0"}, hostenv.RPM{Name: "kubelet", Version: "1.0"})
	h.repo.Publish(t)
	h.root = hostenv.NewDnfRoot(t, h.repo)
	h.root.Dnf(t, "install", "foo", "bar", "kubelet")
	h.runner = &hostenv.RecordingRunner{Runner: host.NewDirectRunner("/")}
	return h
}

func (h *dnfHost) publishUpdates(t *testing.T) {
	t.Helper()
	h.repo.Add(t, hostenv.RPM{Name: "foo", Version: "1.1"}, hostenv.RPM{Name: "bar", Version: "1.1"}, hostenv.RPM{Name: "kubelet", Version: "1.1"})
	h.repo.Security = []hostenv.RPM{{Name: "bar", Version: "1.1"}}
	h.repo.Publish(t)
}

func (h *dnfHost) manager(t *testing.T, kind Kind, mutate ...func(*Config)) *Manager {
	t.Helper()
	cfg := Config{Kind: kind, Runner: h.runner, Exclude: DefaultExclude(), Options: h.root.Options(), Timeout: 5 * time.Minute}
	for _, m := range mutate {
		m(&cfg)
	}
	m, err := New(cfg)
	require.NoError(t, err)
	return m
}

func TestDnfUpgrade(t *testing.T) {
	ctx := context.Background()
	h := newDnfHost(t)
	m := h.manager(t, KindDnf)

	require.NoError(t, m.Refresh(ctx))
	p, err := m.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, Pending{}, p)

	h.publishUpdates(t)
	require.NoError(t, m.Refresh(ctx))
	p, err = m.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, Pending{All: 2, Security: 1, Packages: []string{"bar", "foo"},
		SecurityPackages: []string{"bar"}, Excluded: []string{"kubelet"}}, p)

	res, err := m.Download(ctx, ModeSecurity)
	require.NoError(t, err)
	require.Equal(t, []string{"bar"}, res.Packages)
	require.Contains(t, res.Command, "--downloadonly")
	require.Equal(t, "1.0", h.root.Version(t, "bar"))

	res, err = m.Upgrade(ctx, ModeSecurity)
	require.NoError(t, err)
	require.Equal(t, []string{"bar"}, res.Packages)
	require.Contains(t, res.Command, "/usr/bin/dnf")
	require.Contains(t, res.Command, "upgrade --security --exclude=kubelet")
	require.Equal(t, "1.1", h.root.Version(t, "bar"))
	require.Equal(t, "1.0", h.root.Version(t, "foo"))

	res, err = m.Upgrade(ctx, ModeAll)
	require.NoError(t, err)
	require.Equal(t, []string{"foo"}, res.Packages)
	require.Equal(t, 0, res.ExitStatus)
	require.Equal(t, "1.1", h.root.Version(t, "foo"))
	require.Equal(t, "1.0", h.root.Version(t, "kubelet"), "excluded")

	p, err = m.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, Pending{Excluded: []string{"kubelet"}}, p)
}

// TestYumIsDnfByName: yum takes dnf's code path under its own name. There
// is no yum package here; a link named yum to dnf stands for EL8+'s yum.
func TestYumIsDnfByName(t *testing.T) {
	ctx := context.Background()
	h := newDnfHost(t)
	h.publishUpdates(t)
	m := h.manager(t, KindYum)
	require.Equal(t, KindYum, m.Kind())
	_, err := m.Pending(ctx)
	require.ErrorContains(t, err, `command "yum-check-update"`)
	require.ErrorContains(t, err, "/usr/bin/yum")

	yum := filepath.Join(t.TempDir(), "yum")
	dnf, err := exec.LookPath("dnf")
	require.NoError(t, err)
	require.NoError(t, os.Symlink(dnf, yum))
	m = h.manager(t, KindYum, func(c *Config) { c.Program = yum })
	require.NoError(t, m.Refresh(ctx))
	p, err := m.Pending(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"bar"}, p.SecurityPackages)
	res, err := m.Upgrade(ctx, ModeAll)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"foo", "bar"}, res.Packages)
	require.True(t, strings.HasPrefix(res.Command, yum+" "), res.Command)
	for _, r := range h.runner.Runs() {
		require.True(t, strings.HasPrefix(r.Command.Name, "yum-"), r.Command.Name)
	}
}

// TestDnfWaitsForRPMLock: rpm's transaction lock held by another process
// is waited out.
func TestDnfWaitsForRPMLock(t *testing.T) {
	ctx := context.Background()
	h := newDnfHost(t)
	h.publishUpdates(t)
	m := h.manager(t, KindDnf, func(c *Config) { c.LockRetry = 50 * time.Millisecond })
	require.NoError(t, m.Refresh(ctx))

	release := hostenv.HoldLock(t, h.root.RPMLockFile())
	done := make(chan error, 1)
	var res Result
	go func() {
		var err error
		res, err = m.Upgrade(ctx, ModeAll)
		done <- err
	}()
	require.Eventually(t, func() bool {
		n := 0
		for _, r := range h.runner.Runs() {
			if strings.Contains(r.Result.Output, "can't create transaction lock") {
				n++
			}
		}
		return n >= 2
	}, time.Minute, 10*time.Millisecond)
	release()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(2 * time.Minute):
		t.Fatal("upgrade did not finish after the lock was released")
	}
	require.ElementsMatch(t, []string{"foo", "bar"}, res.Packages)
}

// TestDnfNeedsRestarting: the Detector asks dnf needs-restarting -r, inside
// a PID namespace that stands for a boot after foo 1.0 was installed: no
// reboot; after foo 1.1 is installed (later than that boot): a reboot, with
// foo named.
func TestDnfNeedsRestarting(t *testing.T) {
	ctx := context.Background()
	h := newDnfHost(t)
	conf := filepath.Join(h.root.Root, "etc/dnf/plugins/needs-restarting.d")
	require.NoError(t, os.MkdirAll(conf, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(conf, "nodepatch-test.conf"), []byte("foo\n"), 0o644))
	installed := time.Now()

	hostenv.WaitForNextSecond(t, installed)
	boot := hostenv.StartFakeBoot(t)
	require.True(t, boot.Time.After(installed.Truncate(time.Second)), "%s is not after the install at %s", boot, installed)
	args := append([]string{"/usr/bin/dnf"}, h.root.Options()...)
	d := &host.Detector{
		Runner:          h.runner,
		NeedsRestarting: boot.Command(append(args, "needs-restarting", "-r")...),
	}
	check, err := d.RebootRequired(ctx)
	require.NoError(t, err)
	require.False(t, check.Required, "foo 1.0 was installed before the boot")

	h.publishUpdates(t)
	m := h.manager(t, KindDnf)
	require.NoError(t, m.Refresh(ctx))
	hostenv.WaitForNextSecond(t, boot.Time)
	_, err = m.Upgrade(ctx, ModeAll)
	require.NoError(t, err)
	require.Equal(t, boot.Time, boot.BootTime(t), "the fake boot time moved")

	check, err = d.RebootRequired(ctx)
	require.NoError(t, err)
	require.True(t, check.Required)
	require.Equal(t, []string{"foo"}, check.Packages)
	require.Contains(t, check.Reasons[0], "needs-restarting -r")
}
