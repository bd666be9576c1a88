package packages

import (
	"fmt"
	"regexp"
	"strings"
)

// RPMUpdate is one row of dnf check-update: "bar.noarch  1.1-1  updates".
type RPMUpdate struct {
	Name, Arch, Version, Repo string
}

var (
	rpmName    = regexp.MustCompile(`^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$`)
	rpmArch    = regexp.MustCompile(`^[a-z0-9_]+$`)
	rpmVersion = regexp.MustCompile(`^(?:[0-9]+:)?[A-Za-z0-9._+~^-]+$`)
	rpmRepo    = regexp.MustCompile(`^@?[A-Za-z0-9_.:+-]+$`)
)

// ParseCheckUpdate parses the stdout of dnf -q check-update. Rows too wide
// for the terminal are split after the name; that is joined back. Anything
// that is not a row is an error naming the line.
func ParseCheckUpdate(out string) ([]RPMUpdate, error) {
	var updates []RPMUpdate
	var carry string // a name.arch whose version and repo are on the next line
	carryLine := 0
	for i, line := range strings.Split(out, "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
			continue
		case strings.HasPrefix(line, "Obsoleting Packages"):
			// What follows repeats upgrades as obsoletes pairs.
			return finishRows(updates, carry, carryLine)
		case strings.HasPrefix(line, "Security: "):
			continue // "Security: kernel-... is an installed security update"
		case carry == "" && len(fields) == 1:
			carry, carryLine = fields[0], i+1
			continue
		case carry != "" && len(fields) == 2:
			fields = append([]string{carry}, fields...)
			carry = ""
		}
		if carry != "" {
			return nil, fmt.Errorf("line %d %q: a package name with no version and repository after it", carryLine, clip(carry))
		}
		u, err := parseRow(fields)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", i+1, clip(line), err)
		}
		updates = append(updates, u)
	}
	return finishRows(updates, carry, carryLine)
}

func finishRows(updates []RPMUpdate, carry string, carryLine int) ([]RPMUpdate, error) {
	if carry != "" {
		return nil, fmt.Errorf("line %d %q: a package name with no version and repository after it", carryLine, clip(carry))
	}
	return updates, nil
}

func parseRow(fields []string) (RPMUpdate, error) {
	if len(fields) != 3 {
		return RPMUpdate{}, fmt.Errorf("want NAME.ARCH VERSION REPOSITORY, got %d fields", len(fields))
	}
	dot := strings.LastIndex(fields[0], ".")
	if dot <= 0 {
		return RPMUpdate{}, fmt.Errorf("%q is not NAME.ARCH", fields[0])
	}
	u := RPMUpdate{Name: fields[0][:dot], Arch: fields[0][dot+1:], Version: fields[1], Repo: fields[2]}
	switch {
	case !rpmName.MatchString(u.Name):
		return u, fmt.Errorf("bad package name %q", u.Name)
	case !rpmArch.MatchString(u.Arch):
		return u, fmt.Errorf("bad architecture %q", u.Arch)
	case !rpmVersion.MatchString(u.Version):
		return u, fmt.Errorf("bad version %q", u.Version)
	case !rpmRepo.MatchString(u.Repo):
		return u, fmt.Errorf("bad repository %q", u.Repo)
	}
	return u, nil
}

// ParseTransaction returns the package names listed under the given
// headings of a dnf transaction: after the run, "Upgraded:" and
// "Installed:" list NEVRAs in columns; before it (download only) the
// table's "Upgrading:" rows start with the name.
func ParseTransaction(out string, table bool, headings ...string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	in := false
	for i, line := range strings.Split(out, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case contains(headings, trimmed):
			in = true
			continue
		case trimmed == "" || !strings.HasPrefix(line, " "):
			in = false
			continue
		case !in:
			continue
		}
		entries := strings.Fields(trimmed)
		if table {
			if strings.HasPrefix(line, "  ") {
				continue // the rest of a row too wide for the terminal
			}
			entries = entries[:1]
		}
		for _, e := range entries {
			name := e
			if !table {
				var err error
				if name, err = nameOfNEVRA(e); err != nil {
					return nil, fmt.Errorf("line %d %q: %w", i+1, clip(line), err)
				}
			} else if !rpmName.MatchString(name) {
				return nil, fmt.Errorf("line %d %q: bad package name %q", i+1, clip(line), name)
			}
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	return names, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// nameOfNEVRA returns NAME from NAME-[EPOCH:]VERSION-RELEASE.ARCH.
func nameOfNEVRA(nevra string) (string, error) {
	dot := strings.LastIndex(nevra, ".")
	if dot <= 0 || !rpmArch.MatchString(nevra[dot+1:]) {
		return "", fmt.Errorf("%q is not NAME-VERSION-RELEASE.ARCH", nevra)
	}
	nvr := nevra[:dot]
	rel := strings.LastIndex(nvr, "-")
	if rel <= 0 {
		return "", fmt.Errorf("%q is not NAME-VERSION-RELEASE.ARCH", nevra)
	}
	ver := strings.LastIndex(nvr[:rel], "-")
	if ver <= 0 || !rpmVersion.MatchString(nvr[ver+1:]) {
		return "", fmt.Errorf("%q is not NAME-VERSION-RELEASE.ARCH", nevra)
	}
	name := nvr[:ver]
	if !rpmName.MatchString(name) {
		return "", fmt.Errorf("bad package name %q in %q", name, nevra)
	}
	return name, nil
}
