package reboot

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/pkg/host"
)

func TestCommandReboot(t *testing.T) {
	ctx := context.Background()
	marker := filepath.Join(t.TempDir(), "rebooted")
	c := &Command{Runner: host.NewDirectRunner("/"), Script: "echo reboot > " + marker}
	require.NoError(t, c.Reboot(ctx))
	b, err := os.ReadFile(marker)
	require.NoError(t, err)
	require.Equal(t, "reboot\n", string(b))

	c.Script = "echo cannot reboot now >&2; exit 4"
	err = c.Reboot(ctx)
	require.ErrorContains(t, err, "exited 4")
	require.ErrorContains(t, err, "cannot reboot now")

	c.Script = " "
	require.ErrorContains(t, c.Reboot(ctx), "empty script")
}
