package bench

import (
	"context"
	"io"
	"os"
	"testing"
	"time"

	"github.com/nodepatch/nodepatch/test/rollout"
)

// BenchmarkRollout12Nodes is the yardstick: 12 simulated nodes, 2 at a
// time, 5 s reboots, a Deployment and a PodDisruptionBudget moved by the real
// controllers. It reports wall time over the ideal ceil(12/2) x (drain + reboot).
func BenchmarkRollout12Nodes(b *testing.B) {
	benchRollout(b, rollout.Options{Nodes: 12, Concurrency: 2, RebootDuration: 5 * time.Second, Controllers: true})
}

// BenchmarkRollout12NodesController is the yardstick's rollout with the
// rollout controller admitting the nodes (the agents in controller mode).
func BenchmarkRollout12NodesController(b *testing.B) {
	benchRollout(b, rollout.Options{Nodes: 12, Concurrency: 2, RebootDuration: 5 * time.Second, Controllers: true,
		RolloutController: true})
}

// BenchmarkRollout12NodesNoWorkload is the same rollout with nothing to evict:
// what is left is nodepatch's own overhead.
func BenchmarkRollout12NodesNoWorkload(b *testing.B) {
	benchRollout(b, rollout.Options{Nodes: 12, Concurrency: 2, RebootDuration: 5 * time.Second})
}

func benchRollout(b *testing.B, o rollout.Options) {
	o.Out, o.Log = io.Discard, io.Discard
	for b.Loop() {
		s, err := rollout.Run(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		if s.Rebooted != s.Nodes || s.MaxHolders > o.Concurrency {
			b.Fatalf("rollout went wrong: %s", s)
		}
		b.ReportMetric(s.Ratio(), "wall/ideal")
		b.ReportMetric(s.Wall.Seconds(), "wall-s")
		b.ReportMetric(s.Ideal.Seconds(), "ideal-s")
		b.Logf("%s", s)
	}
}

// BenchmarkAgentFootprint: the stripped static binary's size and one agent's
// resident memory after a minute idle.
func BenchmarkAgentFootprint(b *testing.B) {
	for range b.N {
		r, err := RunFootprint(b.Context(), FootprintOptions{Idle: time.Minute, Log: os.Stderr})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(r.BinaryBytes)/1e6, "binary-MB")
		b.ReportMetric(float64(r.IdleRSSBytes)/mib, "agent-idle-MiB")
		b.Logf("%s", r)
	}
}
