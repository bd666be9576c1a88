// Package host is nodepatch's view of the node it runs on: running commands on
// the host, deciding whether the host needs a reboot and reading its boot id.
package host

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Default output limits. The combined tail is for humans (logs, reports); the
// stdout head is for parsers, which refuse truncated input.
const (
	DefaultMaxOutput = 64 << 10
	DefaultMaxStdout = 8 << 20
)

// Command is one program to run on the host.
type Command struct {
	// Name is a short name used for unit names and logs ("apt-upgrade").
	Name string
	// Args is the program and its arguments; Args[0] is looked up in PATH
	// on the host when it is not absolute.
	Args []string
	// Env holds extra KEY=VALUE pairs.
	Env []string
	// Timeout bounds the run; zero means only the context bounds it.
	Timeout time.Duration
	// MaxOutput bounds Result.Output (the tail kept); zero means DefaultMaxOutput.
	MaxOutput int
	// MaxStdout bounds Result.Stdout (the head kept); zero means DefaultMaxStdout.
	MaxStdout int
	// Detach: when Timeout or the context ends the run, stop waiting but let the
	// command finish (a package manager killed mid-transaction can leave the
	// host's package database broken). Runners list such commands as Running.
	Detach bool
}

// Result is what a command did. A non-zero ExitStatus is not an error.
type Result struct {
	// ExitStatus is the exit code, or 128+signal when a signal ended it.
	ExitStatus int
	// Output is the tail of stdout and stderr together, bounded by MaxOutput.
	Output string
	// Stdout is stdout alone, at most MaxStdout bytes, for parsers.
	Stdout string
	// StdoutTruncated tells that Stdout lost bytes past MaxStdout.
	StdoutTruncated bool
}

// Runner runs commands on the host. Run returns an error only when the command
// could not run or finish (not found, timed out, lost the bus); then the Result
// may still carry the output seen so far.
type Runner interface {
	Run(ctx context.Context, cmd Command) (Result, error)
}

// Validate checks a command before it is run.
func (c Command) Validate() error {
	if len(c.Args) == 0 || c.Args[0] == "" {
		return fmt.Errorf("command %q: no program given", c.Name)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("command %q: negative timeout %v", c.Name, c.Timeout)
	}
	for _, kv := range c.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("command %q: environment entry %q is not KEY=VALUE", c.Name, kv)
		}
	}
	return nil
}

// String renders the command line for logs and reports.
func (c Command) String() string {
	parts := make([]string, len(c.Args))
	for i, a := range c.Args {
		parts[i] = shellQuote(a)
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// OutputLimits returns the effective bounds of a command's output.
func (c Command) OutputLimits() (maxOutput, maxStdout int) {
	maxOutput, maxStdout = c.MaxOutput, c.MaxStdout
	if maxOutput <= 0 {
		maxOutput = DefaultMaxOutput
	}
	if maxStdout <= 0 {
		maxStdout = DefaultMaxStdout
	}
	return maxOutput, maxStdout
}
