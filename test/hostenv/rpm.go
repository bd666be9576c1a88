package hostenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// RPM describes a test package.
type RPM struct {
	Name    string
	Version string
}

// RPMRepo is a createrepo_c repository; Security names the packages its
// updateinfo lists in a security advisory.
type RPMRepo struct {
	Dir      string
	Security []RPM
}

// NewRPMRepo creates an empty repository.
func NewRPMRepo(t testing.TB, dir string) *RPMRepo {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	r := &RPMRepo{Dir: dir}
	r.Publish(t)
	return r
}

const specTemplate = `Name: %[1]s
Version: %[2]s
Release: 1
Summary: nodepatch test package
License: MIT
BuildArch: noarch
%%description
nodepatch test package
%%install
mkdir -p %%{buildroot}/usr/share/%[1]s
echo %[2]s > %%{buildroot}/usr/share/%[1]s/version
%%files
/usr/share/%[1]s/version
`

// Add builds rpms into the repository with rpmbuild.
func (r *RPMRepo) Add(t testing.TB, rpms ...RPM) {
	t.Helper()
	RequireCommand(t, "rpmbuild", "rpm")
	for _, p := range rpms {
		top := t.TempDir()
		spec := filepath.Join(top, p.Name+".spec")
		require.NoError(t, os.WriteFile(spec, []byte(fmt.Sprintf(specTemplate, p.Name, p.Version)), 0o644))
		out, err := exec.Command("rpmbuild", "-bb", "--quiet", "--define", "_topdir "+top,
			"--define", "_build_id_links none", spec).CombinedOutput()
		require.NoError(t, err, "rpmbuild %s: %s", spec, out)
		built := filepath.Join(top, "RPMS/noarch", fmt.Sprintf("%s-%s-1.noarch.rpm", p.Name, p.Version))
		b, err := os.ReadFile(built)
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(r.Dir, filepath.Base(built)), b, 0o644))
	}
}

// Publish writes the metadata, with an updateinfo advisory for Security.
func (r *RPMRepo) Publish(t testing.TB) {
	t.Helper()
	RequireCommand(t, "createrepo_c", "createrepo-c")
	out, err := exec.Command("createrepo_c", "-q", r.Dir).CombinedOutput()
	require.NoError(t, err, "createrepo_c: %s", out)
	if len(r.Security) == 0 {
		return
	}
	var pkgs strings.Builder
	for _, p := range r.Security {
		fmt.Fprintf(&pkgs, `<package name="%[1]s" version="%[2]s" release="1" epoch="0" arch="noarch"><filename>%[1]s-%[2]s-1.noarch.rpm</filename></package>`, p.Name, p.Version)
	}
	info := `<?xml version="1.0" encoding="UTF-8"?>
<updates><update from="tests@nodepatch.invalid" status="stable" type="security" version="2.0">
<id>NODEPATCH-TEST:0001</id><title>test security update</title><severity>Important</severity>
<issued date="2026-01-01 00:00:00"/><description>test</description>
<pkglist><collection short="t"><name>t</name>` + pkgs.String() + `</collection></pkglist>
</update></updates>
`
	f := filepath.Join(t.TempDir(), "updateinfo.xml")
	require.NoError(t, os.WriteFile(f, []byte(info), 0o644))
	out, err = exec.Command("modifyrepo_c", "--mdtype=updateinfo", f, filepath.Join(r.Dir, "repodata")).CombinedOutput()
	require.NoError(t, err, "modifyrepo_c: %s", out)
}

// DnfRoot is an installroot that dnf manages from outside.
type DnfRoot struct {
	Root string
}

// NewDnfRoot makes an installroot whose repositories are repos.
func NewDnfRoot(t testing.TB, repos ...*RPMRepo) *DnfRoot {
	t.Helper()
	RequireCommand(t, "dnf", "dnf")
	root := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc/yum.repos.d"), 0o755))
	var conf strings.Builder
	for i, r := range repos {
		fmt.Fprintf(&conf, "[test%d]\nname=test%d\nbaseurl=file://%s\ngpgcheck=0\nmetadata_expire=0\n\n", i, i, r.Dir)
	}
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/yum.repos.d/test.repo"), []byte(conf.String()), 0o644))
	return &DnfRoot{Root: root}
}

// Options are dnf's options for the root. --disableplugin=local keeps
// Debian's dnf from writing to the machine's /var/lib/dnf.
func (r *DnfRoot) Options() []string {
	return []string{"--installroot=" + r.Root, "--releasever=9", "--disableplugin=local",
		"--setopt=reposdir=" + filepath.Join(r.Root, "etc/yum.repos.d"),
		"--setopt=install_weak_deps=False", "--nogpgcheck"}
}

// Dnf runs dnf on the root for test setup and fails on error.
func (r *DnfRoot) Dnf(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("dnf", append(append([]string{"-y"}, r.Options()...), args...)...).CombinedOutput()
	require.NoError(t, err, "dnf %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// Version returns the installed version of a package, "" when not installed.
func (r *DnfRoot) Version(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command("rpm", "--root="+r.Root, "-q", "--qf", "%{VERSION}", name).Output()
	if err != nil {
		return ""
	}
	return string(out)
}

// RPMLockFile is rpm's transaction lock in the root (Debian's rpm keeps its
// database in /root/.rpmdb).
func (r *DnfRoot) RPMLockFile() string { return filepath.Join(r.Root, "root/.rpmdb/.rpm.lock") }
