package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodepatch/nodepatch/pkg/lock"
	"github.com/nodepatch/nodepatch/pkg/policy"
)

// The pools live in one ConfigMap (Config.PoolsConfigMap), one key per pool,
// which the leader watches by name: an edit applies at the next round, with no
// restart. A bad edit never stops the rollout: the leader keeps the last good
// pools, says why with a Warning Event on the ConfigMap, on the lock's header
// (for `nodepatch status`) and in nodepatch_controller_pools_valid.

// ConfigMapGetter is the leader's cache of the pools ConfigMap (its
// informer's lister in the controller's namespace).
type ConfigMapGetter interface {
	Get(string) (*corev1.ConfigMap, error)
}

// maxMessage bounds what an Event or the header carries of a bad ConfigMap:
// its values are the operator's and may be long.
const maxMessage = 2000

// poolsInformer watches the one pools ConfigMap, by a field selector on its name.
func poolsInformer(cfg Config) informers.SharedInformerFactory {
	return informers.NewSharedInformerFactoryWithOptions(cfg.Client, 0, informers.WithNamespace(cfg.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", cfg.PoolsConfigMap).String()
		}))
}

// ReadPoolsFrom makes the rollout take its pools from the ConfigMap named in
// its Config, as cms shows it. Without it, no node is in a pool.
func (r *Rollout) ReadPoolsFrom(cms ConfigMapGetter) { r.configMaps = cms }

// poolsView reads the pools ConfigMap from the cache: the pools in force,
// whether none is known, and the ConfigMap's fault ("" when it is good). A bad
// ConfigMap keeps the last good pools, or, when this leader has seen none, the
// pools the last leader published on the header.
func (r *Rollout) poolsView(header *coordinationv1.Lease) (pools []policy.Pool, unknown bool, fault string) {
	if r.configMaps == nil || r.cfg.PoolsConfigMap == "" {
		return nil, false, ""
	}
	var data map[string]string
	cm, err := r.configMaps.Get(r.cfg.PoolsConfigMap)
	switch {
	case err == nil:
		data = cm.Data
	case !apierrors.IsNotFound(err):
		return r.pools, !r.poolsKnown, fmt.Sprintf("reading ConfigMap %s/%s from the cache: %v", r.cfg.Namespace, r.cfg.PoolsConfigMap, err)
	}
	parsed, err := policy.ParsePools(data)
	if err == nil {
		r.pools, r.poolsKnown = parsed, true
		return parsed, false, ""
	}
	if !r.poolsKnown && header != nil {
		if published, perr := policy.ParseRules(header.Annotations[lock.AnnotationRolloutPolicy]); perr == nil {
			r.pools, r.poolsKnown = published.Pools, true
		}
	}
	return r.pools, !r.poolsKnown, truncate(fmt.Sprintf("ConfigMap %s/%s: %v", r.cfg.Namespace, r.cfg.PoolsConfigMap, err))
}

// notePools tells of a change in the pools: a new fault (Warning Event, once
// per fault), a new good content (Normal Event), and nodes that more than one
// pool selects (a Warning Event on each, once per set of pools).
func (r *Rollout) notePools(act Actions, fault string) {
	r.cfg.Metrics.Pools.record(fault == "", act.Plan)
	if fault != "" && fault != r.poolsFault {
		r.cfg.Log.Error("the pools ConfigMap is invalid; keeping the last good pools", "err", fault, "pools", describePools(act.Rules.Pools))
		r.cfg.Events.Event(r.configMapRef(), corev1.EventTypeWarning, "PoolsInvalid",
			truncate(fault+"; the rollout controller keeps the last good pools: "+describePools(act.Rules.Pools)))
	}
	r.poolsFault = fault
	if described := describePools(act.Rules.Pools); fault == "" && r.configMaps != nil && described != r.poolsApplied {
		r.cfg.Log.Info("pools in force", "pools", described)
		r.cfg.Events.Event(r.configMapRef(), corev1.EventTypeNormal, "PoolsApplied", truncate("pools in force: "+described))
		r.poolsApplied = described
	}
	seen := map[string]bool{}
	for _, o := range act.Plan.Overlaps {
		seen[o.Node] = true
		pools := strings.Join(o.Pools, ", ")
		if r.overlaps[o.Node] == pools {
			continue
		}
		r.overlaps[o.Node] = pools
		r.cfg.Events.Event(nodeRef(o.Node), corev1.EventTypeWarning, "PoolsOverlap", fmt.Sprintf(
			"pools %s select node %s, each; it is not admitted until their selectors (ConfigMap %s/%s) choose one pool for it",
			pools, o.Node, r.cfg.Namespace, r.cfg.PoolsConfigMap))
	}
	for node := range r.overlaps {
		if !seen[node] {
			delete(r.overlaps, node)
		}
	}
}

// publishFault writes the pools' fault on the lock's header (or removes it),
// when the header in the cache says otherwise. A header the cache does not
// show yet is the one this round's limit created.
func (r *Rollout) publishFault(ctx context.Context, header *coordinationv1.Lease, fault string) error {
	var published string
	if header != nil {
		published = header.Annotations[lock.AnnotationRolloutPolicyError]
	}
	if published == fault {
		return nil
	}
	value := &fault
	if fault == "" {
		value = nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]*string{lock.AnnotationRolloutPolicyError: value}}})
	if err != nil {
		return err
	}
	_, err = r.cfg.Client.CoordinationV1().Leases(r.cfg.Namespace).Patch(ctx, r.cfg.LockName, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("writing the pools' fault on lease %s/%s: %w", r.cfg.Namespace, r.cfg.LockName, err)
	}
	return nil
}

func describePools(pools []policy.Pool) string {
	if len(pools) == 0 {
		return "none (every node under the default policy)"
	}
	described := make([]string, len(pools))
	for i, p := range pools {
		described[i] = p.Describe()
	}
	return strings.Join(described, "; ")
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return strings.ToValidUTF8(s[:maxMessage], "") + "..."
}

func (r *Rollout) configMapRef() *corev1.ObjectReference {
	return &corev1.ObjectReference{Kind: "ConfigMap", APIVersion: "v1", Namespace: r.cfg.Namespace, Name: r.cfg.PoolsConfigMap}
}

// PoolMetrics are the pools' gauges.
type PoolMetrics struct {
	Valid       prometheus.Gauge
	Overlaps    prometheus.Gauge
	Limit       *prometheus.GaugeVec
	Unavailable *prometheus.GaugeVec
}

func newPoolMetrics(reg *prometheus.Registry) PoolMetrics {
	m := PoolMetrics{
		Valid: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodepatch_controller_pools_valid",
			Help: "1 while the pools ConfigMap's content is in force (or there is no ConfigMap); 0 while it is invalid and the last good pools are kept."}),
		Overlaps: prometheus.NewGauge(prometheus.GaugeOpts{Name: "nodepatch_controller_pool_overlaps",
			Help: "Nodes that more than one pool selects (held until the selectors are fixed)."}),
		Limit: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nodepatch_controller_pool_limit",
			Help: "Nodes of the pool that may be out at once (its max-unavailable resolved)."}, []string{"pool"}),
		Unavailable: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "nodepatch_controller_pool_unavailable",
			Help: "Nodes of the pool out of service now, for any reason."}, []string{"pool"}),
	}
	reg.MustRegister(m.Valid, m.Overlaps, m.Limit, m.Unavailable)
	m.Valid.Set(1)
	return m
}

// record updates the gauges from one decision; valid says whether the
// ConfigMap's content is the one in force.
func (m PoolMetrics) record(valid bool, plan policy.Plan) {
	m.Valid.Set(map[bool]float64{false: 0, true: 1}[valid])
	m.Overlaps.Set(float64(len(plan.Overlaps)))
	m.Limit.Reset()
	m.Unavailable.Reset()
	for _, p := range plan.Pools {
		m.Limit.WithLabelValues(p.Name).Set(float64(p.Limit))
		m.Unavailable.WithLabelValues(p.Name).Set(float64(p.Unavailable))
	}
}
