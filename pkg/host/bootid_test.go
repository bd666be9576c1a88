package host

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestReadBootID(t *testing.T) {
	id, err := ReadBootID("/proc/sys/kernel/random/boot_id")
	require.NoError(t, err)
	require.Regexp(t, `^[0-9a-f-]{36}$`, id)

	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	require.NoError(t, os.WriteFile(good, []byte("  3F2504E0-4F89-11D3-9A0C-0305E82C3301\n"), 0o644))
	id, err = ReadBootID(good)
	require.NoError(t, err)
	require.Equal(t, "3f2504e0-4f89-11d3-9a0c-0305e82c3301", id)

	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("not-a-boot-id\n"), 0o644))
	_, err = ReadBootID(bad)
	require.ErrorContains(t, err, bad)
	require.ErrorContains(t, err, `"not-a-boot-id"`)

	missing := filepath.Join(dir, "missing")
	_, err = ReadBootID(missing)
	require.ErrorContains(t, err, missing)
}
