package host

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// debianRoot makes a root whose var/run is an absolute link to /run, as in
// a debootstrap root, so a wrong resolution would read the machine's /run.
func debianRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "run"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "var"), 0o755))
	require.NoError(t, os.Symlink("/run", filepath.Join(root, "var/run")))
	return root
}

func TestDetectorSentinelFile(t *testing.T) {
	ctx := context.Background()
	root := debianRoot(t)
	d := &Detector{HostRoot: root, SentinelFile: "/var/run/reboot-required"}

	check, err := d.RebootRequired(ctx)
	require.NoError(t, err)
	require.False(t, check.Required)
	require.Empty(t, check.Reasons)

	require.NoError(t, os.WriteFile(filepath.Join(root, "run/reboot-required"), []byte("*** System restart required ***\n"), 0o644))
	check, err = d.RebootRequired(ctx)
	require.NoError(t, err)
	require.True(t, check.Required)
	require.Equal(t, []string{"sentinel file /var/run/reboot-required exists"}, check.Reasons)
	require.Empty(t, check.Packages)

	pkgs := "linux-image-6.1.0-30-amd64\n\nlibc6\nlinux-image-6.1.0-30-amd64\n"
	require.NoError(t, os.WriteFile(filepath.Join(root, "run/reboot-required.pkgs"), []byte(pkgs), 0o644))
	check, err = d.RebootRequired(ctx)
	require.NoError(t, err)
	require.Equal(t, []string{"linux-image-6.1.0-30-amd64", "libc6"}, check.Packages)
}

func TestDetectorSentinelCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	flag := filepath.Join(dir, "flag")
	d := &Detector{HostRoot: dir, SentinelCommand: "test -e " + flag, Runner: NewDirectRunner("/")}

	check, err := d.RebootRequired(ctx)
	require.NoError(t, err)
	require.False(t, check.Required)

	require.NoError(t, os.WriteFile(flag, nil, 0o644))
	check, err = d.RebootRequired(ctx)
	require.NoError(t, err)
	require.True(t, check.Required)
	require.Contains(t, check.Reasons[0], "exited 0")

	d.Runner = nil
	_, err = d.RebootRequired(ctx)
	require.ErrorContains(t, err, "no runner")
}

func TestDetectorNeedsRestarting(t *testing.T) {
	ctx := context.Background()
	script := func(out string, status int) []string {
		return []string{"/bin/sh", "-c", "printf '" + out + "'; echo oops >&2; exit " + string(rune('0'+status))}
	}
	d := &Detector{Runner: NewDirectRunner("/")}

	d.NeedsRestarting = script(`No core libraries or services have been updated since boot-up.\nReboot should not be necessary.\n`, 0)
	check, err := d.RebootRequired(ctx)
	require.NoError(t, err)
	require.False(t, check.Required)

	d.NeedsRestarting = script(`Core libraries or services have been updated since boot-up:\n  * kernel\n  * glibc\n\nReboot is required to fully utilize these updates.\nMore information: https://access.redhat.com/solutions/27943\n`, 1)
	check, err = d.RebootRequired(ctx)
	require.NoError(t, err)
	require.True(t, check.Required)
	require.Equal(t, []string{"kernel", "glibc"}, check.Packages)

	d.NeedsRestarting = script(`No such command: needs-restarting. Please use /usr/bin/dnf --help\n`, 1)
	_, err = d.RebootRequired(ctx)
	require.ErrorContains(t, err, "exited 1 without saying a reboot is required")
	require.ErrorContains(t, err, "No such command")

	d.NeedsRestarting = script(`Error: bad things\n`, 2)
	_, err = d.RebootRequired(ctx)
	require.ErrorContains(t, err, "exited 2")
	require.ErrorContains(t, err, "oops")
}
