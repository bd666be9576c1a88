// Package kured reads what kured (the Kubernetes Reboot Daemon) leaves behind
// and what it was configured with, for a migration to nodepatch: the lock
// annotation kured keeps on its own DaemonSet, and the flags and KURED_*
// variables of its container, mapped to nodepatch's chart values.
package kured

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Where kured keeps its lock unless told otherwise (its --lock-annotation,
// --ds-name and --ds-namespace defaults).
const (
	LockAnnotation   = "weave.works/kured-node-lock"
	DefaultDaemonSet = "kured"
	DefaultNamespace = "kube-system"
)

// ErrMalformedLock is wrapped by every error of ParseLock: the annotation is
// not a lock kured could have written. kured itself refuses to take a lock it
// cannot read, so a caller honouring kured's lock should treat this error as
// "held" (fail closed), never as free.
var ErrMalformedLock = errors.New("malformed kured lock")

// MalformedLockError says which annotation could not be read and why.
type MalformedLockError struct {
	Annotation string // the annotation's key, e.g. weave.works/kured-node-lock
	Value      string // the annotation's value as found (possibly cut short)
	Reason     string
	Err        error // the JSON decoder's error, when there was one
}

func (e *MalformedLockError) Error() string {
	msg := fmt.Sprintf("kured lock annotation %s=%q: %s", e.Annotation, e.Value, e.Reason)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Is makes errors.Is(err, ErrMalformedLock) true.
func (e *MalformedLockError) Is(target error) bool { return target == ErrMalformedLock }

func (e *MalformedLockError) Unwrap() error { return e.Err }

// Lock is kured's lock as written in the annotation.
type Lock struct {
	// Multi is true for the multi-holder form kured writes when it runs with
	// --concurrency above 1: {"maxOwners":N,"locks":[...]}. The single form is
	// one holder: {"nodeID":...,"metadata":...,"created":...,"TTL":...}.
	Multi bool
	// MaxOwners is kured's --concurrency, in the multi form only.
	MaxOwners int
	// Entries are the holders as written, expired ones included (kured only
	// drops expired entries when the list is full). The single form has one.
	Entries []Entry
}

// Entry is one holder of kured's lock.
type Entry struct {
	NodeID string
	// Unschedulable records whether the node was cordoned before kured took the
	// lock; kured leaves such a node cordoned after its reboot.
	Unschedulable bool
	// Created is when the holder took the lock (kured writes UTC). kured never
	// renews it: the TTL counts from here however alive the holder is.
	Created time.Time
	// TTL is kured's --lock-ttl when the holder took the lock; 0 never expires.
	TTL time.Duration
}

// Expired judges the entry as kured does: a TTL above 0 has passed since the
// entry was created, by the reader's wall clock (kured compares time.Since of
// the stored time, which carries no monotonic reading). A TTL of 0 or less
// never expires.
func (e Entry) Expired(now time.Time) bool {
	return e.TTL > 0 && now.Sub(e.Created) >= e.TTL
}

// lockValue and multiLockValue have the Go types and JSON tags of kured's
// LockAnnotationValue and multiLockAnnotationValue (internal/daemonsetlock),
// so that decoding accepts and refuses exactly what kured's own decoding does:
// created is an RFC 3339 time, TTL an integer count of nanoseconds, keys match
// case-insensitively as encoding/json does.
type lockValue struct {
	NodeID   string        `json:"nodeID"`
	Metadata nodeMeta      `json:"metadata,omitempty"`
	Created  time.Time     `json:"created"`
	TTL      time.Duration `json:"TTL"`
}

type nodeMeta struct {
	Unschedulable bool `json:"unschedulable"`
}

type multiLockValue struct {
	MaxOwners int         `json:"maxOwners"`
	Locks     []lockValue `json:"locks"`
}

// ParseLock reads the value of kured's lock annotation (LockAnnotation), in
// either form. It is ParseNamedLock for the default annotation key.
func ParseLock(annotation string) (Lock, error) {
	return ParseNamedLock(LockAnnotation, annotation)
}

// ParseNamedLock reads the value of kured's lock annotation stored under key
// (kured's --lock-annotation), so that an error names the annotation it read.
//
// The form is told by the keys present: maxOwners or locks make the multi form,
// nodeID the single one; an object with both, or neither, is no lock kured
// writes. A holder without a node name is refused too: kured always writes its
// node's name, and failing closed is the safe reading. Missing created, TTL and
// metadata are accepted: kured's documented manual lock, set with kubectl to
// stop all reboots, is just {"nodeID":"manual"} and never expires.
func ParseNamedLock(key, annotation string) (Lock, error) {
	bad := func(reason string, err error) (Lock, error) {
		value := annotation
		if len(value) > 200 {
			value = value[:200] + "…"
		}
		return Lock{}, &MalformedLockError{Annotation: key, Value: value, Reason: reason, Err: err}
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(annotation), &fields); err != nil {
		return bad("not a JSON object", err)
	}
	if fields == nil {
		return bad("not a JSON object", nil) // the literal null
	}
	has := func(name string) bool {
		for k := range fields {
			if strings.EqualFold(k, name) {
				return true
			}
		}
		return false
	}
	multi := has("maxOwners") || has("locks")
	switch {
	case multi && has("nodeID"):
		return bad("both the single-holder key nodeID and the multi-holder keys maxOwners/locks", nil)
	case multi:
		var v multiLockValue
		if err := json.Unmarshal([]byte(annotation), &v); err != nil {
			return bad("not kured's multi-holder form", err)
		}
		lock := Lock{Multi: true, MaxOwners: v.MaxOwners, Entries: make([]Entry, 0, len(v.Locks))}
		for i, l := range v.Locks {
			if l.NodeID == "" {
				return bad(fmt.Sprintf("locks[%d] has no nodeID", i), nil)
			}
			lock.Entries = append(lock.Entries, entry(l))
		}
		return lock, nil
	case has("nodeID"):
		var v lockValue
		if err := json.Unmarshal([]byte(annotation), &v); err != nil {
			return bad("not kured's single-holder form", err)
		}
		if v.NodeID == "" {
			return bad("nodeID is empty", nil)
		}
		return Lock{Entries: []Entry{entry(v)}}, nil
	default:
		return bad("neither nodeID (single holder) nor maxOwners/locks (multiple holders)", nil)
	}
}

func entry(v lockValue) Entry {
	return Entry{NodeID: v.NodeID, Unschedulable: v.Metadata.Unschedulable, Created: v.Created, TTL: v.TTL}
}

// Holders are the nodes holding the lock at now: the entries kured would not
// judge expired, each node once, in the annotation's order. An empty result
// means kured holds no reboot slot.
func Holders(lock Lock, now time.Time) []string {
	var holders []string
	for _, e := range lock.Entries {
		if !e.Expired(now) && !slices.Contains(holders, e.NodeID) {
			holders = append(holders, e.NodeID)
		}
	}
	return holders
}
