package kured

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// kuredLockAnnotationValue and kuredMultiLockAnnotationValue are written here
// the way kured declares them (internal/daemonsetlock: LockAnnotationValue and
// multiLockAnnotationValue), independently of the package's own decoding types,
// so the tests feed ParseLock what kured's json.Marshal produces.
type kuredLockAnnotationValue struct {
	NodeID   string        `json:"nodeID"`
	Metadata kuredNodeMeta `json:"metadata,omitempty"`
	Created  time.Time     `json:"created"`
	TTL      time.Duration `json:"TTL"`
}

type kuredNodeMeta struct {
	Unschedulable bool `json:"unschedulable"`
}

type kuredMultiLockAnnotationValue struct {
	MaxOwners       int                        `json:"maxOwners"`
	LockAnnotations []kuredLockAnnotationValue `json:"locks"`
}

func marshal(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

var (
	// kured writes time.Now().UTC(): RFC 3339 with nanoseconds and a Z.
	created = time.Date(2026, 7, 1, 10, 0, 0, 123456789, time.UTC)
	atStart = created
)

func TestKuredMarshalsTheFormatsTheTablesUse(t *testing.T) {
	// What kured's Acquire writes, byte for byte, for the two forms.
	single := kuredLockAnnotationValue{NodeID: "node-1", Metadata: kuredNodeMeta{Unschedulable: true}, Created: created, TTL: 30 * time.Minute}
	require.Equal(t, `{"nodeID":"node-1","metadata":{"unschedulable":true},"created":"2026-07-01T10:00:00.123456789Z","TTL":1800000000000}`,
		marshal(t, &single))
	multi := kuredMultiLockAnnotationValue{MaxOwners: 2, LockAnnotations: []kuredLockAnnotationValue{{NodeID: "node-1", Created: created}}}
	require.Equal(t, `{"maxOwners":2,"locks":[{"nodeID":"node-1","metadata":{"unschedulable":false},"created":"2026-07-01T10:00:00.123456789Z","TTL":0}]}`,
		marshal(t, &multi))
	// After the last holder releases, kured's Release re-marshals the emptied
	// slice: the annotation stays, with an empty list.
	emptied := multi
	emptied.LockAnnotations = emptied.LockAnnotations[:0]
	require.Equal(t, `{"maxOwners":2,"locks":[]}`, marshal(t, &emptied))
}

func TestParseLock(t *testing.T) {
	hour := time.Hour
	tests := []struct {
		name       string
		annotation string
		want       Lock
		holders    map[time.Duration][]string // time after created → holders
	}{{
		name:       "single holder, no TTL",
		annotation: marshal(t, &kuredLockAnnotationValue{NodeID: "node-1", Created: created}),
		want:       Lock{Entries: []Entry{{NodeID: "node-1", Created: created}}},
		holders:    map[time.Duration][]string{0: {"node-1"}, 10000 * hour: {"node-1"}},
	}, {
		name:       "single holder that was cordoned before kured took the lock",
		annotation: marshal(t, &kuredLockAnnotationValue{NodeID: "node-1", Metadata: kuredNodeMeta{Unschedulable: true}, Created: created, TTL: hour}),
		want:       Lock{Entries: []Entry{{NodeID: "node-1", Unschedulable: true, Created: created, TTL: hour}}},
		// Expired once the TTL has passed, the instant itself included (kured: >=).
		holders: map[time.Duration][]string{0: {"node-1"}, hour - time.Nanosecond: {"node-1"}, hour: nil, 2 * hour: nil},
	}, {
		name:       "kured's manual lock (kubectl annotate ds kured weave.works/kured-node-lock='{\"nodeID\":\"manual\"}')",
		annotation: `{"nodeID":"manual"}`,
		want:       Lock{Entries: []Entry{{NodeID: "manual"}}},
		holders:    map[time.Duration][]string{0: {"manual"}, 10000 * hour: {"manual"}},
	}, {
		name:       "a TTL with no created time expired long ago",
		annotation: `{"nodeID":"node-1","TTL":3600000000000}`,
		want:       Lock{Entries: []Entry{{NodeID: "node-1", TTL: hour}}},
		holders:    map[time.Duration][]string{0: nil},
	}, {
		name:       "a negative TTL never expires (kured tests ttl > 0)",
		annotation: `{"nodeID":"node-1","created":"2026-07-01T10:00:00.123456789Z","TTL":-1}`,
		want:       Lock{Entries: []Entry{{NodeID: "node-1", Created: created, TTL: -1}}},
		holders:    map[time.Duration][]string{10000 * hour: {"node-1"}},
	}, {
		name:       "created in another zone is the same instant",
		annotation: `{"nodeID":"node-1","created":"2026-07-01T12:00:00.123456789+02:00","TTL":3600000000000}`,
		want:       Lock{Entries: []Entry{{NodeID: "node-1", Created: created, TTL: hour}}},
		holders:    map[time.Duration][]string{59 * time.Minute: {"node-1"}, hour: nil},
	}, {
		name: "multiple holders, each with its own created time",
		annotation: marshal(t, &kuredMultiLockAnnotationValue{MaxOwners: 3, LockAnnotations: []kuredLockAnnotationValue{
			{NodeID: "node-1", Created: created, TTL: hour},
			{NodeID: "node-2", Metadata: kuredNodeMeta{Unschedulable: true}, Created: created.Add(30 * time.Minute), TTL: hour},
			{NodeID: "node-3", Created: created},
		}}),
		want: Lock{Multi: true, MaxOwners: 3, Entries: []Entry{
			{NodeID: "node-1", Created: created, TTL: hour},
			{NodeID: "node-2", Unschedulable: true, Created: created.Add(30 * time.Minute), TTL: hour},
			{NodeID: "node-3", Created: created},
		}},
		holders: map[time.Duration][]string{
			0:                {"node-1", "node-2", "node-3"},
			hour:             {"node-2", "node-3"},
			90 * time.Minute: {"node-3"},
		},
	}, {
		name:       "multi form after the last release",
		annotation: `{"maxOwners":2,"locks":[]}`,
		want:       Lock{Multi: true, MaxOwners: 2, Entries: []Entry{}},
		holders:    map[time.Duration][]string{0: nil},
	}, {
		name:       "multi form with a null list (a nil slice marshalled)",
		annotation: `{"maxOwners":2,"locks":null}`,
		want:       Lock{Multi: true, MaxOwners: 2, Entries: []Entry{}},
		holders:    map[time.Duration][]string{0: nil},
	}, {
		name:       "a node listed twice holds once",
		annotation: `{"maxOwners":2,"locks":[{"nodeID":"a"},{"nodeID":"a"}]}`,
		want:       Lock{Multi: true, MaxOwners: 2, Entries: []Entry{{NodeID: "a"}, {NodeID: "a"}}},
		holders:    map[time.Duration][]string{0: {"a"}},
	}, {
		name:       "keys match case-insensitively, as encoding/json (and so kured) reads them",
		annotation: `{"NODEID":"node-1","ttl":0}`,
		want:       Lock{Entries: []Entry{{NodeID: "node-1"}}},
		holders:    map[time.Duration][]string{0: {"node-1"}},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseLock(tc.annotation)
			require.NoError(t, err)
			require.Equal(t, tc.want.Multi, got.Multi)
			require.Equal(t, tc.want.MaxOwners, got.MaxOwners)
			require.Len(t, got.Entries, len(tc.want.Entries))
			for i, e := range tc.want.Entries {
				require.Equal(t, e.NodeID, got.Entries[i].NodeID)
				require.Equal(t, e.Unschedulable, got.Entries[i].Unschedulable)
				require.True(t, e.Created.Equal(got.Entries[i].Created), "created %s, want %s", got.Entries[i].Created, e.Created)
				require.Equal(t, e.TTL, got.Entries[i].TTL)
			}
			require.NotEmpty(t, tc.holders)
			for after, want := range tc.holders {
				require.Equal(t, want, Holders(got, atStart.Add(after)), "holders %s after created", after)
			}
		})
	}
}

func TestParseLockRefusesWhatKuredCannotRead(t *testing.T) {
	tests := []struct{ name, annotation, reason string }{
		{"empty (kured's Unmarshal fails too)", ``, "not a JSON object"},
		{"cut short", `{"nodeID":"node-1"`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"a list", `[{"nodeID":"node-1"}]`, "not a JSON object"},
		{"a string", `"node-1"`, "not a JSON object"},
		{"no keys", `{}`, "neither nodeID"},
		{"other keys only", `{"holder":"node-1"}`, "neither nodeID"},
		{"a number for nodeID", `{"nodeID":1}`, "single-holder form"},
		{"a time that is not RFC 3339", `{"nodeID":"node-1","created":"yesterday"}`, "single-holder form"},
		{"a TTL in seconds as a string", `{"nodeID":"node-1","TTL":"1h"}`, "single-holder form"},
		{"a fractional TTL", `{"nodeID":"node-1","TTL":1.5}`, "single-holder form"},
		{"an empty nodeID", `{"nodeID":""}`, "nodeID is empty"},
		{"both forms", `{"nodeID":"node-1","maxOwners":2,"locks":[]}`, "both"},
		{"locks not a list", `{"maxOwners":2,"locks":{"nodeID":"node-1"}}`, "multi-holder form"},
		{"a multi entry without nodeID", `{"maxOwners":2,"locks":[{"created":"2026-07-01T10:00:00Z"}]}`, "locks[0] has no nodeID"},
		{"maxOwners not a number", `{"maxOwners":"2","locks":[]}`, "multi-holder form"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseLock(tc.annotation)
			require.Error(t, err)
			require.ErrorIs(t, err, ErrMalformedLock)
			var me *MalformedLockError
			require.True(t, errors.As(err, &me))
			require.Equal(t, LockAnnotation, me.Annotation)
			require.Equal(t, tc.annotation, me.Value)
			require.Contains(t, err.Error(), "weave.works/kured-node-lock")
			require.Contains(t, me.Reason, tc.reason)
		})
	}
}

func TestParseNamedLockNamesTheAnnotation(t *testing.T) {
	_, err := ParseNamedLock("example.com/my-lock", "{")
	require.ErrorIs(t, err, ErrMalformedLock)
	require.Contains(t, err.Error(), "example.com/my-lock")

	long := `{"holder":"` + strings.Repeat("x", 1000) + `"}`
	_, err = ParseLock(long)
	var me *MalformedLockError
	require.True(t, errors.As(err, &me))
	require.Less(t, len(me.Value), 300, "a huge annotation is cut short in the error")
}
