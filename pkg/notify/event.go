package notify

import (
	"fmt"
	"strings"
	"time"
)

// Kind is the step of a reboot cycle an Event reports.
type Kind string

// The kinds of Event, one per step of a reboot cycle the agent reports.
const (
	CycleStarted Kind = "cycle-started" // the node took a lock slot and begins its cycle
	Drained      Kind = "drained"       // the node is cordoned and drained (kured's drain message)
	Rebooting    Kind = "rebooting"     // the reboot is being requested (kured's reboot message)
	Back         Kind = "back"          // the node came back and is uncordoned (kured's uncordon message)
	Failed       Kind = "failed"        // the cycle failed; Reason says why
	BlockedLong  Kind = "blocked-long"  // a needed reboot has been blocked for long; Reason says by what
	LoopDetected Kind = "loop-detected" // reboots do not clear the need: the node is held
)

// Kinds returns every Kind, in cycle order.
func Kinds() []Kind {
	return []Kind{CycleStarted, Drained, Rebooting, Back, Failed, BlockedLong, LoopDetected}
}

// ParseKind returns the Kind named s.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds() {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown event kind %q (want one of %s)", s, kindList())
}

func kindList() string {
	names := make([]string, 0, len(Kinds()))
	for _, k := range Kinds() {
		names = append(names, string(k))
	}
	return strings.Join(names, ", ")
}

// Event is one step of a node's reboot cycle.
type Event struct {
	Kind Kind
	// Node is the Node's name.
	Node string
	// Cycle identifies the reboot cycle; with Kind it makes the idempotency key
	// receivers use to drop the duplicates retries can make.
	Cycle string
	// Reason says why, for failed, blocked-long and loop-detected.
	Reason string
	// Time is when it happened; Notify fills in the current time when it is zero.
	Time time.Time
}

// IdempotencyKey is the Idempotency-Key header of the webhook POST for e: the
// same for every retry of one event, different for each event of a cycle.
func (e Event) IdempotencyKey() string {
	if e.Cycle != "" {
		return e.Cycle + "/" + string(e.Kind)
	}
	// No cycle (a block reported before any cycle began): the node and the
	// time still tell one event from the next.
	return fmt.Sprintf("%s/%s/%d", e.Node, e.Kind, e.Time.UnixNano())
}
