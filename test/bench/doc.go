// Package bench measures whole rollouts on a real control plane. Timings are
// reported, never asserted: these machines are shared and noisy.
//
// The rollout benchmarks (BenchmarkRollout12Nodes...) run agent processes;
// the scale benchmarks (BenchmarkScale..., `make bench-scale`) run hundreds of
// agents in this process (sim.InProcess) under a real `nodepatch controller`,
// and the controller alone against thousands of nodes whose agents are
// simulated by their writes.
package bench
