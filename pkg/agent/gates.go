package agent

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/nodepatch/nodepatch/pkg/state"
)

// GatePoint is where in the cycle an approval gate stands.
type GatePoint string

// The points of --gate.
const (
	// BeforeDrain: the node holds its slot and is cordoned; no pod moved yet.
	BeforeDrain GatePoint = "before-drain"
	// BeforeReboot: drained, the host not yet asked.
	BeforeReboot GatePoint = "before-reboot"
	// AfterReboot: back in service (uncordoned), the slot still held.
	AfterReboot GatePoint = "after-reboot"
)

// GateExpiry is what a gate's timeout leads to.
type GateExpiry string

// The choices of a gate's on-timeout.
const (
	// GateAbort undoes the cycle (after the reboot: ends it) and retries later.
	GateAbort GateExpiry = "abort"
	// GateFail halts the node, keeping its slot, until an operator looks.
	GateFail GateExpiry = "fail"
)

// Gate is one approval an external system gives for each cycle (a change
// ticket, a storage quiesce): the cycle waits at Point until the Node carries
// state.ApprovalAnnotation(Name) with this cycle's id, for at most Timeout.
type Gate struct {
	Name      string
	Point     GatePoint
	Timeout   time.Duration
	OnTimeout GateExpiry
}

// DefaultGateTimeout bounds a gate whose flag names no timeout.
const DefaultGateTimeout = time.Hour

// ParseGate reads a --gate value: NAME@POINT[,timeout=DURATION][,on-timeout=abort|fail].
func ParseGate(s string) (Gate, error) {
	head, opts, _ := strings.Cut(s, ",")
	name, point, ok := strings.Cut(head, "@")
	if !ok {
		return Gate{}, fmt.Errorf("want NAME@before-drain|before-reboot|after-reboot[,timeout=DURATION][,on-timeout=abort|fail]")
	}
	g := Gate{Name: name, Point: GatePoint(point), Timeout: DefaultGateTimeout, OnTimeout: GateAbort}
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 || len(name) > state.MaxGateName {
		return Gate{}, fmt.Errorf("gate name %q: want a lower-case DNS label of at most %d characters", name, state.MaxGateName)
	}
	switch g.Point {
	case BeforeDrain, BeforeReboot, AfterReboot:
	default:
		return Gate{}, fmt.Errorf("point %q: want before-drain, before-reboot or after-reboot", point)
	}
	if opts == "" {
		return g, nil
	}
	for _, opt := range strings.Split(opts, ",") {
		key, value, _ := strings.Cut(opt, "=")
		switch key {
		case "timeout":
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 {
				return Gate{}, fmt.Errorf("timeout %q: want a positive duration", value)
			}
			g.Timeout = d
		case "on-timeout":
			if value != string(GateAbort) && value != string(GateFail) {
				return Gate{}, fmt.Errorf("on-timeout %q: want abort or fail", value)
			}
			g.OnTimeout = GateExpiry(value)
		default:
			return Gate{}, fmt.Errorf("option %q: want timeout=DURATION or on-timeout=abort|fail", opt)
		}
	}
	return g, nil
}

// String renders the gate as ParseGate reads it.
func (g Gate) String() string {
	return fmt.Sprintf("%s@%s,timeout=%s,on-timeout=%s", g.Name, g.Point, g.Timeout, g.OnTimeout)
}

// ParseGates reads every --gate value; one gate name stands at one point only.
func ParseGates(values []string) ([]Gate, error) {
	var gates []Gate
	seen := map[string]bool{}
	for _, v := range values {
		g, err := ParseGate(v)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", v, err)
		}
		if seen[g.Name] {
			return nil, fmt.Errorf("%q: gate %s is given twice", v, g.Name)
		}
		seen[g.Name] = true
		gates = append(gates, g)
	}
	return gates, nil
}

// pendingGate is the first gate at point not yet approved for this cycle; ok
// is false when every gate there is approved.
func (o Observation) pendingGate(point GatePoint) (Gate, bool) {
	cycle := o.Node.State.CycleID()
	for _, g := range o.Limits.Gates {
		if g.Point == point && o.Node.State.Approvals[g.Name] != cycle {
			return g, true
		}
	}
	return Gate{}, false
}

// decideGate holds the cycle at a pending gate, and past its timeout does what
// the gate says. afterReboot: the node is back in service, so aborting means
// ending the cycle, not undoing it.
func (o Observation) decideGate(point GatePoint, since time.Time, phase string) (Step, bool) {
	g, pending := o.pendingGate(point)
	if !pending {
		return Step{}, false
	}
	deadline := since.Add(g.Timeout)
	if o.Now.Before(deadline) {
		return Step{Action: ActWait, Phase: phase, Gate: g.Name, Blocked: []string{BlockGate}, Until: deadline,
			Reason: fmt.Sprintf("waiting for approval %s (%s) of cycle %s until %s", g.Name, g.Point, o.Node.State.CycleID(), deadline.Format(time.RFC3339))}, true
	}
	why := fmt.Sprintf("approval %s (%s) not given within %s", g.Name, g.Point, g.Timeout)
	switch {
	case g.OnTimeout == GateFail:
		return Step{Action: ActFailGate, Phase: "Failed", Gate: g.Name, Reason: why}, true
	case point == AfterReboot:
		return Step{Action: ActFinish, Phase: "Idle", Reason: why + "; ending the cycle"}, true
	}
	return Step{Action: ActGateExpired, Phase: phase, Gate: g.Name, Reason: why + "; undoing the cycle, to try again later"}, true
}
