package packages

import (
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const aptSim = `Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following NEW packages will be installed:
  linux-image-6.1.0-30-amd64
The following packages will be upgraded:
  base-files libssl3 linux-image-amd64
W: Some warning on stderr-like text
Inst linux-image-6.1.0-30-amd64 (6.1.124-1 Debian-Security:12/stable-security [amd64])
Inst libssl3:amd64 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian:12.5/stable, Debian-Security:12/stable-security [amd64]) []
Inst base-files [12.4+deb12u4] (12.4+deb12u5 Debian:12.5/stable [amd64])
Inst linux-image-amd64 [6.1.119-1] (6.1.124-1 Ubuntu:22.04/jammy-security [amd64])
Inst foo [1.0] (1.1 localhost [all])
Remv oldpkg [2.0]
Conf libssl3:amd64 (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
`

func TestParseAptSimulation(t *testing.T) {
	acts, err := ParseAptSimulation(aptSim)
	require.NoError(t, err)
	require.Len(t, acts, 7)
	require.Equal(t, AptAction{Kind: "Inst", Name: "linux-image-6.1.0-30-amd64", NewVersion: "6.1.124-1",
		Releases: []string{"Debian-Security:12/stable-security"}, Security: true}, acts[0])
	require.Equal(t, AptAction{Kind: "Inst", Name: "libssl3", Arch: "amd64", OldVersion: "3.0.11-1~deb12u1", NewVersion: "3.0.11-1~deb12u2",
		Releases: []string{"Debian:12.5/stable", "Debian-Security:12/stable-security"}, Security: true}, acts[1])
	require.False(t, acts[2].Security)
	require.True(t, acts[3].Security)
	require.Equal(t, []string{"localhost"}, acts[4].Releases)
	require.False(t, acts[4].Security)
	require.Equal(t, AptAction{Kind: "Remv", Name: "oldpkg", OldVersion: "2.0"}, acts[5])
	require.Equal(t, "Conf", acts[6].Kind)
}

func TestParseAptSimulationErrors(t *testing.T) {
	for line, want := range map[string]string{
		"Inst Foo [1.0] (1.1 x [all])": `bad package name "Foo"`,
		"Inst foo [1.0 (1.1 x [all])":  "bad installed version",
		"Inst foo [1.0] 1.1 x [all]":   "no (version release [arch]) part",
		"Inst foo [1.0] (1.1 x [all]":  "unclosed",
		"Inst foo (1 1 x [all])":       "", // "1" is a valid version; "1 x" releases
		"Inst foo ( x [all])":          `bad candidate version ""`,
	} {
		_, err := ParseAptSimulation("Reading package lists...\n" + line + "\n")
		if want == "" {
			require.NoError(t, err, line)
			continue
		}
		require.ErrorContains(t, err, want, line)
		require.ErrorContains(t, err, "line 2", line)
		require.ErrorContains(t, err, line, "the error names the line")
	}
}

func TestParseAptSetUp(t *testing.T) {
	out := "Unpacking foo (1.1) over (1.0) ...\nSetting up baz (1.0) ...\nSetting up foo:amd64 (1:1.1-2) ...\nProcessing triggers for man-db (2.11.2-2) ...\nSetting up foo (1.1) ...\n"
	names, err := ParseAptSetUp(out)
	require.NoError(t, err)
	require.Equal(t, []string{"baz", "foo"}, names)

	_, err = ParseAptSetUp("Setting up foo ...\n")
	require.ErrorContains(t, err, `line 1 "Setting up foo ..."`)
}

const checkUpdate = `
a-very-long-package-name-for-wrapping-the-columns-in-dnf.noarch     1.2-1      t
bar.noarch                                                          1.1-1      t
kernel-core.x86_64                       5.14.0-427.el9                    baseos
a-name-so-long-that-dnf-put-the-rest-on-the-next-line.x86_64
                                         1:2.3-4.el9                       appstream
Obsoleting Packages
grub2-tools.x86_64                       1:2.06-1.el9                      baseos
    grub2-tools.x86_64                   1:2.02-1.el9                      @anaconda
`

func TestParseCheckUpdate(t *testing.T) {
	ups, err := ParseCheckUpdate(checkUpdate)
	require.NoError(t, err)
	require.Equal(t, []RPMUpdate{
		{Name: "a-very-long-package-name-for-wrapping-the-columns-in-dnf", Arch: "noarch", Version: "1.2-1", Repo: "t"},
		{Name: "bar", Arch: "noarch", Version: "1.1-1", Repo: "t"},
		{Name: "kernel-core", Arch: "x86_64", Version: "5.14.0-427.el9", Repo: "baseos"},
		{Name: "a-name-so-long-that-dnf-put-the-rest-on-the-next-line", Arch: "x86_64", Version: "1:2.3-4.el9", Repo: "appstream"},
	}, ups)

	for text, want := range map[string]string{
		"bar.noarch 1.1-1\n":              `line 1 "bar.noarch 1.1-1": want NAME.ARCH VERSION REPOSITORY, got 2 fields`,
		"Error: Failed to download\n":     `line 1 "Error: Failed to download": want NAME.ARCH VERSION REPOSITORY, got 4 fields`,
		"noarch 1.1-1 t\n":                `"noarch" is not NAME.ARCH`,
		"bar.noarch\n":                    `line 1 "bar.noarch": a package name with no version`,
		"bar.noarch\nfoo.noarch 1 t\n":    `line 1 "bar.noarch": a package name with no version`,
		"bar.NoArch 1.1-1 t\n":            `bad architecture "NoArch"`,
		"bar.noarch 1.1-1 (t)\n":          `bad repository "(t)"`,
		"b@r.noarch 1.1-1 t\n":            `bad package name "b@r"`,
		"bar.noarch 1.1 1 t\n":            "got 4 fields",
		"bar.noarch 1.1-1 t\nfoo.x 1 t\n": "",
	} {
		_, err := ParseCheckUpdate(text)
		if want == "" {
			require.NoError(t, err, text)
			continue
		}
		require.ErrorContains(t, err, want, text)
	}
}

const dnfUpgrade = `Dependencies resolved.
================================================================================
 Package          Architecture        Version              Repository      Size
================================================================================
Upgrading:
 bar              noarch              1.1-1                t              5.9 k
 a-very-long-package-name-that-wraps-in-the-table
                  noarch              1.1-1                t              5.9 k
Installing dependencies:
 baz              noarch              1.0-1                t              5.9 k

Transaction Summary
================================================================================
Upgrade  2 Packages

Running transaction
  Upgrading        : bar-1.1-1.noarch                                       1/4
  Cleanup          : bar-1.0-1.noarch                                       3/4

Upgraded:
  bar-1.1-1.noarch                       kernel-core-5.14.0-427.el9.x86_64
  shadow-utils-2:4.9-8.el9.x86_64
Installed:
  baz-1.0-1.noarch

Complete!
`

func TestParseTransaction(t *testing.T) {
	names, err := ParseTransaction(dnfUpgrade, false, "Upgraded:", "Installed:")
	require.NoError(t, err)
	require.Equal(t, []string{"bar", "kernel-core", "shadow-utils", "baz"}, names)

	names, err = ParseTransaction(dnfUpgrade, true, "Upgrading:", "Installing dependencies:")
	require.NoError(t, err)
	require.Equal(t, []string{"bar", "a-very-long-package-name-that-wraps-in-the-table", "baz"}, names)

	_, err = ParseTransaction("Upgraded:\n  bar-1.1.noarch\n", false, "Upgraded:")
	require.ErrorContains(t, err, `line 2 "  bar-1.1.noarch": "bar-1.1.noarch" is not NAME-VERSION-RELEASE.ARCH`)
	_, err = ParseTransaction("Upgraded:\n  bar-1.1-1.NOARCH\n", false, "Upgraded:")
	require.ErrorContains(t, err, "is not NAME-VERSION-RELEASE.ARCH")
	_, err = ParseTransaction("Upgrading:\n b@r noarch 1 t 1 k\n", true, "Upgrading:")
	require.ErrorContains(t, err, `bad package name "b@r"`)
}

// The parsers take output from another program: whatever it prints, they
// return names that are well formed or an error that quotes a line.
func FuzzParseAptSimulation(f *testing.F) {
	f.Add(aptSim)
	f.Add("Inst foo [1.0] (1.1 localhost [all])\n")
	f.Add("Inst foo (1.1)\nConf foo (1.1 [all])\n")
	f.Add("Inst  (")
	f.Add("Remv x [")
	f.Fuzz(func(t *testing.T, out string) {
		acts, err := ParseAptSimulation(out)
		if err != nil {
			requireNamesALine(t, err, out)
			return
		}
		for _, a := range acts {
			require.Regexp(t, debName, a.Name)
			if a.Kind == "Inst" || a.Kind == "Conf" {
				require.Regexp(t, debVersion, a.NewVersion)
			}
		}
	})
}

func FuzzParseAptSetUp(f *testing.F) {
	f.Add("Setting up foo (1.1) ...\nSetting up bar:amd64 (2:1.0-1) ...\n")
	f.Add("Setting up ")
	f.Fuzz(func(t *testing.T, out string) {
		names, err := ParseAptSetUp(out)
		if err != nil {
			requireNamesALine(t, err, out)
			return
		}
		for _, n := range names {
			require.Regexp(t, debName, n)
		}
	})
}

func FuzzParseCheckUpdate(f *testing.F) {
	f.Add(checkUpdate)
	f.Add("bar.noarch\n 1 t\n")
	f.Add("Security: kernel is an installed security update\n.x 1 t")
	f.Add("Obsoleting Packages")
	f.Fuzz(func(t *testing.T, out string) {
		ups, err := ParseCheckUpdate(out)
		if err != nil {
			requireNamesALine(t, err, out)
			return
		}
		for _, u := range ups {
			require.Regexp(t, rpmName, u.Name)
			require.Regexp(t, rpmArch, u.Arch)
			require.Regexp(t, rpmVersion, u.Version)
			require.Regexp(t, rpmRepo, u.Repo)
		}
	})
}

func FuzzParseTransaction(f *testing.F) {
	f.Add(dnfUpgrade, false)
	f.Add(dnfUpgrade, true)
	f.Add("Upgraded:\n  a-1-1.x\n", false)
	f.Add("Upgrading:\n x\n", true)
	f.Fuzz(func(t *testing.T, out string, table bool) {
		names, err := ParseTransaction(out, table, "Upgraded:", "Installed:", "Upgrading:")
		if err != nil {
			requireNamesALine(t, err, out)
			return
		}
		for _, n := range names {
			require.Regexp(t, rpmName, n)
		}
	})
}

// requireNamesALine checks that err starts with `line N "text": ` and that
// text is (the start of) line N of out.
func requireNamesALine(t *testing.T, err error, out string) {
	t.Helper()
	m := regexp.MustCompile(`^line ([0-9]+) ("(?:[^"\\]|\\.)*"): `).FindStringSubmatch(err.Error())
	require.NotNil(t, m, "error %q does not name a line", err)
	n, convErr := strconv.Atoi(m[1])
	require.NoError(t, convErr)
	quoted, convErr := strconv.Unquote(m[2])
	require.NoError(t, convErr)
	lines := strings.Split(out, "\n")
	require.LessOrEqual(t, n, len(lines))
	require.True(t, strings.Contains(lines[n-1], strings.TrimSuffix(quoted, "...")), "line %d is %q, error quotes %q", n, lines[n-1], quoted)
}
