package packages

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
)

// dnf drives dnf, and yum by the same options.
type dnf struct {
	prog string
}

// dnfLockMessages are rpm's and dnf's words for a lock held by another
// process. dnf waits on its own process lock by itself; rpm's transaction
// lock fails at once.
var dnfLockMessages = []string{
	"can't create transaction lock",
	"Existing lock /var/run/yum.pid",
	"is locked by another process",
}

func (d *dnf) isLocked(output string) bool {
	for _, m := range dnfLockMessages {
		if strings.Contains(output, m) {
			return true
		}
	}
	return false
}

func (d *dnf) name(op string) string { return filepath.Base(d.prog) + "-" + op }

func (d *dnf) refresh(ctx context.Context, x *executor) error {
	return check(x.run(ctx, d.name("makecache"), d.prog, nil, "-y", "makecache"))
}

// checkUpdate runs check-update (exit 100: updates, 0: none).
func (d *dnf) checkUpdate(ctx context.Context, x *executor, extra ...string) ([]RPMUpdate, error) {
	cmd, res, err := x.run(ctx, d.name("check-update"), d.prog, nil, append([]string{"-q", "check-update"}, extra...)...)
	if err != nil {
		return nil, err
	}
	switch res.ExitStatus {
	case 0:
		return nil, nil
	case 100:
	default:
		return nil, &CommandError{Command: cmd.String(), ExitStatus: res.ExitStatus, Output: res.Output}
	}
	if res.StdoutTruncated {
		return nil, fmt.Errorf("%s: output longer than the runner keeps", cmd)
	}
	updates, err := ParseCheckUpdate(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return updates, nil
}

func (d *dnf) pending(ctx context.Context, x *executor) (Pending, error) {
	all, err := d.checkUpdate(ctx, x)
	if err != nil {
		return Pending{}, err
	}
	sec, err := d.checkUpdate(ctx, x, "--security")
	if err != nil {
		return Pending{}, err
	}
	security := map[string]bool{}
	for _, u := range sec {
		security[u.Name] = true
	}
	var p Pending
	seen := map[string]bool{}
	for _, u := range all {
		if seen[u.Name] {
			continue // one line per architecture
		}
		seen[u.Name] = true
		if excluded(x.cfg.Exclude, u.Name) {
			p.Excluded = append(p.Excluded, u.Name)
			continue
		}
		p.All++
		p.Packages = append(p.Packages, u.Name)
		if security[u.Name] {
			p.Security++
			p.SecurityPackages = append(p.SecurityPackages, u.Name)
		}
	}
	return p, nil
}

func (d *dnf) apply(ctx context.Context, x *executor, mode Mode, downloadOnly bool) (Result, error) {
	args := []string{"-y", "upgrade"}
	name := d.name("upgrade")
	if mode == ModeSecurity {
		args = append(args, "--security")
	}
	if downloadOnly {
		args, name = append(args, "--downloadonly"), d.name("download")
	}
	for _, pat := range x.cfg.Exclude {
		args = append(args, "--exclude="+pat)
	}
	cmd, res, err := x.run(ctx, name, d.prog, nil, args...)
	out := report(cmd, res)
	if err := check(cmd, res, err); err != nil {
		return out, err
	}
	section := []string{"Upgraded:", "Installed:"}
	if downloadOnly {
		section = []string{"Upgrading:", "Installing dependencies:", "Installing:"}
	}
	if out.Packages, err = ParseTransaction(res.Stdout, downloadOnly, section...); err != nil {
		return out, fmt.Errorf("%s: %w", cmd, err)
	}
	return out, nil
}
