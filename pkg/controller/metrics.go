package controller

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/nodepatch/nodepatch/pkg/policy"
)

// Metrics are the controller's, on a registry of their own.
type Metrics struct {
	Registry *prometheus.Registry

	IsLeader     prometheus.Gauge
	Nodes        *prometheus.GaugeVec
	Queue        prometheus.Gauge
	OldestNeed   prometheus.Gauge
	Admissions   prometheus.Counter
	Holds        *prometheus.GaugeVec
	Limit        prometheus.Gauge
	Unavailable  prometheus.Gauge
	BudgetUsed   prometheus.Gauge
	BudgetTrips  prometheus.Counter
	DecisionTime prometheus.Histogram
	WriteTime    prometheus.Histogram
	APIRequests  *prometheus.CounterVec
	Pools        PoolMetrics
}

// NewMetrics builds and registers the controller's metrics.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	gaugeVec := func(name, help, label string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{label})
		reg.MustRegister(g)
		return g
	}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	m := &Metrics{
		Registry:    reg,
		IsLeader:    gauge("nodepatch_controller_is_leader", "1 while this replica leads the rollout."),
		Nodes:       gaugeVec("nodepatch_controller_nodes", "Nodes by phase, as the leader sees them (Idle, Waiting, Admitted, Draining, Rebooting, Failed).", "phase"),
		Queue:       gauge("nodepatch_controller_queue_length", "Nodes that need a cycle and wait for admission."),
		OldestNeed:  gauge("nodepatch_controller_oldest_need_timestamp_seconds", "When the oldest waiting need was reported; 0 when none waits."),
		Admissions:  counter("nodepatch_controller_admissions_total", "Nodes admitted to start a cycle."),
		Holds:       gaugeVec("nodepatch_controller_holds", "Waiting nodes held, by the rule that holds them.", "rule"),
		Limit:       gauge("nodepatch_controller_limit", "Nodes that may be out at once (max-unavailable resolved)."),
		Unavailable: gauge("nodepatch_controller_unavailable", "Nodes out of service now, for any reason."),
		BudgetUsed:  gauge("nodepatch_controller_failure_budget_used", "Failed cycles within the failure budget's window."),
		BudgetTrips: counter("nodepatch_controller_failure_budget_trips_total", "Times the failure budget paused the rollout."),
		DecisionTime: func() prometheus.Histogram {
			h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nodepatch_controller_decision_seconds",
				Help: "Time one decision took, from reading the caches to the actions decided.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)})
			reg.MustRegister(h)
			return h
		}(),
		WriteTime: func() prometheus.Histogram {
			h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "nodepatch_controller_write_seconds",
				Help:    "Time the writes of one decision took (admissions, revocations, the lock's header), the controller's rate limit included.",
				Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
			reg.MustRegister(h)
			return h
		}(),
		APIRequests: func() *prometheus.CounterVec {
			c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "nodepatch_controller_api_requests_total",
				Help: "API server requests the controller made, by verb, resource and status code (0: no answer)."},
				[]string{"verb", "resource", "code"})
			reg.MustRegister(c)
			return c
		}(),
	}
	m.Pools = newPoolMetrics(reg)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// CountRequest is a kube.CountFunc that counts into APIRequests.
func (m *Metrics) CountRequest(verb, resource string, code int) {
	m.APIRequests.WithLabelValues(verb, resource, strconv.Itoa(code)).Inc()
}

var phases = []string{"Idle", "Waiting", "Admitted", "Draining", "Rebooting", "Failed"}

var rules = []string{policy.RuleMaxUnavailable, policy.RuleControlPlaneOneAtATime, policy.RuleControlPlaneNotReady,
	policy.RuleControlPlaneLast, policy.RuleControlPlaneFirst, RulePaused}

// Record updates the gauges from one decision.
func (m *Metrics) Record(act Actions, decided, wrote time.Duration) {
	for _, p := range phases {
		m.Nodes.WithLabelValues(p).Set(float64(act.Phases[p]))
	}
	m.Queue.Set(float64(len(act.Plan.Admit) + len(act.Plan.Held)))
	if act.OldestNeed.IsZero() {
		m.OldestNeed.Set(0)
	} else {
		m.OldestNeed.Set(float64(act.OldestNeed.Unix()))
	}
	holds := map[string]int{}
	for _, h := range act.Plan.Held {
		holds[h.Rule]++
	}
	m.Holds.Reset()
	for _, r := range rules {
		m.Holds.WithLabelValues(r).Set(float64(holds[r]))
	}
	for r, n := range holds {
		m.Holds.WithLabelValues(r).Set(float64(n))
	}
	m.Limit.Set(float64(act.Limit))
	m.Unavailable.Set(float64(act.Plan.Unavailable))
	m.BudgetUsed.Set(float64(act.BudgetUsed))
	m.DecisionTime.Observe(decided.Seconds())
	m.WriteTime.Observe(wrote.Seconds())
}
