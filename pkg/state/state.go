// Package state is the protocol nodepatch keeps on each Node: the annotations an
// operator sets to steer a node, and the annotations the agent writes so that every
// phase of a reboot cycle survives a restart of the agent, the API server or the host.
package state

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Annotations an operator sets.
const (
	// AnnotationForceReboot "true" makes the node reboot even when the host does not ask for it.
	AnnotationForceReboot = "nodepatch.io/force-reboot"
	// AnnotationBlockReboot, when non-empty, keeps the node from starting a reboot; the value is the reason.
	AnnotationBlockReboot = "nodepatch.io/block-reboot"
	// AnnotationPause on the lock's header Lease, when non-empty, pauses every node; the value is the reason.
	AnnotationPause = "nodepatch.io/pause"
	// AnnotationPriority, an integer, moves the node up (higher) or down the
	// rollout controller's queue.
	AnnotationPriority = "nodepatch.io/priority"
)

// Annotations of the rollout protocol between the agents and the controller.
const (
	// AnnotationNeedSince: the agent reports that its node needs a cycle and
	// may start one (nothing on the node holds it back), since when.
	AnnotationNeedSince = "nodepatch.io/need-since"
	// AnnotationAdmitted: the rollout controller lets the node start its cycle
	// (take a slot), since when.
	AnnotationAdmitted = "nodepatch.io/admitted"
	// AnnotationAdmittedSlot: with an admission, the lock slot the controller
	// suggests the node try first, so that nodes admitted together do not race
	// for the same slot. Only a hint: the Lease stays the judge.
	AnnotationAdmittedSlot = "nodepatch.io/admitted-slot"
)

// AdmittedSlot is the slot hint of an admission in annotations; -1 when there
// is none or it is not a slot number.
func AdmittedSlot(annotations map[string]string) int {
	if _, ok := annotations[AnnotationAdmitted]; !ok {
		return -1
	}
	v, ok := annotations[AnnotationAdmittedSlot]
	if !ok {
		return -1
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 {
		return -1
	}
	return i
}

// Annotations the agent owns.
const (
	AnnotationPhase             = "nodepatch.io/phase"
	AnnotationBootIDBefore      = "nodepatch.io/boot-id-before"
	AnnotationCordonedByUs      = "nodepatch.io/cordoned-by-nodepatch"
	AnnotationCycleStarted      = "nodepatch.io/cycle-started"
	AnnotationRebootRequestedAt = "nodepatch.io/reboot-requested-at"
	AnnotationRebootAttempts    = "nodepatch.io/reboot-attempts"
	AnnotationRetryAfter        = "nodepatch.io/retry-after"
	AnnotationDrainFailures     = "nodepatch.io/drain-failures"
	AnnotationLastReboot        = "nodepatch.io/last-reboot"
	AnnotationLastPatch         = "nodepatch.io/last-patch"
	// AnnotationDrained records that this cycle's drain finished: the step to
	// Rebooting is then decided on a fresh look at the Node.
	AnnotationDrained = "nodepatch.io/drained"
	// AnnotationRepeatedReboots counts verified reboots in a row after which the
	// host still asked for a reboot (a reboot loop); removing it lets the node go.
	AnnotationRepeatedReboots = "nodepatch.io/repeated-reboots"
	// AnnotationBackAt: the node came back from its reboot (Ready from the new
	// boot) at this time and is in service again; it keeps its slot while the
	// health gate and the soak run (phase Verifying).
	AnnotationBackAt = "nodepatch.io/back-at"
	// AnnotationDrainedAt: when this cycle's drain finished (--reboot-delay
	// counts from it).
	AnnotationDrainedAt = "nodepatch.io/drained-at"
	// AnnotationLBExcludedByUs: nodepatch set LabelExcludeFromLB for this cycle
	// (an operator's own label is never removed).
	AnnotationLBExcludedByUs = "nodepatch.io/lb-excluded-by-nodepatch"
	// AnnotationCycleDurations: the node's last cycles, cordon to release, in
	// whole seconds, newest first (at most MaxCycleDurations): the window only
	// lets a cycle start that would finish before it closes.
	AnnotationCycleDurations = "nodepatch.io/cycle-durations"
)

// MaxCycleDurations is how many past cycles a node remembers.
const MaxCycleDurations = 10

// Approval gates.
const (
	// AnnotationWaitingForGate: the agent waits at the approval gate it names,
	// for the cycle of AnnotationCycleStarted.
	AnnotationWaitingForGate = "nodepatch.io/waiting-for-gate"
	// AnnotationHeld: why the node's cycle waits, in a sentence, while it is
	// held (for `nodepatch status` and whoever watches the Node).
	AnnotationHeld = "nodepatch.io/held"
	// approvalPrefix + a gate's name, set by the approver (`nodepatch approve`)
	// to the id of the cycle it approves.
	approvalPrefix = "nodepatch.io/approve-"
	// MaxGateName keeps an approval annotation's name within 63 characters.
	MaxGateName = 63 - len("approve-")
)

// ApprovalAnnotation is the annotation that approves gate for a cycle: its
// value is the cycle's id.
func ApprovalAnnotation(gate string) string { return approvalPrefix + gate }

// IsApprovalAnnotation: key approves a gate.
func IsApprovalAnnotation(key string) bool { return strings.HasPrefix(key, approvalPrefix) }

// Labels nodepatch sets on its node.
const (
	// LabelExcludeFromLB takes the node out of external load balancers while
	// it is out of service (service controllers honour it).
	LabelExcludeFromLB = "node.kubernetes.io/exclude-from-external-load-balancers"
	// LabelQuarantined: a drain that kept failing put the node aside
	// (--drain-timeout-action=quarantine); no cycle starts until an operator
	// removes the label.
	LabelQuarantined = "nodepatch.io/quarantined"
)

// TaintKey is the NoSchedule taint the agent puts on its node for the length of a cycle.
const TaintKey = "nodepatch.io/rebooting"

// Phase is where a node is in its reboot cycle. The empty phase is idle.
type Phase string

// The phases a node goes through. A cycle starts when the agent holds a lock slot.
const (
	PhaseIdle      Phase = ""
	PhaseDraining  Phase = "Draining"
	PhaseRebooting Phase = "Rebooting"
	PhaseFailed    Phase = "Failed"
	// PhaseVerifying: rebooted, back in service (untainted, uncordoned), still
	// holding the slot until the node proves healthy and the soak has passed.
	PhaseVerifying Phase = "Verifying"
)

// Node is the parsed state of one node.
type Node struct {
	Force       bool
	BlockReason string

	// NeedSince and Admitted are the rollout protocol (see the annotations).
	NeedSince time.Time
	Admitted  time.Time

	Phase             Phase
	BootIDBefore      string
	CordonedByUs      bool
	CycleStarted      time.Time
	Drained           bool
	RebootRequestedAt time.Time
	RebootAttempts    int
	RetryAfter        time.Time
	DrainFailures     int
	LastReboot        time.Time
	LastPatch         time.Time
	RepeatedReboots   int
	BackAt            time.Time
	DrainedAt         time.Time
	LBExcludedByUs    bool
	// Approvals maps each approved gate to the cycle id it approves.
	Approvals map[string]string
	// Held and WaitingForGate say why the cycle waits (AnnotationHeld,
	// AnnotationWaitingForGate).
	Held           string
	WaitingForGate string
	// CycleDurations are the node's last cycles, newest first.
	CycleDurations []time.Duration
}

// RememberCycle puts d first in CycleDurations, keeping MaxCycleDurations.
func (n *Node) RememberCycle(d time.Duration) {
	n.CycleDurations = append([]time.Duration{d.Round(time.Second)}, n.CycleDurations...)
	if len(n.CycleDurations) > MaxCycleDurations {
		n.CycleDurations = n.CycleDurations[:MaxCycleDurations]
	}
}

// CycleID names the current cycle: its start time as the Node records it, so
// an approval of an earlier cycle never matches a later one.
func (n Node) CycleID() string {
	if n.CycleStarted.IsZero() {
		return ""
	}
	return n.CycleStarted.UTC().Format(time.RFC3339Nano)
}

// Parse reads a node's annotations. A malformed value never stops parsing: it is
// reported in the returned error (each one naming the annotation and the value) and
// read as the safest value (see the fields' parsers). A malformed phase reads as
// Failed, which halts the node without rebooting or uncordoning it until an
// operator looks.
func Parse(annotations map[string]string) (Node, error) {
	p := parser{annotations: annotations}
	n := Node{
		Force:             p.boolean(AnnotationForceReboot),
		BlockReason:       annotations[AnnotationBlockReboot],
		NeedSince:         p.time(AnnotationNeedSince),
		Admitted:          p.time(AnnotationAdmitted),
		Phase:             p.phase(),
		BootIDBefore:      annotations[AnnotationBootIDBefore],
		CordonedByUs:      p.boolean(AnnotationCordonedByUs),
		CycleStarted:      p.time(AnnotationCycleStarted),
		Drained:           p.boolean(AnnotationDrained),
		RebootRequestedAt: p.time(AnnotationRebootRequestedAt),
		RebootAttempts:    p.count(AnnotationRebootAttempts),
		RetryAfter:        p.time(AnnotationRetryAfter),
		DrainFailures:     p.count(AnnotationDrainFailures),
		LastReboot:        p.time(AnnotationLastReboot),
		LastPatch:         p.time(AnnotationLastPatch),
		RepeatedReboots:   p.count(AnnotationRepeatedReboots),
		BackAt:            p.time(AnnotationBackAt),
		DrainedAt:         p.time(AnnotationDrainedAt),
		LBExcludedByUs:    p.boolean(AnnotationLBExcludedByUs),
		Approvals:         approvals(annotations),
		Held:              annotations[AnnotationHeld],
		WaitingForGate:    annotations[AnnotationWaitingForGate],
		CycleDurations:    p.durations(AnnotationCycleDurations),
	}
	return n, errors.Join(p.errs...)
}

func approvals(annotations map[string]string) map[string]string {
	var out map[string]string
	for k, v := range annotations {
		if gate, ok := strings.CutPrefix(k, approvalPrefix); ok && gate != "" {
			if out == nil {
				out = map[string]string{}
			}
			out[gate] = v
		}
	}
	return out
}

type parser struct {
	annotations map[string]string
	errs        []error
}

func (p *parser) fail(key, value, want string) {
	p.errs = append(p.errs, fmt.Errorf("annotation %s: %q is not %s", key, value, want))
}

func (p *parser) boolean(key string) bool {
	v, ok := p.annotations[key]
	if !ok || v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(key, v, "true or false")
		return false
	}
	return b
}

func (p *parser) count(key string) int {
	v, ok := p.annotations[key]
	if !ok || v == "" {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		p.fail(key, v, "a count (0, 1, 2, ...)")
		return 0
	}
	return n
}

func (p *parser) durations(key string) []time.Duration {
	v := p.annotations[key]
	if v == "" {
		return nil
	}
	var out []time.Duration
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(f)
		if err != nil || n < 0 {
			p.fail(key, v, "seconds, newest first (e.g. 312,298)")
			return nil
		}
		out = append(out, time.Duration(n)*time.Second)
	}
	return out
}

func (p *parser) time(key string) time.Time {
	v, ok := p.annotations[key]
	if !ok || v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		p.fail(key, v, "an RFC 3339 time")
		return time.Time{}
	}
	return t
}

func (p *parser) phase() Phase {
	v := Phase(p.annotations[AnnotationPhase])
	switch v {
	case PhaseIdle, PhaseDraining, PhaseRebooting, PhaseVerifying, PhaseFailed:
		return v
	}
	p.fail(AnnotationPhase, string(v), "Draining, Rebooting, Verifying or Failed")
	return PhaseFailed
}

// AgentAnnotations renders the agent-owned part of n as a merge-patch: a nil value
// removes the annotation, so an idle node carries none of them but last-reboot,
// last-patch, the drain back-off and the repeated-reboot count.
func (n Node) AgentAnnotations() map[string]*string {
	return map[string]*string{
		AnnotationPhase:             nonEmpty(string(n.Phase)),
		AnnotationNeedSince:         timestamp(n.NeedSince),
		AnnotationBootIDBefore:      nonEmpty(n.BootIDBefore),
		AnnotationCordonedByUs:      flag(n.CordonedByUs),
		AnnotationCycleStarted:      timestamp(n.CycleStarted),
		AnnotationDrained:           flag(n.Drained),
		AnnotationRebootRequestedAt: timestamp(n.RebootRequestedAt),
		AnnotationRebootAttempts:    positive(n.RebootAttempts),
		AnnotationRetryAfter:        timestamp(n.RetryAfter),
		AnnotationDrainFailures:     positive(n.DrainFailures),
		AnnotationLastReboot:        timestamp(n.LastReboot),
		AnnotationLastPatch:         timestamp(n.LastPatch),
		AnnotationRepeatedReboots:   positive(n.RepeatedReboots),
		AnnotationBackAt:            timestamp(n.BackAt),
		AnnotationDrainedAt:         timestamp(n.DrainedAt),
		AnnotationLBExcludedByUs:    flag(n.LBExcludedByUs),
		AnnotationHeld:              nonEmpty(n.Held),
		AnnotationWaitingForGate:    nonEmpty(n.WaitingForGate),
		AnnotationCycleDurations:    seconds(n.CycleDurations),
	}
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func flag(b bool) *string {
	if !b {
		return nil
	}
	return nonEmpty("true")
}

func positive(n int) *string {
	if n <= 0 {
		return nil
	}
	return nonEmpty(strconv.Itoa(n))
}

func seconds(ds []time.Duration) *string {
	if len(ds) == 0 {
		return nil
	}
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = strconv.Itoa(int(d / time.Second))
	}
	return nonEmpty(strings.Join(parts, ","))
}

func timestamp(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	return nonEmpty(t.UTC().Format(time.RFC3339Nano))
}
