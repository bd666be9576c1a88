package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"

	"github.com/nodepatch/nodepatch/pkg/kube"
	"github.com/nodepatch/nodepatch/pkg/metrics"
	"github.com/nodepatch/nodepatch/pkg/policy"
	"github.com/nodepatch/nodepatch/pkg/version"
)

// Options are `nodepatch controller`'s flags.
type Options struct {
	Kubeconfig     string
	Namespace      string
	LockName       string
	MetricsAddress string
	LogFormat      string
	Identity       string
	ElectionLease  string

	MaxUnavailable    string
	MaxUnavailablePer []string
	ControlPlane      string
	FailureBudget     string
	AdmissionTimeout  time.Duration
	// PoolsConfigMap names the ConfigMap of the pools (in Namespace); empty:
	// no pools.
	PoolsConfigMap string
	// APIQPS and APIBurst are the controller's own limit on its requests, and
	// apart from them on its Events: an admission is a Node patch and an
	// Event, and a wave of them at the client-go default of 5 per second would
	// wait seconds behind each other (and the patches behind the Events).
	APIQPS   float32
	APIBurst int
}

// Validate checks every option and returns the settings they make. Each error
// names the flag and the bad value.
func (o Options) Validate() (Settings, error) {
	var errs []error
	bad := func(flag string, value any, why string) {
		errs = append(errs, fmt.Errorf("--%s %q: %s", flag, fmt.Sprint(value), why))
	}
	var s Settings
	if msgs := validation.IsDNS1123Label(o.Namespace); len(msgs) > 0 {
		bad("namespace", o.Namespace, "want a namespace name (set --namespace or POD_NAMESPACE)")
	}
	for flag, name := range map[string]string{"lock-name": o.LockName, "election-lease": o.ElectionLease} {
		if msgs := validation.IsDNS1123Subdomain(name); len(msgs) > 0 {
			bad(flag, name, strings.Join(msgs, "; "))
		}
	}
	if o.Identity == "" {
		bad("identity", o.Identity, "want this replica's name (set --identity or POD_NAME)")
	}
	if o.LogFormat != "text" && o.LogFormat != "json" {
		bad("log-format", o.LogFormat, "want text or json")
	}
	q, err := policy.ParseQuantity(o.MaxUnavailable)
	if err != nil {
		bad("max-unavailable", o.MaxUnavailable, err.Error())
	}
	s.Rules.MaxUnavailable = q
	for _, per := range o.MaxUnavailablePer {
		l, err := policy.ParseLabelLimit(per)
		if err != nil {
			bad("max-unavailable-per", per, err.Error())
			continue
		}
		s.Rules.PerLabel = append(s.Rules.PerLabel, l)
	}
	switch order := policy.ControlPlaneOrder(o.ControlPlane); order {
	case policy.ControlPlaneLast, policy.ControlPlaneFirst, policy.ControlPlaneAny:
		s.Rules.ControlPlane = order
	default:
		bad("control-plane", o.ControlPlane, "want last, first or any")
	}
	if o.FailureBudget != "" {
		b, err := policy.ParseBudget(o.FailureBudget)
		if err != nil {
			bad("failure-budget", o.FailureBudget, err.Error())
		}
		s.Budget = &b
	}
	if msgs := validation.IsDNS1123Subdomain(o.PoolsConfigMap); o.PoolsConfigMap != "" && len(msgs) > 0 {
		bad("pools-configmap", o.PoolsConfigMap, strings.Join(msgs, "; "))
	}
	if o.APIQPS <= 0 {
		bad("kube-api-qps", o.APIQPS, "want a positive number of requests per second")
	}
	if o.APIBurst < 1 {
		bad("kube-api-burst", o.APIBurst, "want at least 1")
	}
	if o.AdmissionTimeout <= 0 {
		bad("admission-timeout", o.AdmissionTimeout, "want a positive duration")
	}
	s.AdmissionTimeout = o.AdmissionTimeout
	return s, errors.Join(errs...)
}

// DefaultIdentity is POD_NAME, else the host name.
func DefaultIdentity() string {
	if name := os.Getenv("POD_NAME"); name != "" {
		return name
	}
	host, _ := os.Hostname()
	return host
}

// Start runs the controller from validated options until ctx ends.
func Start(ctx context.Context, o Options, log *slog.Logger) error {
	settings, err := o.Validate()
	if err != nil {
		return err
	}
	m := NewMetrics()
	client, err := kube.NewClient(o.Kubeconfig, "nodepatch-controller", kube.Rate{QPS: o.APIQPS, Burst: o.APIBurst}, m.CountRequest)
	if err != nil {
		return err
	}
	ready := &atomic.Bool{}
	srv, err := metrics.Serve(o.MetricsAddress, m.Registry, ready, log)
	if err != nil {
		return err
	}
	defer metrics.Shutdown(srv)
	// Events have a client, and so a rate limit, of their own: an admission's
	// patch never waits behind the Events of the admissions before it.
	eventsClient, err := kube.NewClient(o.Kubeconfig, "nodepatch-controller", kube.Rate{QPS: o.APIQPS, Burst: o.APIBurst}, m.CountRequest)
	if err != nil {
		return err
	}
	broadcaster := record.NewBroadcaster()
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: eventsClient.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	ready.Store(true)
	log.Info("controller started", "identity", o.Identity, "version", version.Version, "maxUnavailable", o.MaxUnavailable,
		"maxUnavailablePer", o.MaxUnavailablePer, "controlPlane", o.ControlPlane, "failureBudget", o.FailureBudget, "poolsConfigMap", o.PoolsConfigMap)
	return Run(ctx, Config{
		Client: client, Namespace: o.Namespace, LockName: o.LockName, Identity: o.Identity, ElectionLease: o.ElectionLease,
		Settings: settings, PoolsConfigMap: o.PoolsConfigMap, Metrics: m, Log: log,
		Events: broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "nodepatch-controller"}),
	})
}
