package bench

import (
	"os"
	"testing"
	"time"

	"github.com/nodepatch/nodepatch/test/harness"
)

// The scale benchmarks (`make bench-scale`): a rollout at --max-unavailable=10%
// with 5 s reboots, the agents in this process, the controller a process.
// Each prints its figures next to the targets; none is asserted.

// The benchmarks' progress goes to stderr, as it happens: testing keeps only
// ten lines of a benchmark's log, which the summary needs.

// binaryEnv names a nodepatch binary for the benchmarks' controller, to
// compare a build with this tree's (empty: build this tree).
const binaryEnv = "NODEPATCH_BENCH_BINARY"

func BenchmarkScale100(b *testing.B)  { benchScale(b, 100) }
func BenchmarkScale300(b *testing.B)  { benchScale(b, 300) }
func BenchmarkScale1000(b *testing.B) { benchScale(b, 1000) }

// BenchmarkControllerAlone5000 is the controller against 5,000 nodes whose
// agents are simulated by their writes: its memory and its decision time.
func BenchmarkControllerAlone5000(b *testing.B) {
	for b.Loop() {
		r, err := RunControllerAlone(b.Context(), AloneOptions{Nodes: 5000, MaxUnavailable: "10%",
			RebootDuration: 5 * time.Second, Timeout: 2 * time.Hour, Log: os.Stderr, Binary: os.Getenv(binaryEnv)})
		if err != nil {
			b.Fatal(err)
		}
		checkAlone(b, r)
		b.ReportMetric(float64(r.ControllerPeak)/mib, "ctrl-peak-MiB")
		b.ReportMetric(r.ControllerCPU.Seconds(), "ctrl-cpu-s")
		b.ReportMetric(r.Decisions.mean()*1000, "decision-mean-ms")
		b.ReportMetric(r.Decisions.quantile(0.95)*1000, "decision-p95-ms")
		b.ReportMetric(r.Decisions.count/float64(max(r.NodeEvents, 1)), "decisions/event")
		b.ReportMetric(r.Writes.quantile(0.95)*1000, "write-p95-ms")
		b.ReportMetric(float64(percentile(r.FreedToAdmission, 0.95))/float64(time.Millisecond), "free-admit-p95-ms")
		b.Logf("%s", r)
	}
}

func benchScale(b *testing.B, nodes int) {
	for b.Loop() {
		r, err := RunScale(b.Context(), ScaleOptions{Nodes: nodes, MaxUnavailable: "10%", RebootDuration: 5 * time.Second,
			IdleWindow: time.Minute, Timeout: time.Hour, Log: os.Stderr, Binary: os.Getenv(binaryEnv)})
		if err != nil {
			b.Fatal(err)
		}
		checkScale(b, r)
		b.ReportMetric(r.RequestsPerCycle(), "req/cycle")
		b.ReportMetric(r.AgentRequests.total()/float64(r.Nodes), "agent-req/cycle")
		b.ReportMetric(r.ControllerRequests.total()/float64(r.Nodes), "ctrl-req/cycle")
		b.ReportMetric(r.ConflictsPerAdmission(), "conflicts/admission")
		b.ReportMetric(float64(percentile(r.FreedToAdmission, 0.5))/float64(time.Millisecond), "free-admit-p50-ms")
		b.ReportMetric(float64(percentile(r.FreedToAdmission, 0.95))/float64(time.Millisecond), "free-admit-p95-ms")
		b.ReportMetric(r.ControllerCPU.Seconds(), "ctrl-cpu-s")
		b.ReportMetric(float64(r.ControllerPeak)/mib, "ctrl-peak-MiB")
		b.ReportMetric(r.IdleAgentPerMinute, "idle-req/agent/min")
		b.ReportMetric(r.Ratio(), "wall/ideal")
		b.ReportMetric(r.Wall.Seconds(), "wall-s")
		b.Logf("%s", r)
	}
}

// TestScaleSample is make test's sample of the scale benchmarks: small
// enough to be quick, it checks that the harness works and that the
// invariants hold, and asserts nothing about time.
func TestScaleSample(t *testing.T) {
	t.Run("rollout of 20 in-process agents under the controller", func(t *testing.T) {
		r, err := RunScale(t.Context(), ScaleOptions{Nodes: 20, MaxUnavailable: "10%", RebootDuration: time.Second,
			IdleWindow: 2 * time.Second, Timeout: 10 * time.Minute, Log: harness.NewTestLogWriter(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", r)
		checkScale(t, r)
		if r.Limit != 2 {
			t.Errorf("limit %d; 10%% of 20 nodes is 2", r.Limit)
		}
		if r.AgentRequests.total() <= 0 || r.ControllerRequests.total() <= 0 {
			t.Errorf("no requests counted: agents %v, controller %v", r.AgentRequests, r.ControllerRequests)
		}
		if len(r.FreedToAdmission) == 0 || r.Decisions.count == 0 || r.ControllerPeak == 0 {
			t.Errorf("nothing timed: %d freed slots admitted after, %.0f decisions, peak RSS %d",
				len(r.FreedToAdmission), r.Decisions.count, r.ControllerPeak)
		}
	})
	t.Run("controller alone at 50 nodes", func(t *testing.T) {
		r, err := RunControllerAlone(t.Context(), AloneOptions{Nodes: 50, MaxUnavailable: "10%",
			RebootDuration: time.Second, Timeout: 10 * time.Minute, Log: harness.NewTestLogWriter(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", r)
		checkAlone(t, r)
		if r.Decisions.count == 0 || r.ControllerPeak == 0 || r.ControllerRequests.total() <= 0 {
			t.Errorf("nothing measured: %.0f decisions, peak RSS %d, requests %v", r.Decisions.count, r.ControllerPeak, r.ControllerRequests)
		}
	})
	t.Run("footprint of one idle agent", func(t *testing.T) {
		r, err := RunFootprint(t.Context(), FootprintOptions{Idle: 2 * time.Second, Log: harness.NewTestLogWriter(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s", r)
		if r.BinaryBytes <= 0 || r.IdleRSSBytes == 0 || r.PeakRSSBytes < r.IdleRSSBytes {
			t.Errorf("nothing measured: binary %d bytes, RSS %d, peak %d", r.BinaryBytes, r.IdleRSSBytes, r.PeakRSSBytes)
		}
	})
}

// checkScale fails tb unless every node rebooted and the bounds held: at
// most the limit held a slot or was out of service at once.
func checkScale(tb testing.TB, r ScaleResult) {
	tb.Helper()
	if r.Rebooted != r.Nodes {
		tb.Errorf("rebooted %d of %d nodes", r.Rebooted, r.Nodes)
	}
	if r.MaxHolders > r.Limit || r.MaxOutOfService > r.Limit || r.PeakUnavailable > r.Limit {
		tb.Errorf("at most %d holders, %d out of service and %d unavailable at once; the limit is %d",
			r.MaxHolders, r.MaxOutOfService, r.PeakUnavailable, r.Limit)
	}
	for _, v := range r.Violations {
		tb.Errorf("violation: %s", v)
	}
	if r.Admissions < r.Nodes {
		tb.Errorf("%d admissions for %d nodes", r.Admissions, r.Nodes)
	}
}

// checkAlone fails tb unless every simulated node cycled once and at most
// the limit was unavailable at once.
func checkAlone(tb testing.TB, r AloneResult) {
	tb.Helper()
	if r.Cycles != r.Nodes {
		tb.Errorf("%d simulated cycles for %d nodes", r.Cycles, r.Nodes)
	}
	if r.PeakUnavailable > r.Limit {
		tb.Errorf("%d nodes unavailable at once; the limit is %d", r.PeakUnavailable, r.Limit)
	}
}
