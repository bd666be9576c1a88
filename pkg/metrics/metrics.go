// Package metrics holds the agent's Prometheus metrics. Every series carries a
// constant node label, so alerts name the node without relabelling.
package metrics

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Phases a node can be in, as the nodepatch_phase metric names them.
var Phases = []string{"Idle", "WaitingForLock", "Draining", "Rebooting", "WaitingReady", "Verifying", "Failed"}

// BlockReasons are the values of nodepatch_reboot_blocked's reason label.
var BlockReasons = []string{"annotation", "paused", "window", "backoff", "recent-reboot", "reboot-loop", "boot-id-mismatch", "host-busy",
	"prometheus-alert", "prometheus-query", "prometheus-unreachable", "pods", "kured-lock", "quarantined", "gate"}

// Metrics is the agent's set of metrics, registered on its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	RebootRequired   prometheus.Gauge
	RebootBlocked    *prometheus.GaugeVec
	Phase            *prometheus.GaugeVec
	LockHeld         prometheus.Gauge
	CycleStart       prometheus.Gauge
	LastReboot       prometheus.Gauge
	NextWindow       prometheus.Gauge
	Reboots          *prometheus.CounterVec
	DrainFailures    prometheus.Counter
	DrainDuration    prometheus.Histogram
	OutOfService     prometheus.Histogram
	TimeToHealthy    prometheus.Histogram
	UpdatesPending   *prometheus.GaugeVec
	PatchLastRun     prometheus.Gauge
	PatchLastSuccess prometheus.Gauge
	PatchDuration    prometheus.Histogram
	PackagesUpgraded prometheus.Counter
	PatchRuns        *prometheus.CounterVec
	BuildInfo        *prometheus.GaugeVec
	AnnotationErrors prometheus.Counter
	Notifications    *prometheus.CounterVec
	// APIRequests counts the agent's requests to the API server.
	APIRequests *prometheus.CounterVec
	// BootIDMismatch is 1, labelled with both ids, while the host's boot id is
	// not the kubelet's.
	BootIDMismatch *prometheus.GaugeVec
}

// New builds and registers the metrics for node.
func New(node, version string) *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg: reg, labels: prometheus.Labels{"node": node}}
	durations := []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600}
	m := &Metrics{
		Registry:       reg,
		RebootRequired: f.gauge("nodepatch_reboot_required", "1 when the host needs a reboot (sentinel, command or force annotation)."),
		RebootBlocked:  f.gaugeVec("nodepatch_reboot_blocked", "1 for each reason that keeps a needed reboot from starting.", "reason"),
		Phase:          f.gaugeVec("nodepatch_phase", "1 for the node's current phase in its reboot cycle.", "phase"),
		LockHeld:       f.gauge("nodepatch_lock_held", "1 while this node holds a slot of the reboot lock."),
		CycleStart:     f.gauge("nodepatch_cycle_start_timestamp_seconds", "Unix time the current reboot cycle started; 0 when there is none."),
		NextWindow: f.gauge("nodepatch_next_window_timestamp_seconds",
			"Unix time a cycle may next start by the maintenance window (now while one may; 0 when none comes within 400 days)."),
		LastReboot: f.gauge("nodepatch_last_reboot_timestamp_seconds",
			"Unix time of the node's last verified reboot by nodepatch (from the Node, so it survives the agent's restarts); 0 when none."),
		Reboots:       f.counterVec("nodepatch_reboots_total", "Reboot cycles finished, by result.", "result"),
		DrainFailures: f.counter("nodepatch_drain_failures_total", "Drains that failed or timed out."),
		DrainDuration: f.histogram("nodepatch_drain_duration_seconds", "Time a successful drain took.", durations),
		OutOfService:  f.histogram("nodepatch_out_of_service_seconds", "Time from cordon to uncordon in a finished cycle.", durations),
		TimeToHealthy: f.histogram("nodepatch_time_to_healthy_seconds",
			"Time from the node's return (Ready from the new boot, uncordoned) to healthy at the end of its soak, with a health gate.", durations),
		UpdatesPending:   f.gaugeVec("nodepatch_updates_pending", "Package updates available on the host.", "kind"),
		PatchLastRun:     f.gauge("nodepatch_patch_last_run_timestamp_seconds", "Unix time of the last patch run."),
		PatchLastSuccess: f.gauge("nodepatch_patch_last_success", "1 when the last patch run succeeded."),
		PatchDuration:    f.histogram("nodepatch_patch_duration_seconds", "Time a patch run took.", durations),
		PackagesUpgraded: f.counter("nodepatch_packages_upgraded_total", "Packages upgraded by patch runs."),
		PatchRuns:        f.counterVec("nodepatch_patch_runs_total", "Patch runs, by result.", "result"),
		BuildInfo:        f.gaugeVec("nodepatch_build_info", "Always 1; the version label says which build runs.", "version"),
		APIRequests: f.counterVecLabels("nodepatch_api_requests_total",
			"API server requests the agent made, by verb, resource and status code (0: no answer).", "verb", "resource", "code"),
		Notifications: f.counterVecLabels("nodepatch_notifications_total",
			"Notifications by sink (scheme, host), event kind and result: delivered, failed (refused or out of attempts), dropped (queue full or stopped).",
			"sink", "kind", "result"),
		AnnotationErrors: f.counter("nodepatch_annotation_errors_total", "Malformed nodepatch annotation values seen on the node."),
		BootIDMismatch: f.gaugeVecLabels("nodepatch_boot_id_mismatch",
			"1 while the host's boot id differs from the one the kubelet reports; the agent then does nothing.", "host_boot_id", "kubelet_boot_id"),
	}
	m.BuildInfo.WithLabelValues(version).Set(1)
	for _, r := range []string{"success", "failed", "unhealthy"} {
		m.Reboots.WithLabelValues(r)
	}
	for _, r := range []string{"success", "failed"} {
		m.PatchRuns.WithLabelValues(r)
	}
	for _, k := range []string{"all", "security"} {
		m.UpdatesPending.WithLabelValues(k)
	}
	m.SetPhase("Idle")
	m.SetBlocked(nil)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// SetPhase marks phase as the current one (and every other as not).
func (m *Metrics) SetPhase(phase string) {
	for _, p := range Phases {
		m.Phase.WithLabelValues(p).Set(boolValue(p == phase))
	}
}

// SetBlocked marks the given reasons as blocking (and every other as not).
func (m *Metrics) SetBlocked(reasons []string) {
	on := map[string]bool{}
	for _, r := range reasons {
		on[r] = true
	}
	for _, r := range BlockReasons {
		m.RebootBlocked.WithLabelValues(r).Set(boolValue(on[r]))
	}
}

// SetBootIDMismatch shows the two boot ids while they differ, and nothing once
// they agree.
func (m *Metrics) SetBootIDMismatch(mismatch bool, hostID, kubeletID string) {
	m.BootIDMismatch.Reset()
	if mismatch {
		m.BootIDMismatch.WithLabelValues(hostID, kubeletID).Set(1)
	}
}

// NotifyObserver counts notifications in Notifications.
func (m *Metrics) NotifyObserver() NotifyObserver { return NotifyObserver{m.Notifications} }

// NotifyObserver is pkg/notify's Observer over a counter.
type NotifyObserver struct{ c *prometheus.CounterVec }

// Delivered counts a delivered notification.
func (o NotifyObserver) Delivered(sink, kind string) {
	o.c.WithLabelValues(sink, kind, "delivered").Inc()
}

// Failed counts a notification given up on.
func (o NotifyObserver) Failed(sink, kind string, _ error) {
	o.c.WithLabelValues(sink, kind, "failed").Inc()
}

// Dropped counts a notification never sent.
func (o NotifyObserver) Dropped(sink, kind string) { o.c.WithLabelValues(sink, kind, "dropped").Inc() }

// SetLastReboot records the node's last verified reboot.
func (m *Metrics) SetLastReboot(t time.Time) {
	if t.IsZero() {
		m.LastReboot.Set(0)
		return
	}
	m.LastReboot.Set(float64(t.Unix()))
}

// SetNextWindow records when a cycle may next start.
func (m *Metrics) SetNextWindow(t time.Time) {
	if t.IsZero() {
		m.NextWindow.Set(0)
		return
	}
	m.NextWindow.Set(float64(t.Unix()))
}

// SetCycleStart records when the current cycle started; the zero time clears it.
func (m *Metrics) SetCycleStart(t time.Time) {
	if t.IsZero() {
		m.CycleStart.Set(0)
		return
	}
	m.CycleStart.Set(float64(t.UnixNano()) / 1e9)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

type factory struct {
	reg    *prometheus.Registry
	labels prometheus.Labels
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: f.labels})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeVec(name, help, label string) *prometheus.GaugeVec {
	return f.gaugeVecLabels(name, help, label)
}

func (f factory) gaugeVecLabels(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: f.labels}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: f.labels})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help, label string) *prometheus.CounterVec {
	return f.counterVecLabels(name, help, label)
}

func (f factory) counterVecLabels(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: f.labels}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, ConstLabels: f.labels, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

// CountRequest is a kube.CountFunc that counts into APIRequests.
func (m *Metrics) CountRequest(verb, resource string, code int) {
	m.APIRequests.WithLabelValues(verb, resource, strconv.Itoa(code)).Inc()
}
