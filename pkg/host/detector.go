package host

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"
)

// RebootCheck is the verdict of a Detector.
type RebootCheck struct {
	// Required tells whether any source asks for a reboot.
	Required bool
	// Reasons says which sources asked, for logs and events.
	Reasons []string
	// Packages lists the packages that asked for it, when known
	// (reboot-required.pkgs, dnf needs-restarting).
	Packages []string
}

// Detector decides whether the host needs a reboot. Every configured source
// is consulted; any one of them is enough.
type Detector struct {
	// HostRoot is where the host's "/" is seen by the agent ("/" or e.g. "/host").
	HostRoot string
	// SentinelFile is a host path whose existence means a reboot is needed
	// (Debian's /var/run/reboot-required); "" disables it. Its packages are
	// read from the same path with ".pkgs" appended.
	SentinelFile string
	// SentinelCommand is run with /bin/sh -c through Runner; exit 0 means a
	// reboot is needed, 1 (or any other status) means not. "" disables it.
	SentinelCommand string
	// NeedsRestarting, when not empty, is a command like
	// ["dnf", "needs-restarting", "-r"] run through Runner: exit 1 means a
	// reboot is needed, 0 means not, anything else is an error.
	NeedsRestarting []string
	// NeedsRestartingEnv is extra environment for NeedsRestarting.
	NeedsRestartingEnv []string
	// Runner runs the commands; required when a command is configured.
	Runner Runner
	// Timeout bounds each command; zero means one minute.
	Timeout time.Duration
}

const defaultCheckTimeout = time.Minute

// RebootRequired consults every configured source.
func (d *Detector) RebootRequired(ctx context.Context) (RebootCheck, error) {
	var check RebootCheck
	if d.SentinelFile != "" {
		if err := d.checkSentinelFile(&check); err != nil {
			return RebootCheck{}, err
		}
	}
	if d.SentinelCommand != "" {
		if err := d.checkSentinelCommand(ctx, &check); err != nil {
			return RebootCheck{}, err
		}
	}
	if len(d.NeedsRestarting) > 0 {
		if err := d.checkNeedsRestarting(ctx, &check); err != nil {
			return RebootCheck{}, err
		}
	}
	return check, nil
}

func (d *Detector) checkSentinelFile(check *RebootCheck) error {
	p, err := ResolveInRoot(d.HostRoot, d.SentinelFile)
	if err != nil {
		return fmt.Errorf("sentinel file: %w", err)
	}
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("sentinel file %s: %w", d.SentinelFile, err)
	}
	check.Required = true
	check.Reasons = append(check.Reasons, fmt.Sprintf("sentinel file %s exists", d.SentinelFile))
	pkgs, err := readPackageList(p + ".pkgs")
	if err != nil {
		return fmt.Errorf("sentinel file %s: %w", d.SentinelFile, err)
	}
	check.addPackages(pkgs...)
	return nil
}

// readPackageList reads reboot-required.pkgs: one package name a line.
func readPackageList(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read package list: %w", err)
	}
	defer f.Close()
	var pkgs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name := strings.TrimSpace(sc.Text()); name != "" {
			pkgs = append(pkgs, name)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read package list %s: %w", path, err)
	}
	return pkgs, nil
}

func (c *RebootCheck) addPackages(names ...string) {
	for _, n := range names {
		dup := false
		for _, have := range c.Packages {
			dup = dup || have == n
		}
		if !dup {
			c.Packages = append(c.Packages, n)
		}
	}
}

func (d *Detector) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return defaultCheckTimeout
}

func (d *Detector) checkSentinelCommand(ctx context.Context, check *RebootCheck) error {
	if d.Runner == nil {
		return errors.New("sentinel command: no runner configured")
	}
	cmd := Command{Name: "sentinel-command", Args: []string{"/bin/sh", "-c", d.SentinelCommand}, Timeout: d.timeout()}
	res, err := d.Runner.Run(ctx, cmd)
	if err != nil {
		return fmt.Errorf("sentinel command %q: %w", d.SentinelCommand, err)
	}
	if res.ExitStatus == 0 {
		check.Required = true
		check.Reasons = append(check.Reasons, fmt.Sprintf("sentinel command %q exited 0", d.SentinelCommand))
	}
	return nil
}

func (d *Detector) checkNeedsRestarting(ctx context.Context, check *RebootCheck) error {
	if d.Runner == nil {
		return errors.New("needs-restarting: no runner configured")
	}
	cmd := Command{Name: "needs-restarting", Args: d.NeedsRestarting, Env: d.NeedsRestartingEnv, Timeout: d.timeout()}
	res, err := d.Runner.Run(ctx, cmd)
	if err != nil {
		return fmt.Errorf("needs-restarting: %w", err)
	}
	switch res.ExitStatus {
	case 0:
		return nil
	case 1:
		// dnf also exits 1 for an unknown command (no dnf-plugins-core):
		// only the plugin's own verdict counts.
		if !strings.Contains(res.Stdout, "Reboot is required") {
			return fmt.Errorf("needs-restarting (%s) exited 1 without saying a reboot is required: %s", cmd, LastLines(res.Output, 5))
		}
		check.Required = true
		check.Reasons = append(check.Reasons, fmt.Sprintf("%s: core packages updated since boot", cmd))
		check.addPackages(ParseNeedsRestarting(res.Stdout)...)
		return nil
	default:
		return fmt.Errorf("needs-restarting (%s) exited %d: %s", cmd, res.ExitStatus, LastLines(res.Output, 5))
	}
}

// ParseNeedsRestarting extracts the package names dnf needs-restarting -r
// lists ("  * kernel"). Lines of other shapes are prose and ignored.
func ParseNeedsRestarting(out string) []string {
	var pkgs []string
	for _, line := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "* ")
		if name := strings.TrimSpace(rest); ok && name != "" && !strings.ContainsAny(name, " \t") {
			pkgs = append(pkgs, name)
		}
	}
	return pkgs
}

// LastLines returns the last n non-empty lines of s, joined by " | ".
func LastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
