package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nodepatch/nodepatch/pkg/version"
)

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "nodepatch",
		Short:         "Patch node OS packages and reboot Kubernetes nodes safely, a few at a time",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newAgentCommand(), newControllerCommand(), newStatusCommand(), newPauseCommand(), newResumeCommand(), newApproveCommand(), newVersionCommand())
	root.AddCommand(newMigrateCommand())
	return root
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), version.Version) },
	}
}

// envThenValidate is a PreRunE: the NODEPATCH_* variables fill the flags not
// given, then the options are checked, so a bad value stops the command before
// it starts, naming the flag or the variable.
func envThenValidate(validate func() error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if err := applyEnv(cmd.Flags()); err != nil {
			return err
		}
		return validate()
	}
}

// envName is the environment variable that stands in for a flag.
func envName(flag string) string {
	return "NODEPATCH_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its NODEPATCH_*
// variable, if set. A bad value is an error naming the variable and the value.
func applyEnv(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		value, ok := os.LookupEnv(envName(f.Name))
		if err != nil || f.Changed || !ok {
			return
		}
		// An empty variable for a number, duration or switch is unset (a
		// downward-API label that is missing reads as ""), not a bad value.
		if value == "" && f.Value.Type() != "string" && f.Value.Type() != "stringSlice" && f.Value.Type() != "stringArray" {
			return
		}
		if setErr := flags.Set(f.Name, value); setErr != nil {
			err = fmt.Errorf("%s=%q: %w", envName(f.Name), value, setErr)
		}
	})
	return err
}
