package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/nodepatch/nodepatch/test/harness"
	"github.com/nodepatch/nodepatch/test/sim"
)

// Names the controller's metrics go by (the controller's package is not
// imported for them: the benchmark reads what a scraper reads).
const (
	controllerRequestsMetric = "nodepatch_controller_api_requests_total"
	agentRequestsMetric      = "nodepatch_api_requests_total"
	decisionMetric           = "nodepatch_controller_decision_seconds"
	writeMetric              = "nodepatch_controller_write_seconds"
	leaderMetric             = "nodepatch_controller_is_leader"
	limitMetric              = "nodepatch_controller_limit"
)

// controllerProc is one `nodepatch controller` process, the only replica.
type controllerProc struct {
	proc *harness.Process
	addr string // its metrics address
	scr  scraper
}

// startController runs `nodepatch controller` as a real process, so that its
// CPU time and memory are its own, and waits until it leads.
func startController(ctx context.Context, binary, kubeconfig, namespace, maxUnavailable, dir string) (*controllerProc, error) {
	addr, err := freeAddress()
	if err != nil {
		return nil, err
	}
	p, err := harness.StartProcess(harness.ProcessSpec{
		Name: "nodepatch controller", Path: binary, LogPath: filepath.Join(dir, "controller.log"), Env: sim.ProcessEnv(),
		Args: []string{"controller", "--kubeconfig=" + kubeconfig, "--namespace=" + namespace, "--identity=bench",
			"--max-unavailable=" + maxUnavailable, "--metrics-address=" + addr, "--log-format=json"},
	})
	if err != nil {
		return nil, err
	}
	c := &controllerProc{proc: p, addr: addr, scr: newScraper()}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		if exited, err := p.Exited(); exited {
			return false, fmt.Errorf("the controller exited: %v; log ends:\n%s", err, p.LogTail(2000))
		}
		families, err := c.scr.scrape(ctx, addr)
		if err != nil {
			return false, nil
		}
		leading, _ := gaugeIn(families, leaderMetric)
		limit, _ := gaugeIn(families, limitMetric)
		return leading == 1 && limit > 0, nil
	})
	if err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("waiting for the controller to lead and set the limit: %w", err)
	}
	return c, nil
}

func (c *controllerProc) metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	if exited, err := c.proc.Exited(); exited {
		return nil, fmt.Errorf("the controller exited: %v; log ends:\n%s", err, c.proc.LogTail(2000))
	}
	return c.scr.scrape(ctx, c.addr)
}

func (c *controllerProc) stop() error { return c.proc.Stop(10 * time.Second) }

// usage is a process's CPU time so far (user + system) and its peak resident
// set (VmHWM), read from /proc.
type usage struct {
	cpu     time.Duration
	peakRSS uint64 // bytes
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on every
// Linux architecture Go supports (the kernel fixes it for user space).
const clockTicks = 100

func processUsage(pid int) (usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return usage{}, fmt.Errorf("cpu time of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces: count fields after its ')'.
	_, rest, ok := strings.Cut(string(stat), ") ")
	fields := strings.Fields(rest)
	if !ok || len(fields) < 13 {
		return usage{}, fmt.Errorf("cpu time of pid %d: unexpected /proc stat %q", pid, stat)
	}
	// rest starts at field 3 (state): utime is field 14, stime field 15.
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return usage{}, fmt.Errorf("cpu time of pid %d: unexpected /proc stat %q", pid, stat)
	}
	u := usage{cpu: time.Duration(utime+stime) * time.Second / clockTicks}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return usage{}, fmt.Errorf("memory of pid %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		if value, found := strings.CutPrefix(line, "VmHWM:"); found {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
			if err != nil {
				return usage{}, fmt.Errorf("memory of pid %d: VmHWM %q: %w", pid, value, err)
			}
			u.peakRSS = kb * 1024
		}
	}
	if u.peakRSS == 0 {
		return usage{}, fmt.Errorf("memory of pid %d: no VmHWM in /proc status", pid)
	}
	return u, nil
}

// freeAddress returns 127.0.0.1:PORT with a port that was free a moment ago.
func freeAddress() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

const mib = 1 << 20
