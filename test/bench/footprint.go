package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/sim"
)

// FootprintOptions shape a footprint run.
type FootprintOptions struct {
	// Idle is how long the agent runs with nothing to do before its memory is
	// read: long enough for its start-up garbage to be collected.
	Idle time.Duration
	Log  io.Writer
}

// FootprintResult is the size of the binary `make build` makes and one
// agent's resident memory once idle.
type FootprintResult struct {
	BinaryBytes  int64
	IdleRSSBytes uint64 // VmRSS after Idle
	PeakRSSBytes uint64 // VmHWM then: the start-up's peak
	// AnonBytes and FileBytes split the idle RSS: the process's own memory
	// (heap, stacks) and the pages of its binary it touched.
	AnonBytes, FileBytes uint64
	Idle                 time.Duration
}

func (r FootprintResult) String() string {
	return fmt.Sprintf("stripped static binary %.1f MB (target <= 30 MB) | one agent idle %s: RSS %.1f MiB (target <= 24 MiB; anonymous %.1f, its binary's pages %.1f), peak %.1f MiB since its start",
		float64(r.BinaryBytes)/1e6, r.Idle, float64(r.IdleRSSBytes)/mib, float64(r.AnonBytes)/mib, float64(r.FileBytes)/mib, float64(r.PeakRSSBytes)/mib)
}

// RunFootprint builds the binary as `make build` does (static, stripped,
// -trimpath), then runs it as one agent of one kwok node on a real API
// server and reads its memory after Idle with nothing to do.
func RunFootprint(ctx context.Context, o FootprintOptions) (FootprintResult, error) {
	dir, cleanup, err := benchDir("nodepatch-footprint-", o.Log)
	if err != nil {
		return FootprintResult{}, err
	}
	defer cleanup()
	bin, size, err := buildRelease(ctx, dir)
	if err != nil {
		return FootprintResult{}, err
	}
	res := FootprintResult{BinaryBytes: size, Idle: o.Idle}
	cp, err := harness.StartControlPlane(ctx, harness.Options{Kwok: true, Log: o.Log, Dir: filepath.Join(dir, "cp")})
	if err != nil {
		return res, err
	}
	defer cp.Stop()
	if err := createNamespace(ctx, cp.Client); err != nil {
		return res, err
	}
	sup, err := sim.NewSupervisor(cp.Client, sim.Options{Binary: bin, Kubeconfig: cp.AdminKubeconfig, Namespace: namespace,
		Dir: filepath.Join(dir, "hosts"), Log: o.Log})
	if err != nil {
		return res, err
	}
	defer func() { _ = sup.Stop() }()
	const node = "node-0"
	if _, err := sup.AddNode(ctx, node, nil); err != nil {
		return res, err
	}
	if err := sup.StartAgents(); err != nil {
		return res, err
	}
	watcher, err := sim.StartWatcher(ctx, cp.Client, namespace)
	if err != nil {
		return res, err
	}
	defer watcher.Stop()
	// The agent is up once it has written the lock's header (after its
	// caches synced).
	readyCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	err = watcher.WaitFor(readyCtx, func() bool {
		_, err := cp.Client.CoordinationV1().Leases(namespace).Get(readyCtx, "nodepatch-lock", metav1.GetOptions{})
		return err == nil
	})
	if err != nil {
		return res, fmt.Errorf("waiting for the agent to write the lock's header: %w", err)
	}
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(o.Idle):
	}
	pid, ok := sup.AgentPID(node)
	if !ok {
		return res, fmt.Errorf("the agent of %s is not running after %s idle: %w", node, o.Idle, sup.Err())
	}
	m, err := residentMemory(pid)
	if err != nil {
		return res, err
	}
	res.IdleRSSBytes, res.PeakRSSBytes, res.AnonBytes, res.FileBytes = m.rss, m.peak, m.anon, m.file
	return res, sup.Err()
}

// buildRelease builds ./cmd/nodepatch as the Makefile's build target does
// and returns its path and size.
func buildRelease(ctx context.Context, dir string) (string, int64, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return "", 0, err
	}
	out := filepath.Join(dir, "nodepatch")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, "./cmd/nodepatch")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if output, err := cmd.CombinedOutput(); err != nil {
		return "", 0, fmt.Errorf("go build -trimpath -ldflags '-s -w' ./cmd/nodepatch: %w\n%s", err, output)
	}
	info, err := os.Stat(out)
	if err != nil {
		return "", 0, fmt.Errorf("size of the binary: %w", err)
	}
	return out, info.Size(), nil
}

// memory is a process's resident memory from /proc/PID/status, in bytes.
type memory struct {
	rss, peak, anon, file uint64 // VmRSS, VmHWM, RssAnon, RssFile
}

// residentMemory reads pid's resident memory.
func residentMemory(pid int) (memory, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	var m memory
	fields := map[string]*uint64{"VmRSS": &m.rss, "VmHWM": &m.peak, "RssAnon": &m.anon, "RssFile": &m.file}
	for line := range strings.SplitSeq(string(status), "\n") {
		key, value, ok := strings.Cut(line, ":")
		field := fields[key]
		if !ok || field == nil {
			continue
		}
		kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("memory of pid %d: %s %q: %w", pid, key, value, err)
		}
		*field = kb * 1024
	}
	if m.rss == 0 || m.peak == 0 {
		return memory{}, fmt.Errorf("memory of pid %d: no VmRSS or VmHWM in /proc/%d/status", pid, pid)
	}
	return m, nil
}
