package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/nodepatch/nodepatch/pkg/state"
	"github.com/nodepatch/nodepatch/pkg/status"
)

func newApproveCommand() *cobra.Command {
	var c clusterFlags
	cmd := &cobra.Command{
		Use:   "approve NODE GATE",
		Short: "Approve an approval gate (--gate) for a node's current cycle",
		Long: "Approve GATE for NODE's current cycle. Same as writing the annotation\n  " +
			state.ApprovalAnnotation("GATE") + "=<the cycle's id: the node's " + state.AnnotationCycleStarted + ">\n" +
			"An approval counts only for the cycle it names.",
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, err := c.client()
			if err != nil {
				return err
			}
			cycle, err := status.Approve(cmd.Context(), client, args[0], args[1])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "approved %s for node %s, cycle %s\n", args[1], args[0], cycle)
			return nil
		},
	}
	c.bind(cmd)
	return cmd
}
