// Package hostenv holds fixtures for tests of the host layer: a private
// dbus-daemon, a systemd Manager test double on it, package repositories and
// throwaway roots for apt and dnf, and a systemd-nspawn node.
package hostenv

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Bus is a private dbus-daemon of type "system" run by a test.
type Bus struct {
	// Address is the bus address, unix:path=....
	Address string
	// Socket is the path of its socket.
	Socket string
	cmd    *exec.Cmd
	waited chan struct{}
}

const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=%s</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
`

// RequireCommand fails the test with a clear message when a program that a
// fixture needs is not installed.
func RequireCommand(t testing.TB, prog, debPackage string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	require.NoError(t, err, "%s is needed by this test: install the Debian package %q (.ci/run installs it)", prog, debPackage)
	return p
}

// StartBus starts a private system bus; it is killed when the test ends.
func StartBus(t testing.TB) *Bus {
	t.Helper()
	daemon := RequireCommand(t, "dbus-daemon", "dbus")
	dir := t.TempDir()
	socket := filepath.Join(dir, "system_bus_socket")
	conf := filepath.Join(dir, "bus.conf")
	require.NoError(t, os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, socket)), 0o644))

	cmd := exec.Command(daemon, "--config-file="+conf, "--print-address=1", "--nofork", "--nopidfile", "--nosyslog")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	b := &Bus{Socket: socket, cmd: cmd, waited: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(b.waited) }()
	t.Cleanup(b.Kill)

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- strings.TrimSpace(line)
	}()
	select {
	case b.Address = <-lines:
	case <-time.After(10 * time.Second):
		t.Fatalf("dbus-daemon (pid %d) printed no address within 10s", cmd.Process.Pid)
	}
	require.True(t, strings.HasPrefix(b.Address, "unix:"), "dbus-daemon printed %q, not an address", b.Address)
	return b
}

// Kill stops the daemon (its process group) and waits for it: every client
// sees its connection close, as when a host goes down.
func (b *Bus) Kill() {
	select {
	case <-b.waited:
		return
	default:
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.waited
}
