package host

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveInRoot(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		require.NoError(t, os.MkdirAll(filepath.Join(root, p), 0o755))
	}
	link := func(target, p string) {
		require.NoError(t, os.Symlink(target, filepath.Join(root, p)))
	}
	mk("run")
	mk("var")
	mk("etc/a/b")
	link("/run", "var/run")        // Debian's absolute link
	link("../../..", "etc/a/b/up") // climbs to the root and beyond
	link("/../../etc", "etc/abs")  // absolute with dot-dots
	link("loop2", "etc/loop1")
	link("loop1", "etc/loop2")
	link("a/b", "etc/rel")

	cases := map[string]string{
		"/var/run/reboot-required":   "run/reboot-required",
		"var/run/reboot-required":    "run/reboot-required",
		"/var/run":                   "run",
		"/":                          "",
		"":                           "",
		"/../../../etc":              "etc",
		"/etc/a/b/up/etc/a/b/up/etc": "etc",
		"/etc/a/b/up/../../x":        "x",
		"/etc/abs/a":                 "etc/a",
		"/etc/rel/c":                 "etc/a/b/c",
		"/missing/../../etc/x/../y":  "etc/y",
		"/var/run/../etc":            "etc",
	}
	for in, want := range cases {
		got, err := ResolveInRoot(root, in)
		require.NoError(t, err, in)
		require.Equal(t, filepath.Join(root, want), got, "resolving %q", in)
	}

	_, err := ResolveInRoot(root, "/etc/loop1/x")
	require.ErrorContains(t, err, "symbolic links")
	require.ErrorContains(t, err, "/etc/loop1/x")
}

func TestResolveInRootSlash(t *testing.T) {
	got, err := ResolveInRoot("", "/etc/../etc/hostname")
	require.NoError(t, err)
	require.Equal(t, "/etc/hostname", got)
}
