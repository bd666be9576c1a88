package host

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func sh(name, script string) Command {
	return Command{Name: name, Args: []string{"/bin/sh", "-c", script}}
}

func TestDirectRunnerStatusAndOutput(t *testing.T) {
	ctx := context.Background()
	r := NewDirectRunner("/")

	res, err := r.Run(ctx, sh("ok", "echo out; echo err >&2"))
	require.NoError(t, err)
	require.Equal(t, 0, res.ExitStatus)
	require.Equal(t, "out\n", res.Stdout)
	require.Contains(t, res.Output, "out\n")
	require.Contains(t, res.Output, "err\n")

	res, err = r.Run(ctx, sh("fail", "echo failing; exit 7"))
	require.NoError(t, err, "a non-zero exit is not an error")
	require.Equal(t, 7, res.ExitStatus)
	require.Equal(t, "failing\n", res.Output)

	res, err = r.Run(ctx, sh("signal", "kill -TERM $$"))
	require.NoError(t, err)
	require.Equal(t, 128+int(syscall.SIGTERM), res.ExitStatus)

	c := sh("env", `printf %s "$NODEPATCH_TEST"`)
	c.Env = []string{"NODEPATCH_TEST=a b"}
	res, err = r.Run(ctx, c)
	require.NoError(t, err)
	require.Equal(t, "a b", res.Stdout)
}

func TestDirectRunnerBoundsOutput(t *testing.T) {
	c := sh("big", "seq 1 100000; echo done")
	c.MaxOutput = 100
	c.MaxStdout = 50
	res, err := NewDirectRunner("/").Run(context.Background(), c)
	require.NoError(t, err)
	require.LessOrEqual(t, len(res.Output), 100)
	require.True(t, strings.HasSuffix(res.Output, "done\n"), res.Output)
	require.Len(t, res.Stdout, 50)
	require.True(t, res.StdoutTruncated)
	require.True(t, strings.HasPrefix(res.Stdout, "1\n2\n3\n"))
}

func TestDirectRunnerTimeoutKillsTheGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "pid")
	// The grandchild keeps stdout open: without killing the group, Run would
	// wait for it.
	c := sh("hang", "sleep 300 & echo $! > "+pidFile+"; echo started; wait")
	c.Timeout = 500 * time.Millisecond
	res, err := NewDirectRunner("/").Run(context.Background(), c)
	require.ErrorContains(t, err, `command "hang"`)
	require.ErrorContains(t, err, "timed out after 500ms")
	require.Contains(t, res.Output, "started")

	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid := strings.TrimSpace(string(b))
	require.Eventually(t, func() bool {
		// Gone, or a zombie waiting for its reaper.
		st, err := os.ReadFile("/proc/" + pid + "/stat")
		return err != nil || strings.Contains(string(st), ") Z ")
	}, 10*time.Second, 20*time.Millisecond, "grandchild %s survived the timeout", pid)
}

func TestDirectRunnerErrors(t *testing.T) {
	ctx := context.Background()
	r := NewDirectRunner("/")
	_, err := r.Run(ctx, Command{Name: "missing", Args: []string{"nodepatch-no-such-program"}})
	require.ErrorContains(t, err, "nodepatch-no-such-program")

	_, err = r.Run(ctx, Command{Name: "empty"})
	require.ErrorContains(t, err, `command "empty": no program`)

	_, err = r.Run(ctx, Command{Name: "env", Args: []string{"true"}, Env: []string{"NOEQUALS"}})
	require.ErrorContains(t, err, `"NOEQUALS" is not KEY=VALUE`)

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = r.Run(cctx, sh("canceled", "sleep 10"))
	require.ErrorIs(t, err, context.Canceled)
}

// TestDirectRunnerChroot runs a static program inside a host root, as a
// privileged pod that mounts the host at /host would.
func TestDirectRunnerChroot(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(t.TempDir(), "main.go")
	require.NoError(t, os.WriteFile(src, []byte(`package main

import ("fmt"; "os")

func main() {
	b, err := os.ReadFile("/etc/marker")
	if err != nil { fmt.Println(err); os.Exit(3) }
	wd, _ := os.Getwd()
	fmt.Printf("%s %s %s", b, wd, os.Args[1])
}
`), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	require.NoError(t, os.Symlink("usr/bin", filepath.Join(root, "bin")))
	require.NoError(t, os.WriteFile(filepath.Join(root, "etc/marker"), []byte("inside"), 0o644))
	build := exec.Command("go", "build", "-o", filepath.Join(root, "usr/bin/probe"), src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	r := NewDirectRunner(root)
	for _, prog := range []string{"probe", "/bin/probe", "/usr/bin/probe"} {
		res, err := r.Run(context.Background(), Command{Name: "probe", Args: []string{prog, "arg"}})
		require.NoError(t, err, prog)
		require.Equal(t, 0, res.ExitStatus, res.Output)
		require.Equal(t, "inside / arg", res.Stdout)
	}
	_, err = r.Run(context.Background(), Command{Name: "sh", Args: []string{"sh", "-c", "true"}})
	require.ErrorContains(t, err, `program "sh" not found in "`+root+`"`)
	_, err = r.Run(context.Background(), Command{Name: "rel", Args: []string{"usr/bin/probe"}})
	require.ErrorContains(t, err, "bare name or an absolute path")
}
