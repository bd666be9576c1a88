package policy

import (
	"errors"
	"fmt"
	"strings"
)

// String renders the rules as ParseRules reads them, e.g.
// "max-unavailable=10%;max-unavailable-per=topology.kubernetes.io/zone=1;control-plane=last".
// The controller publishes it on the lock's header, so that `nodepatch status`
// can tell which rule holds each waiting node.
func (r Rules) String() string {
	parts := []string{"max-unavailable=" + r.MaxUnavailable.String()}
	for _, l := range r.PerLabel {
		parts = append(parts, fmt.Sprintf("max-unavailable-per=%s=%d", l.Key, l.Max))
	}
	return strings.Join(append(parts, "control-plane="+string(r.ControlPlane)), ";")
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
		case "control-plane":
			r.ControlPlane = ControlPlaneOrder(value)
			if r.ControlPlane != ControlPlaneLast && r.ControlPlane != ControlPlaneFirst && r.ControlPlane != ControlPlaneAny {
				err = fmt.Errorf("%q is not last, first or any", value)
			}
		default:
			err = errors.New("unknown rule")
		}
		if key != "max-unavailable-per" && seen[key] {
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
