package packages

import (
	"context"
	"fmt"
	"strings"
)

// apt drives apt-get. Upgrades name the packages to upgrade
// (install --only-upgrade) rather than hold excluded ones, so the host's
// package state (holds, pins) is never changed.
type apt struct {
	prog string
}

// aptEnv keeps apt, dpkg and their hooks from asking anything.
var aptEnv = []string{
	"DEBIAN_FRONTEND=noninteractive",
	"APT_LISTCHANGES_FRONTEND=none",
	"NEEDRESTART_MODE=l",
}

// aptOptions make the output plain and keep existing configuration files.
var aptOptions = []string{
	"-q", "-o", "APT::Color=0", "-o", "Dpkg::Use-Pty=0",
}

// aptLockMessages are apt's and dpkg's words for a lock held by another
// process.
var aptLockMessages = []string{
	"Could not get lock",
	"Unable to acquire the dpkg frontend lock",
	"Unable to lock directory",
	"Unable to lock the administration directory",
	"dpkg frontend lock was locked by another process",
	"dpkg status database is locked by another process",
}

func (a *apt) isLocked(output string) bool {
	for _, m := range aptLockMessages {
		if strings.Contains(output, m) {
			return true
		}
	}
	return false
}

func (a *apt) args(args ...string) []string {
	return append(append([]string{}, aptOptions...), args...)
}

func (a *apt) refresh(ctx context.Context, x *executor) error {
	return check(x.run(ctx, "apt-update", a.prog, aptEnv, a.args("update")...))
}

// simulate runs apt-get -s with args and parses the actions it prints.
func (a *apt) simulate(ctx context.Context, x *executor, args ...string) ([]AptAction, error) {
	cmd, res, err := x.run(ctx, "apt-simulate", a.prog, aptEnv, a.args(append([]string{"-s"}, args...)...)...)
	if err := check(cmd, res, err); err != nil {
		return nil, err
	}
	if res.StdoutTruncated {
		return nil, fmt.Errorf("%s: output longer than the runner keeps", cmd)
	}
	actions, err := ParseAptSimulation(res.Stdout)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return actions, nil
}

func (a *apt) pending(ctx context.Context, x *executor) (Pending, error) {
	actions, err := a.simulate(ctx, x, "--with-new-pkgs", "upgrade")
	if err != nil {
		return Pending{}, err
	}
	var p Pending
	for _, act := range actions {
		if act.Kind != "Inst" || act.OldVersion == "" {
			continue // new dependencies are not updates of their own
		}
		if excluded(x.cfg.Exclude, act.Name) {
			p.Excluded = append(p.Excluded, act.Name)
			continue
		}
		p.All++
		p.Packages = append(p.Packages, act.Name)
		if act.Security {
			p.Security++
			p.SecurityPackages = append(p.SecurityPackages, act.Name)
		}
	}
	return p, nil
}

func (a *apt) apply(ctx context.Context, x *executor, mode Mode, downloadOnly bool) (Result, error) {
	p, err := a.pending(ctx, x)
	if err != nil {
		return Result{}, err
	}
	names := p.Packages
	if mode == ModeSecurity {
		names = p.SecurityPackages
	}
	if len(names) == 0 {
		return Result{}, nil
	}
	install := append([]string{"--no-remove", "install", "--only-upgrade"}, names...)
	// Check the plan first: a dependency must not drag an excluded package
	// along.
	plan, err := a.simulate(ctx, x, install...)
	if err != nil {
		return Result{}, err
	}
	for _, act := range plan {
		if act.Kind == "Inst" && excluded(x.cfg.Exclude, act.Name) {
			return Result{}, fmt.Errorf("upgrading %s would also upgrade excluded package %s", strings.Join(names, " "), act.Name)
		}
	}
	args := []string{"-y", "-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold"}
	name := "apt-upgrade"
	if downloadOnly {
		args, name = append(args, "-d"), "apt-download"
	}
	cmd, res, err := x.run(ctx, name, a.prog, aptEnv, a.args(append(args, install...)...)...)
	out := report(cmd, res)
	if err := check(cmd, res, err); err != nil {
		return out, err
	}
	if downloadOnly {
		out.Packages = planned(plan)
		return out, nil
	}
	if out.Packages, err = ParseAptSetUp(res.Stdout); err != nil {
		return out, fmt.Errorf("%s: %w", cmd, err)
	}
	return out, nil
}

func planned(plan []AptAction) []string {
	var names []string
	for _, act := range plan {
		if act.Kind == "Inst" {
			names = append(names, act.Name)
		}
	}
	return names
}
