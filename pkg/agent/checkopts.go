package agent

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/nodepatch/nodepatch/pkg/prom"
)

// CheckOptions are the flags of the holds from outside the node (kured's names
// where kured has the feature) and of the health gate after the reboot.
type CheckOptions struct {
	// BlockingPodSelectors: pods on the node matching any of these hold the cycle.
	BlockingPodSelectors []string

	PrometheusURL        string
	PrometheusTimeout    time.Duration
	AlertFilterRegexp    string
	AlertFilterMatchOnly bool
	AlertFiringOnly      bool
	AlertLabelMatchers   string
	BlockWhileQuery      string

	// KuredDaemonSet (NAMESPACE/NAME) and KuredLockAnnotation: while kured runs
	// beside nodepatch, no cycle starts while kured's lock has a holder.
	KuredDaemonSet      string
	KuredLockAnnotation string

	HealthDaemonSets bool
	ReadyPodSelector string
	HealthQuery      string
	Soak             time.Duration
	HealthTimeout    time.Duration
}

// healthGate says whether a rebooted node holds its slot until healthy (or
// for soak).
func (c CheckOptions) healthGate(soak time.Duration) bool {
	return c.HealthDaemonSets || c.ReadyPodSelector != "" || c.HealthQuery != "" || soak > 0
}

func (c CheckOptions) validate(node string, bad func(string, any, string)) []error {
	for _, sel := range c.BlockingPodSelectors {
		if _, err := parseSelector(sel); err != nil {
			bad("blocking-pod-selector", sel, err.Error())
		}
	}
	if _, err := labels.Parse(c.ReadyPodSelector); err != nil {
		bad("ready-pod-selector", c.ReadyPodSelector, err.Error())
	}
	errs := c.validatePrometheus(node, bad)
	if c.KuredDaemonSet != "" {
		if _, _, err := splitNamespacedName(c.KuredDaemonSet); err != nil {
			bad("kured-daemonset", c.KuredDaemonSet, err.Error())
		}
		if msgs := validation.IsQualifiedName(c.KuredLockAnnotation); len(msgs) > 0 {
			bad("kured-lock-annotation", c.KuredLockAnnotation, strings.Join(msgs, "; "))
		}
	}
	if c.Soak < 0 {
		bad("soak", c.Soak, "want 0 (no soak) or a positive duration")
	}
	if c.HealthTimeout <= 0 {
		bad("health-timeout", c.HealthTimeout, "want a positive duration")
	}
	return errs
}

// validatePrometheus checks that every Prometheus feature has a server to
// ask, and the settings of those that do (pkg/prom's errors name their flags).
func (c CheckOptions) validatePrometheus(node string, bad func(string, any, string)) []error {
	if c.PrometheusURL == "" {
		for flag, value := range map[string]string{"alert-filter-regexp": c.AlertFilterRegexp, "alert-label-matchers": c.AlertLabelMatchers,
			"block-while-query": c.BlockWhileQuery, "health-query": c.HealthQuery} {
			if value != "" {
				bad(flag, value, "needs --prometheus-url")
			}
		}
		return nil
	}
	if err := c.alertConfig(node).Validate(); err != nil {
		return []error{err}
	}
	return nil
}

func (c CheckOptions) alertConfig(node string) prom.AlertConfig {
	return prom.AlertConfig{ClientConfig: prom.ClientConfig{URL: c.PrometheusURL, Timeout: c.PrometheusTimeout}, NodeName: node,
		FilterRegexp: c.AlertFilterRegexp, FilterMatchOnly: c.AlertFilterMatchOnly, FiringOnly: c.AlertFiringOnly,
		LabelMatchers: c.AlertLabelMatchers}
}

// parseSelector parses a label selector that must select something: an empty
// blocking selector would match every pod and block every reboot.
func parseSelector(s string) (labels.Selector, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("an empty selector would match every pod")
	}
	return labels.Parse(s)
}

func splitNamespacedName(s string) (string, string, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || len(validation.IsDNS1123Label(ns)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
		return "", "", fmt.Errorf("want NAMESPACE/NAME")
	}
	return ns, name, nil
}

// effects builds the blockers and the health gate the options ask for.
func (c CheckOptions) effects(client kubernetes.Interface, pods PodLister, node string) ([]Blocker, HealthChecker, error) {
	var blockers []Blocker
	if len(c.BlockingPodSelectors) > 0 {
		pb := PodBlocker{Pods: pods}
		for _, s := range c.BlockingPodSelectors {
			sel, err := parseSelector(s)
			if err != nil {
				return nil, nil, fmt.Errorf("--blocking-pod-selector %q: %w", s, err)
			}
			pb.Selectors = append(pb.Selectors, sel)
		}
		blockers = append(blockers, pb)
	}
	promBlockers, err := c.prometheusBlockers(node)
	if err != nil {
		return nil, nil, err
	}
	blockers = append(blockers, promBlockers...)
	if c.KuredDaemonSet != "" {
		ns, name, err := splitNamespacedName(c.KuredDaemonSet)
		if err != nil {
			return nil, nil, fmt.Errorf("--kured-daemonset %q: %w", c.KuredDaemonSet, err)
		}
		blockers = append(blockers, KuredBlocker{DaemonSets: client.AppsV1().DaemonSets(ns), Name: name,
			Annotation: c.KuredLockAnnotation, Clock: time.Now})
	}
	gate := HealthGate{Pods: pods, DaemonSets: c.HealthDaemonSets}
	if c.ReadyPodSelector != "" {
		sel, err := labels.Parse(c.ReadyPodSelector)
		if err != nil {
			return nil, nil, fmt.Errorf("--ready-pod-selector %q: %w", c.ReadyPodSelector, err)
		}
		gate.ReadyPods = sel
	}
	if c.HealthQuery != "" {
		q, err := prom.NewHealthChecker(c.alertConfig(node).ClientConfig, c.HealthQuery)
		if err != nil {
			return nil, nil, err
		}
		gate.Query = q
	}
	return blockers, gate, nil
}

// prometheusBlockers: with --prometheus-url, the alerts (filtered) hold, and
// --block-while-query does while it returns series.
func (c CheckOptions) prometheusBlockers(node string) ([]Blocker, error) {
	if c.PrometheusURL == "" {
		return nil, nil
	}
	alerts, err := prom.NewAlertChecker(c.alertConfig(node))
	if err != nil {
		return nil, err
	}
	blockers := []Blocker{ExternalBlocker{Reason: BlockAlert, UnreachableReason: BlockPrometheusUnreachable,
		Checker: alerts, Unreachable: prom.IsUnreachable}}
	if c.BlockWhileQuery != "" {
		q, err := prom.NewQueryChecker(c.alertConfig(node).ClientConfig, c.BlockWhileQuery)
		if err != nil {
			return nil, err
		}
		blockers = append(blockers, ExternalBlocker{Reason: BlockQuery, UnreachableReason: BlockPrometheusUnreachable,
			Checker: q, Unreachable: prom.IsUnreachable})
	}
	return blockers, nil
}
