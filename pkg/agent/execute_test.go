package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"

	"github.com/nodepatch/nodepatch/pkg/host"
	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/metrics"
	"github.com/nodepatch/nodepatch/pkg/nodeops"
	"github.com/nodepatch/nodepatch/pkg/state"
)

// A node whose cache says it holds a slot, in phase Rebooting, not yet asked.
type fakeNode struct{ node *corev1.Node }

func (f fakeNode) Get() (*corev1.Node, error) { return f.node, nil }

type noWrites struct{}

func (noWrites) Update(context.Context, func(*corev1.Node) error) (*corev1.Node, error) {
	return nil, errors.New("no node writes expected")
}
func (noWrites) Drain(context.Context, nodeops.DrainOptions) error {
	return errors.New("no drain expected")
}
func (noWrites) PodsToEvict(context.Context, nodeops.DrainOptions) ([]string, error) {
	return nil, errors.New("no drain expected")
}

// staleLock: the cache says this node holds a slot; the API server may disagree.
type staleLock struct{ heldOnServer bool }

func (l staleLock) Snapshot() (lock.Snapshot, error) {
	return lock.Snapshot{Holders: []lock.Holder{{Slot: "nodepatch-lock-0", Identity: "node-a"}}}, nil
}
func (staleLock) TryAcquire(context.Context) (string, bool, error) { return "", false, nil }
func (staleLock) Release(context.Context) error                    { return nil }
func (staleLock) Renew(context.Context) error                      { return nil }
func (l staleLock) HoldsNow(context.Context) (bool, error)         { return l.heldOnServer, nil }

type needsReboot struct{}

func (needsReboot) RebootRequired(context.Context) (host.RebootCheck, error) {
	return host.RebootCheck{Required: true}, nil
}

type bootID string

func (b bootID) BootID(context.Context) (string, error) { return string(b), nil }

type countingRebooter struct{ calls int }

func (r *countingRebooter) Reboot(context.Context) error { r.calls++; return nil }

func rebootingAgent(t *testing.T, heldOnServer bool) (*Agent, *countingRebooter, *record.FakeRecorder) {
	now := time.Now()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"}}
	nodeops.SetAgentState(node, state.Node{Phase: state.PhaseRebooting, BootIDBefore: "boot-a", CordonedByUs: true,
		CycleStarted: now, RebootRequestedAt: now, RebootAttempts: 1})
	rebooter := &countingRebooter{}
	events := record.NewFakeRecorder(16)
	a, err := New(Config{
		NodeName: "node-a", Limits: Limits{RebootTimeout: time.Minute}, Period: time.Minute,
		Node: fakeNode{node}, Nodes: noWrites{}, Lock: staleLock{heldOnServer}, Detector: needsReboot{},
		BootID: bootID("boot-a"), Rebooter: rebooter, Events: events, Metrics: metrics.New("node-a", "test"),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	return a, rebooter, events
}

// TestRebootAsksTheAPIServerForTheLock: a cache that says the slot is held is
// not enough to reboot; the API server must say so too.
func TestRebootAsksTheAPIServerForTheLock(t *testing.T) {
	a, rebooter, events := rebootingAgent(t, false)
	a.reconcile(context.Background())
	require.Zero(t, rebooter.calls, "rebooted although the API server says the slot is not held")
	require.Contains(t, drain(events), "not rebooting")

	a, rebooter, _ = rebootingAgent(t, true)
	a.reconcile(context.Background())
	require.Equal(t, 1, rebooter.calls, "the lock is held: the reboot should have been asked for once")
}

func drain(events *record.FakeRecorder) string {
	var all []string
	for {
		select {
		case e := <-events.Events:
			all = append(all, e)
		default:
			return strings.Join(all, "\n")
		}
	}
}
