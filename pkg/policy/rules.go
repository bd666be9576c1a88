package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// String renders the rules as ParseRules reads them, e.g.
// "max-unavailable=10%;max-unavailable-per=topology.kubernetes.io/zone=1;control-plane=last",
// then each pool as pool={"name":"gpu","selector":"nodepool=gpu",...}: its
// spec in JSON, as the ConfigMap gave it. The controller publishes it on the
// lock's header, so that `nodepatch status` can tell which rule holds each
// waiting node, and a new leader knows the pools the last one kept.
func (r Rules) String() string {
	parts := []string{"max-unavailable=" + r.MaxUnavailable.String()}
	for _, l := range r.PerLabel {
		parts = append(parts, fmt.Sprintf("max-unavailable-per=%s=%d", l.Key, l.Max))
	}
	parts = append(parts, "control-plane="+string(r.ControlPlane))
	for _, p := range r.Pools {
		parts = append(parts, "pool="+p.json())
	}
	return strings.Join(parts, ";")
}

// namedPool is a pool as the rules publish it: its name with its spec.
type namedPool struct {
	Name string `json:"name"`
	PoolSpec
}

// json renders the pool with no ';' in it (JSON has ';' only inside strings,
// where \u003b says the same), so that the rules still split at ';'.
func (p Pool) json() string {
	b, err := json.Marshal(namedPool{Name: p.Name, PoolSpec: p.Spec})
	if err != nil { // strings, string slices and an IntOrString always marshal
		panic(fmt.Sprintf("pool %s: %v", p.Name, err))
	}
	return string(bytes.ReplaceAll(b, []byte(";"), []byte(`\u003b`)))
}

// parsePool reads what Pool.json writes.
func parsePool(s string) (Pool, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.DisallowUnknownFields()
	var np namedPool
	if err := dec.Decode(&np); err != nil {
		return Pool{}, err
	}
	if dec.More() {
		return Pool{}, errors.New("more than one pool")
	}
	return NewPool(np.Name, np.PoolSpec)
}

// ParseRules reads what Rules.String writes.
func ParseRules(s string) (Rules, error) {
	var r Rules
	var errs []error
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		key, value, _ := strings.Cut(part, "=")
		var err error
		switch key {
		case "max-unavailable":
			r.MaxUnavailable, err = ParseQuantity(value)
		case "max-unavailable-per":
			var l LabelLimit
			if l, err = ParseLabelLimit(value); err == nil {
				r.PerLabel = append(r.PerLabel, l)
			}
		case "pool":
			var p Pool
			if p, err = parsePool(value); err == nil {
				err = r.addPool(p)
			}
		case "control-plane":
			r.ControlPlane = ControlPlaneOrder(value)
			if r.ControlPlane != ControlPlaneLast && r.ControlPlane != ControlPlaneFirst && r.ControlPlane != ControlPlaneAny {
				err = fmt.Errorf("%q is not last, first or any", value)
			}
		default:
			err = errors.New("unknown rule")
		}
		if key != "max-unavailable-per" && key != "pool" && seen[key] {
			err = errors.New("given twice")
		}
		seen[key] = true
		if err != nil {
			errs = append(errs, fmt.Errorf("rule %q: %w", part, err))
		}
	}
	if !seen["max-unavailable"] || !seen["control-plane"] {
		errs = append(errs, errors.New("want max-unavailable and control-plane"))
	}
	if err := errors.Join(errs...); err != nil {
		return Rules{}, fmt.Errorf("rollout policy %q: %w", s, err)
	}
	return r, nil
}

func (r *Rules) addPool(p Pool) error {
	for _, q := range r.Pools {
		if q.Name == p.Name {
			return fmt.Errorf("pool %q given twice", p.Name)
		}
	}
	r.Pools = append(r.Pools, p)
	return nil
}
