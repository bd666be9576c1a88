package packages

import (
	"fmt"
	"regexp"
	"strings"
)

// AptAction is one line of apt-get -s output:
// "Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])".
type AptAction struct {
	// Kind is Inst, Conf, Remv or Purg.
	Kind string
	Name string
	// Arch is the architecture in "name:arch", if given there.
	Arch string
	// OldVersion is the installed version, "" for a new package.
	OldVersion string
	// NewVersion is the candidate, for Inst and Conf.
	NewVersion string
	// Releases are where the candidate comes from ("Label:Version/Suite").
	Releases []string
	// Security tells whether a release is a security pocket.
	Security bool
}

var (
	debName    = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]*$`)
	debVersion = regexp.MustCompile(`^[A-Za-z0-9.+~:_-]+$`)
)

// ParseAptSimulation parses apt-get -s output. Action lines must be well
// formed; everything else is prose and ignored.
func ParseAptSimulation(out string) ([]AptAction, error) {
	var actions []AptAction
	for i, line := range strings.Split(out, "\n") {
		kind, rest, _ := strings.Cut(line, " ")
		switch kind {
		case "Inst", "Conf", "Remv", "Purg":
		default:
			continue
		}
		act, err := parseAptAction(kind, rest)
		if err != nil {
			return nil, fmt.Errorf("line %d %q: %w", i+1, clip(line), err)
		}
		actions = append(actions, act)
	}
	return actions, nil
}

func parseAptAction(kind, rest string) (AptAction, error) {
	act := AptAction{Kind: kind}
	name, rest, _ := strings.Cut(rest, " ")
	act.Name, act.Arch, _ = strings.Cut(name, ":")
	if !debName.MatchString(act.Name) {
		return act, fmt.Errorf("bad package name %q", name)
	}
	if strings.HasPrefix(rest, "[") {
		old, after, ok := strings.Cut(rest[1:], "]")
		if !ok || !debVersion.MatchString(old) {
			return act, fmt.Errorf("bad installed version in %q", rest)
		}
		act.OldVersion, rest = old, strings.TrimPrefix(after, " ")
	}
	if kind == "Remv" || kind == "Purg" {
		return act, nil // "Remv name [ver]" may stop here
	}
	if !strings.HasPrefix(rest, "(") {
		return act, fmt.Errorf("no (version release [arch]) part")
	}
	inner, _, ok := strings.Cut(rest[1:], ")")
	if !ok {
		return act, fmt.Errorf("unclosed (version release [arch]) part")
	}
	ver, rels, _ := strings.Cut(inner, " ")
	if !debVersion.MatchString(ver) {
		return act, fmt.Errorf("bad candidate version %q", ver)
	}
	act.NewVersion = ver
	if i := strings.LastIndex(rels, " ["); i >= 0 && strings.HasSuffix(rels, "]") {
		rels = rels[:i]
	} else if strings.HasPrefix(rels, "[") && strings.HasSuffix(rels, "]") {
		rels = ""
	}
	for _, r := range strings.Split(rels, ", ") {
		if r = strings.TrimSpace(r); r != "" {
			act.Releases = append(act.Releases, r)
			act.Security = act.Security || isSecurityRelease(r)
		}
	}
	return act, nil
}

// isSecurityRelease recognises Debian's and Ubuntu's security pockets:
// "Debian-Security:12/stable-security", "Ubuntu:22.04/jammy-security".
func isSecurityRelease(rel string) bool {
	label, suite, _ := strings.Cut(rel, ":")
	if i := strings.LastIndex(suite, "/"); i >= 0 {
		suite = suite[i+1:]
	}
	return strings.EqualFold(label, "Debian-Security") || strings.HasSuffix(suite, "-security")
}

var setUpLine = regexp.MustCompile(`^Setting up ([a-z0-9][a-z0-9+.-]*)(?::[a-z0-9-]+)? \(([^()\s]+)\) \.\.\.$`)

// ParseAptSetUp returns the packages dpkg configured ("Setting up foo (1.1) ...")
// in apt-get install output.
func ParseAptSetUp(out string) ([]string, error) {
	var names []string
	seen := map[string]bool{}
	for i, line := range strings.Split(out, "\n") {
		line = strings.TrimRight(line, "\r")
		if !strings.HasPrefix(line, "Setting up ") {
			continue
		}
		m := setUpLine.FindStringSubmatch(line)
		if m == nil {
			return nil, fmt.Errorf("line %d %q: not \"Setting up NAME (VERSION) ...\"", i+1, clip(line))
		}
		if !seen[m[1]] {
			seen[m[1]] = true
			names = append(names, m[1])
		}
	}
	return names, nil
}

// clip shortens a line quoted in an error.
func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
