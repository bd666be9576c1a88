package systemd

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/test/hostenv"
)

// TestRunnerOnRealSystemd checks the runner's reading of unit results
// against systemd itself, in a node booted by systemd-nspawn.
func TestRunnerOnRealSystemd(t *testing.T) {
	ctx := context.Background()
	node := hostenv.StartNode(t, hostenv.NodeConfig{Name: "nodepatch-runner-node"})
	r := &Runner{Address: node.BusAddress, OutputDir: "/var/lib/nodepatch", LocalOutputDir: node.OutputDir}

	c := host.Command{Name: "status", Args: []string{"/bin/sh", "-c", `echo "out $GREETING"; echo err >&2; exit 7`},
		Env: []string{"GREETING=hello"}, Timeout: time.Minute}
	res, err := r.Run(ctx, c)
	require.NoError(t, err)
	require.Equal(t, 7, res.ExitStatus)
	require.Equal(t, "out hello\n", res.Stdout)
	require.Equal(t, "out hello\nerr\n", res.Output)

	// A bare program name is found on the node's PATH; arguments stay literal.
	res, err = r.Run(ctx, host.Command{Name: "literal", Args: []string{"printf", "%s|", "${HOME}", "$$"}})
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitStatus, res.Output)
	require.Equal(t, "${HOME}|$$|", res.Stdout)

	res, err = r.Run(ctx, host.Command{Name: "killed", Args: []string{"/bin/sh", "-c", "kill -TERM $$"}})
	require.NoError(t, err)
	require.Equal(t, 128+15, res.ExitStatus)

	_, err = r.Run(ctx, host.Command{Name: "missing", Args: []string{"/nonexistent/program"}})
	require.ErrorContains(t, err, "systemd could not execute /nonexistent/program")
	require.ErrorContains(t, err, "exit status 203")

	_, err = r.Run(ctx, host.Command{Name: "slow", Args: []string{"sleep", "120"}, Timeout: time.Second})
	require.ErrorContains(t, err, "timed out after 1s")
	require.ErrorContains(t, err, "result timeout")

	// Every unit was stopped or reset, so none is left loaded.
	conn, err := Connect(ctx, node.BusAddress)
	require.NoError(t, err)
	defer conn.Close()
	left, err := conn.ListUnitsByPatternsContext(ctx, nil, []string{"nodepatch-*"})
	require.NoError(t, err)
	require.Empty(t, left)
}
