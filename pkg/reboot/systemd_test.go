package reboot

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/stretchr/testify/require"

	"github.com/nodepatch/nodepatch/test/hostenv"
)

// syncBuffer is a log sink the rebooter may write from its own goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newSystemd(address string) (*Systemd, *syncBuffer) {
	logs := &syncBuffer{}
	return &Systemd{Address: address, Logger: slog.New(slog.NewTextHandler(logs, nil))}, logs
}

// rebootWithin runs Reboot in the background and fails the test unless it
// returns within limit: the rebooter must never wait without a deadline.
func rebootWithin(t *testing.T, s *Systemd, ctx context.Context, limit time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- s.Reboot(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("Reboot did not return within %v", limit)
		return nil
	}
}

func TestSystemdRebootJobDone(t *testing.T) {
	bus := hostenv.StartBus(t)
	fake := hostenv.StartFakeSystemd(t, bus.Address)
	s, logs := newSystemd(bus.Address)

	require.NoError(t, rebootWithin(t, s, context.Background(), 30*time.Second))
	calls := fake.Calls()
	require.Len(t, calls, 1)
	require.Equal(t, hostenv.Call{Method: "StartUnit", Unit: "reboot.target", Mode: "replace-irreversibly"}, calls[0])
	require.Contains(t, logs.String(), "reboot job done")
}

func TestSystemdRebootUsesEnvironmentAddress(t *testing.T) {
	bus := hostenv.StartBus(t)
	fake := hostenv.StartFakeSystemd(t, bus.Address)
	t.Setenv("DBUS_SYSTEM_BUS_ADDRESS", bus.Address)
	s, _ := newSystemd("")
	require.NoError(t, rebootWithin(t, s, context.Background(), 30*time.Second))
	require.Len(t, fake.Calls(), 1)
}

func TestSystemdRebootRefused(t *testing.T) {
	bus := hostenv.StartBus(t)
	fake := hostenv.StartFakeSystemd(t, bus.Address)
	fake.OnStartUnit(func(unit, mode string) (string, *godbus.Error) {
		return "", hostenv.AccessDenied("reboot")
	})
	s, _ := newSystemd(bus.Address)
	err := rebootWithin(t, s, context.Background(), 30*time.Second)
	require.ErrorContains(t, err, "start reboot.target (replace-irreversibly)")
	require.ErrorContains(t, err, "Access denied: reboot")

	fake.OnStartUnit(func(unit, mode string) (string, *godbus.Error) { return "", hostenv.NoSuchUnit(unit) })
	require.ErrorContains(t, rebootWithin(t, s, context.Background(), 30*time.Second), "Unit reboot.target not loaded")
}

func TestSystemdRebootJobFailed(t *testing.T) {
	bus := hostenv.StartBus(t)
	fake := hostenv.StartFakeSystemd(t, bus.Address)
	fake.OnStartUnit(func(unit, mode string) (string, *godbus.Error) { return "canceled", nil })
	s, _ := newSystemd(bus.Address)
	err := rebootWithin(t, s, context.Background(), 30*time.Second)
	require.ErrorContains(t, err, `ended with result "canceled"`)
}

// TestSystemdRebootResultNeverComes is the usual end of a real reboot: the
// job is accepted and the host goes down before JobRemoved.
func TestSystemdRebootResultNeverComes(t *testing.T) {
	bus := hostenv.StartBus(t)
	fake := hostenv.StartFakeSystemd(t, bus.Address)
	fake.OnStartUnit(func(unit, mode string) (string, *godbus.Error) { return "", nil })
	s, logs := newSystemd(bus.Address)
	s.JobTimeout = 300 * time.Millisecond
	require.NoError(t, rebootWithin(t, s, context.Background(), 30*time.Second))
	require.Contains(t, logs.String(), "no result within the job timeout")
}

func TestSystemdRebootBusDiesAfterAccept(t *testing.T) {
	bus := hostenv.StartBus(t)
	fake := hostenv.StartFakeSystemd(t, bus.Address)
	fake.OnStartUnit(func(unit, mode string) (string, *godbus.Error) { return "", nil })
	s, logs := newSystemd(bus.Address)
	s.JobTimeout = time.Hour // only the bus closing can end the wait
	s.afterAccept = bus.Kill
	require.NoError(t, rebootWithin(t, s, context.Background(), 30*time.Second))
	require.Contains(t, logs.String(), "bus closed before its result")
}

func TestSystemdRebootNoBus(t *testing.T) {
	s, _ := newSystemd("unix:path=" + t.TempDir() + "/nothing")
	err := rebootWithin(t, s, context.Background(), 30*time.Second)
	require.ErrorContains(t, err, "connect to systemd on bus unix:path=")
}
