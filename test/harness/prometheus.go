package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// PrometheusBinary is where Debian's prometheus package (hack/install-deps.sh)
// puts the server.
const PrometheusBinary = "/usr/bin/prometheus"

// PrometheusOptions configure StartPrometheus.
type PrometheusOptions struct {
	// Binary is the server; empty means PrometheusBinary.
	Binary string
	// Dir is the working folder; empty makes a temporary one that Stop removes.
	Dir string
	// RuleFiles are written to Dir under their names and loaded as rule files.
	RuleFiles map[string][]byte
	// Jobs are the scrape jobs, each with static targets (host:port).
	Jobs []ScrapeJob
	// Interval is the scrape and rule evaluation interval (and the scrape
	// timeout); default 1s, so that tests see results within seconds.
	Interval time.Duration
	// StartTimeout bounds the wait for /-/ready; default 30s.
	StartTimeout time.Duration
}

// ScrapeJob is one scrape job of static targets.
type ScrapeJob struct {
	Name    string
	Targets []string
}

// Prometheus is a running Prometheus server on 127.0.0.1.
type Prometheus struct {
	URL string // http://127.0.0.1:port
	Dir string

	proc    *Process
	ownsDir bool
}

// promConfig is the part of prometheus.yml the harness writes.
type promConfig struct {
	Global struct {
		ScrapeInterval     string `json:"scrape_interval"`
		ScrapeTimeout      string `json:"scrape_timeout"`
		EvaluationInterval string `json:"evaluation_interval"`
	} `json:"global"`
	RuleFiles     []string           `json:"rule_files,omitempty"`
	ScrapeConfigs []promScrapeConfig `json:"scrape_configs,omitempty"`
}

type promScrapeConfig struct {
	JobName       string             `json:"job_name"`
	StaticConfigs []promStaticConfig `json:"static_configs"`
}

type promStaticConfig struct {
	Targets []string `json:"targets"`
}

// StartPrometheus writes a configuration for opts and starts Prometheus on a
// free port of 127.0.0.1, in its own process group, and waits until it is
// ready. A port taken by someone else between our look and Prometheus's bind
// is retried on another port.
func StartPrometheus(ctx context.Context, opts PrometheusOptions) (*Prometheus, error) {
	if opts.Binary == "" {
		opts.Binary = PrometheusBinary
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = 30 * time.Second
	}
	if _, err := os.Stat(opts.Binary); err != nil {
		return nil, fmt.Errorf("prometheus: %w (run hack/install-deps.sh as root to install Debian's prometheus package)", err)
	}
	p := &Prometheus{Dir: opts.Dir}
	if p.Dir == "" {
		dir, err := os.MkdirTemp("", "nodepatch-prometheus-")
		if err != nil {
			return nil, fmt.Errorf("create prometheus folder: %w", err)
		}
		p.Dir, p.ownsDir = dir, true
	} else if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create prometheus folder %s: %w", p.Dir, err)
	}
	if err := p.writeConfig(opts); err != nil {
		_ = p.Stop()
		return nil, err
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		err := p.start(ctx, opts)
		if err == nil {
			return p, nil
		}
		portTaken := p.proc != nil && strings.Contains(p.proc.LogTail(4000), "address already in use")
		if !portTaken || attempt == attempts {
			_ = p.Stop()
			return nil, err
		}
		if err := p.proc.Stop(10 * time.Second); err != nil {
			_ = p.Stop()
			return nil, fmt.Errorf("stop prometheus after a port clash: %w", err)
		}
		p.proc = nil
	}
}

func (p *Prometheus) writeConfig(opts PrometheusOptions) error {
	var cfg promConfig
	interval := opts.Interval.String()
	cfg.Global.ScrapeInterval, cfg.Global.ScrapeTimeout, cfg.Global.EvaluationInterval = interval, interval, interval
	for _, name := range slices.Sorted(maps.Keys(opts.RuleFiles)) {
		if name != filepath.Base(name) || name == "prometheus.yml" {
			return fmt.Errorf("prometheus rule file %q: want a plain file name other than prometheus.yml", name)
		}
		if err := os.WriteFile(filepath.Join(p.Dir, name), opts.RuleFiles[name], 0o644); err != nil {
			return fmt.Errorf("write prometheus rule file: %w", err)
		}
		cfg.RuleFiles = append(cfg.RuleFiles, name)
	}
	for _, job := range opts.Jobs {
		cfg.ScrapeConfigs = append(cfg.ScrapeConfigs, promScrapeConfig{
			JobName: job.Name, StaticConfigs: []promStaticConfig{{Targets: job.Targets}},
		})
	}
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("prometheus config: %w", err)
	}
	if err := os.WriteFile(p.configPath(), data, 0o644); err != nil {
		return fmt.Errorf("write prometheus config: %w", err)
	}
	return nil
}

func (p *Prometheus) configPath() string { return filepath.Join(p.Dir, "prometheus.yml") }

// start runs the server on a fresh free port and waits for /-/ready.
func (p *Prometheus) start(ctx context.Context, opts PrometheusOptions) error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	addr := "127.0.0.1:" + strconv.Itoa(ports[0])
	proc, err := StartProcess(ProcessSpec{
		Name: "prometheus", Path: opts.Binary, Dir: p.Dir, LogPath: filepath.Join(p.Dir, "prometheus.log"),
		Args: []string{
			"--config.file=" + p.configPath(),
			"--storage.tsdb.path=" + filepath.Join(p.Dir, "data"),
			"--web.listen-address=" + addr,
		},
	})
	if err != nil {
		return err
	}
	p.proc, p.URL = proc, "http://"+addr
	return p.waitReady(ctx, opts.StartTimeout)
}

func (p *Prometheus) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	ticker := time.NewTicker(100 * time.Millisecond)
	defer ticker.Stop()
	lastStatus := "no answer yet"
	for {
		if exited, err := p.proc.Exited(); exited {
			return fmt.Errorf("prometheus (pid %d) exited before it was ready: %v; log:\n%s", p.proc.PID(), err, p.proc.LogTail(4000))
		}
		ok, status := readyzOK(ctx, client, p.URL+"/-/ready")
		if ok {
			return nil
		}
		lastStatus = status
		select {
		case <-ctx.Done():
			return fmt.Errorf("prometheus at %s not ready within %s (last /-/ready: %s): %w; log:\n%s",
				p.URL, timeout, lastStatus, ctx.Err(), p.proc.LogTail(4000))
		case <-ticker.C:
		}
	}
}

// PID is the server's process id (and process group id).
func (p *Prometheus) PID() int { return p.proc.PID() }

// LogTail returns about the last n bytes of the server's log.
func (p *Prometheus) LogTail(n int64) string { return p.proc.LogTail(n) }

// DebugDump returns what helps explain a failed test: the targets and the
// alerts as the API shows them, and the end of the log.
func (p *Prometheus) DebugDump(ctx context.Context) string {
	var b strings.Builder
	client := &http.Client{Timeout: 5 * time.Second}
	for _, path := range []string{"/api/v1/targets", "/api/v1/alerts"} {
		body, err := getBody(ctx, client, p.URL+path)
		if err != nil {
			fmt.Fprintf(&b, "prometheus %s: %v\n", path, err)
			continue
		}
		fmt.Fprintf(&b, "prometheus %s:\n%s\n", path, body)
	}
	fmt.Fprintf(&b, "prometheus log (pid %d) ends:\n%s", p.proc.PID(), p.proc.LogTail(6000))
	return b.String()
}

func getBody(ctx context.Context, client *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return strings.TrimSpace(string(body)), nil
}

// Stop stops the server's process group (SIGTERM, SIGKILL after 10s) and
// removes Dir if StartPrometheus made it.
func (p *Prometheus) Stop() error {
	var errs []error
	if p.proc != nil {
		if err := p.proc.Stop(10 * time.Second); err != nil {
			errs = append(errs, fmt.Errorf("stop prometheus: %w", err))
		}
	}
	if p.ownsDir {
		if err := os.RemoveAll(p.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", p.Dir, err))
		}
		p.ownsDir = false
	}
	return errors.Join(errs...)
}

// StartPrometheusT is StartPrometheus for tests: it fails t on error, puts the
// server's folder in t's temporary folder unless opts.Dir is set, and stops it
// when the test ends, logging DebugDump first if the test failed.
func StartPrometheusT(t testing.TB, opts PrometheusOptions) *Prometheus {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	p, err := StartPrometheus(t.Context(), opts)
	if err != nil {
		t.Fatalf("start prometheus: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			// t.Context is already done during cleanup.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			t.Logf("%s", p.DebugDump(ctx))
		}
		if err := p.Stop(); err != nil {
			t.Errorf("%v", err)
		}
	})
	return p
}
