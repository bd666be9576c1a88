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

// Deb describes a test package.
type Deb struct {
	Name    string
	Version string
	Depends string
	// RebootRequired makes the postinst ask for a reboot as Debian's kernel
	// packages do: touch $DPKG_ROOT/var/run/reboot-required and append the
	// package name to reboot-required.pkgs.
	RebootRequired bool
	// PostinstFails makes the postinst print a message and exit 1 first.
	PostinstFails bool
}

// AptRepo is a flat repository ("deb [trusted=yes] file:/dir ./").
type AptRepo struct {
	Dir string
	// Label and Suite go into its Release file; a Suite ending in
	// "-security" makes it a security pocket.
	Label, Suite string
}

// NewAptRepo creates an empty repository folder.
func NewAptRepo(t testing.TB, dir, label, suite string) *AptRepo {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	r := &AptRepo{Dir: dir, Label: label, Suite: suite}
	r.Publish(t)
	return r
}

// Add builds debs into the repository; Publish makes them visible.
func (r *AptRepo) Add(t testing.TB, debs ...Deb) {
	t.Helper()
	for _, d := range debs {
		BuildDeb(t, d, r.Dir)
	}
}

// Publish writes Packages and Release.
func (r *AptRepo) Publish(t testing.TB) {
	t.Helper()
	RequireCommand(t, "dpkg-scanpackages", "dpkg-dev")
	RequireCommand(t, "apt-ftparchive", "apt-utils")
	scan := exec.Command("dpkg-scanpackages", "--multiversion", ".", "/dev/null")
	scan.Dir = r.Dir
	pkgs, err := scan.Output()
	require.NoError(t, err, "dpkg-scanpackages in %s", r.Dir)
	require.NoError(t, os.WriteFile(filepath.Join(r.Dir, "Packages"), pkgs, 0o644))
	release := exec.Command("apt-ftparchive",
		"-o", "APT::FTPArchive::Release::Origin="+r.Label,
		"-o", "APT::FTPArchive::Release::Label="+r.Label,
		"-o", "APT::FTPArchive::Release::Suite="+r.Suite,
		"-o", "APT::FTPArchive::Release::Codename="+r.Suite,
		"release", ".")
	release.Dir = r.Dir
	_ = os.Remove(filepath.Join(r.Dir, "Release"))
	rel, err := release.Output()
	require.NoError(t, err, "apt-ftparchive release in %s", r.Dir)
	require.NoError(t, os.WriteFile(filepath.Join(r.Dir, "Release"), rel, 0o644))
}

// SourceLine is the repository's sources.list line as seen at dir.
func (r *AptRepo) SourceLine(dir string) string {
	return fmt.Sprintf("deb [trusted=yes] file:%s ./", dir)
}

// BuildDeb builds a .deb into dir with dpkg-deb.
func BuildDeb(t testing.TB, d Deb, dir string) string {
	t.Helper()
	RequireCommand(t, "dpkg-deb", "dpkg")
	src := t.TempDir()
	require.NoError(t, os.MkdirAll(filepath.Join(src, "DEBIAN"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(src, "usr/share", d.Name), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "usr/share", d.Name, "version"), []byte(d.Version+"\n"), 0o644))
	control := fmt.Sprintf("Package: %s\nVersion: %s\nArchitecture: all\nMaintainer: nodepatch tests <tests@nodepatch.invalid>\nDescription: nodepatch test package\n", d.Name, d.Version)
	if d.Depends != "" {
		control += "Depends: " + d.Depends + "\n"
	}
	require.NoError(t, os.WriteFile(filepath.Join(src, "DEBIAN/control"), []byte(control), 0o644))
	postinst := "#!/bin/sh\nset -e\n"
	if d.PostinstFails {
		postinst += "echo \"" + d.Name + ": postinst cannot configure this package\" >&2\nexit 1\n"
	}
	if d.RebootRequired {
		postinst += `if [ "$1" = configure ]; then
  touch "$DPKG_ROOT/var/run/reboot-required"
  echo ` + d.Name + ` >> "$DPKG_ROOT/var/run/reboot-required.pkgs"
fi
`
	}
	require.NoError(t, os.WriteFile(filepath.Join(src, "DEBIAN/postinst"), []byte(postinst), 0o755))
	out := filepath.Join(dir, fmt.Sprintf("%s_%s_all.deb", d.Name, d.Version))
	b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", src, out).CombinedOutput()
	require.NoError(t, err, "dpkg-deb: %s", b)
	return out
}

// AptRoot is a bare target root that apt and dpkg manage from outside,
// with no chroot, through APT_CONFIG.
type AptRoot struct {
	Root       string
	ConfigFile string
}

// NewAptRoot makes an empty dpkg database under a temporary root whose
// sources are the given repositories. Its var/run is a relative link to
// run, so maintainer scripts, which run outside any chroot here, stay
// inside the root.
func NewAptRoot(t testing.TB, repos ...*AptRepo) *AptRoot {
	t.Helper()
	RequireCommand(t, "apt-get", "apt")
	root := t.TempDir()
	for _, d := range []string{"var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers",
		"var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "etc/apt/apt.conf.d",
		"etc/apt/sources.list.d", "etc/apt/preferences.d", "run", "var/log"} {
		require.NoError(t, os.MkdirAll(filepath.Join(root, d), 0o755))
	}
	require.NoError(t, os.Symlink("../run", filepath.Join(root, "var/run")))
	for _, f := range []string{"var/lib/dpkg/status", "var/lib/dpkg/available"} {
		require.NoError(t, os.WriteFile(filepath.Join(root, f), nil, 0o644))
	}
	var sources []string
	for _, r := range repos {
		sources = append(sources, r.SourceLine(r.Dir))
	}
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(strings.Join(sources, "\n")+"\n"), 0o644))
	conf := fmt.Sprintf(`Dir "%[1]s/";
Dir::State::status "%[1]s/var/lib/dpkg/status";
Dir::Etc::main "%[1]s/etc/apt/apt.conf";
Dir::Etc::parts "%[1]s/etc/apt/apt.conf.d";
Dir::Etc::SourceList "%[1]s/etc/apt/sources.list";
Dir::Etc::SourceParts "%[1]s/etc/apt/sources.list.d";
Dir::Etc::Preferences "%[1]s/etc/apt/preferences";
Dir::Etc::PreferencesParts "%[1]s/etc/apt/preferences.d";
DPkg::Options:: "--root=%[1]s";
DPkg::Options:: "--force-script-chrootless";
DPkg::Options:: "--log=%[1]s/var/log/dpkg.log";
DPkg::Chroot-Directory "";
`, root)
	cf := filepath.Join(t.TempDir(), "apt.conf")
	require.NoError(t, os.WriteFile(cf, []byte(conf), 0o644))
	return &AptRoot{Root: root, ConfigFile: cf}
}

// Env is the environment that points apt at the root.
func (r *AptRoot) Env() []string { return []string{"APT_CONFIG=" + r.ConfigFile} }

// AptGet runs apt-get on the root for test setup and fails on error.
func (r *AptRoot) AptGet(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("apt-get", append([]string{"-q", "-y"}, args...)...)
	cmd.Env = append(append(os.Environ(), "DEBIAN_FRONTEND=noninteractive"), r.Env()...)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "apt-get %s: %s", strings.Join(args, " "), out)
	return string(out)
}

// Version returns the installed version of a package, "" when not installed.
func (r *AptRoot) Version(t testing.TB, name string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "--admindir="+filepath.Join(r.Root, "var/lib/dpkg"),
		"-W", "-f=${db:Status-Abbrev} ${Version}", name).Output()
	if err != nil {
		return ""
	}
	// "ii 1.0" when installed, e.g. "iF 1.1" when half configured.
	f := strings.Fields(string(out))
	if len(f) != 2 {
		return strings.TrimSpace(string(out))
	}
	if f[0] != "ii" {
		return f[0] + " " + f[1]
	}
	return f[1]
}
