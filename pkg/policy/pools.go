package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/nodepatch/nodepatch/pkg/schedule"
)

// Pool is a set of nodes, chosen by a label selector, with limits of its own.
// Its limits count only its own nodes; the overall max-unavailable, the
// control-plane order and the failure budget stay global on top of it.
type Pool struct {
	Name           string
	Selector       labels.Selector
	MaxUnavailable Quantity // of the nodes in the pool
	PerLabel       []LabelLimit
	// Window is when the pool's nodes may be admitted; the zero Schedule is
	// always open.
	Window schedule.Schedule
	// Spec is what the pool was read from, so that it renders as it was given.
	Spec PoolSpec
}

// PoolSpec is one pool as an operator writes it: the value of one key of the
// pools ConfigMap (the key is the pool's name), in YAML or JSON.
type PoolSpec struct {
	// Selector is a label selector, e.g. "nodepool=gpu" or "tier in (a,b)".
	Selector string `json:"selector"`
	// MaxUnavailable is a number, or a percentage of the pool's nodes.
	MaxUnavailable *intstr.IntOrString `json:"maxUnavailable"`
	// MaxUnavailablePer are KEY=N limits per label value, within the pool.
	MaxUnavailablePer []string `json:"maxUnavailablePer,omitempty"`
	// Windows and Blackouts are --window and --blackout values: when the
	// pool's nodes may be admitted. No windows: at any time outside blackouts.
	Windows   []string `json:"windows,omitempty"`
	Blackouts []string `json:"blackouts,omitempty"`
}

// ParsePools reads the pools ConfigMap's data: one pool per key, the key its
// name. Every bad key is reported, each with its value, so that an operator
// can find the typo; an error means no pool of data is usable, so that a
// half-read ConfigMap never lets a pool's nodes fall under the default policy.
func ParsePools(data map[string]string) ([]Pool, error) {
	keys := make([]string, 0, len(data))
	for k := range data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var pools []Pool
	var errs []error
	for _, key := range keys {
		var spec PoolSpec
		if err := yaml.UnmarshalStrict([]byte(data[key]), &spec); err != nil {
			errs = append(errs, fmt.Errorf("key %q value %q: %w", key, data[key], err))
			continue
		}
		p, err := NewPool(key, spec)
		if err != nil {
			errs = append(errs, fmt.Errorf("key %q value %q: %w", key, data[key], err))
			continue
		}
		pools = append(pools, p)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return pools, nil
}

// NewPool validates spec and builds the pool name. Errors name the field and
// its value.
func NewPool(name string, spec PoolSpec) (Pool, error) {
	p := Pool{Name: name, Spec: spec}
	var errs []error
	bad := func(field string, value any, why string) {
		errs = append(errs, fmt.Errorf("%s %q: %s", field, fmt.Sprint(value), why))
	}
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		bad("name", name, "want a pool name (a DNS label: lower case, digits and -): "+strings.Join(msgs, "; "))
	}
	sel, err := labels.Parse(spec.Selector)
	switch {
	case err != nil:
		bad("selector", spec.Selector, err.Error())
	case sel.Empty():
		bad("selector", spec.Selector, "want a label selector that chooses the pool's nodes, e.g. nodepool=gpu")
	}
	p.Selector = sel
	if spec.MaxUnavailable == nil {
		errs = append(errs, errors.New("maxUnavailable: missing (want a number of nodes or a percentage of the pool's)"))
	} else if p.MaxUnavailable, err = ParseQuantity(spec.MaxUnavailable.String()); err != nil {
		bad("maxUnavailable", spec.MaxUnavailable.String(), err.Error())
	}
	for _, per := range spec.MaxUnavailablePer {
		l, err := ParseLabelLimit(per)
		if err != nil {
			bad("maxUnavailablePer", per, err.Error())
			continue
		}
		p.PerLabel = append(p.PerLabel, l)
	}
	if p.Window, err = schedule.Parse(spec.Windows, spec.Blackouts); err != nil {
		errs = append(errs, fmt.Errorf("windows or blackouts: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return Pool{}, fmt.Errorf("pool %q: %w", name, err)
	}
	return p, nil
}

// Describe is the pool for logs, Events and status, e.g.
// "gpu (nodepool=gpu): max-unavailable 1, max-unavailable-per zone=1, window sat 02:00-06:00 UTC".
func (p Pool) Describe() string {
	parts := []string{"max-unavailable " + p.MaxUnavailable.String()}
	for _, l := range p.PerLabel {
		parts = append(parts, fmt.Sprintf("max-unavailable-per %s=%d", l.Key, l.Max))
	}
	if len(p.Spec.Windows) > 0 || len(p.Spec.Blackouts) > 0 {
		parts = append(parts, "window "+p.Window.String())
	}
	return fmt.Sprintf("%s (%s): %s", p.Name, p.Selector, strings.Join(parts, ", "))
}

// Open says whether the pool's nodes may be admitted at now.
func (p Pool) Open(now time.Time) bool { return p.Window.Open(now) }

// Rule names of the pools, as holds report them and metrics label them.
const (
	RuleWindowClosed = "window closed"
)

// RulePool names a pool's own rule, e.g. "pool gpu: max-unavailable".
func RulePool(pool, rule string) string { return "pool " + pool + ": " + rule }

// RulePoolsOverlap holds a node that more than one pool selects: a
// configuration error, and the node waits until it is fixed rather than go
// under either pool's limits.
func RulePoolsOverlap(pools []string) string {
	verb := " all select"
	if len(pools) == 2 {
		verb = " both select"
	}
	return "pools " + strings.Join(pools, " and ") + verb + " the node (fix their selectors)"
}

// Overlap is a node that more than one pool selects.
type Overlap struct {
	Node  string
	Pools []string
}

// PoolsOf names the pools whose selectors match the labels, in the rules'
// order: none for a node under the default policy, two or more for a
// misconfigured one.
func (r Rules) PoolsOf(l map[string]string) []string {
	var names []string
	for _, p := range r.Pools {
		if p.Selector.Matches(labels.Set(l)) {
			names = append(names, p.Name)
		}
	}
	return names
}

// poolsOf is PoolsOf as indexes into r.Pools.
func (r Rules) poolsOf(l map[string]string) []int {
	var in []int
	for i, p := range r.Pools {
		if p.Selector.Matches(labels.Set(l)) {
			in = append(in, i)
		}
	}
	return in
}
