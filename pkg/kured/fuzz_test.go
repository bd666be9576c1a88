package kured

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzParseLock checks, for any annotation value: an error is always a
// MalformedLockError naming the annotation; a lock that parses is one kured can
// write back (marshalled the way kured marshals it) and that then parses to the
// same lock; and an expired holder never comes back as time goes on.
func FuzzParseLock(f *testing.F) {
	for _, s := range []string{
		`{"nodeID":"node-1","metadata":{"unschedulable":false},"created":"2026-07-01T10:00:00.123456789Z","TTL":1800000000000}`,
		`{"maxOwners":2,"locks":[{"nodeID":"node-1","metadata":{"unschedulable":true},"created":"2026-07-01T10:00:00Z","TTL":0},{"nodeID":"node-2","created":"2026-07-01T11:00:00+02:00","TTL":60000000000}]}`,
		`{"maxOwners":2,"locks":[]}`,
		`{"nodeID":"manual"}`,
		`{"nodeID":"a","locks":null}`,
		`{"NodeId":"a","ttl":-5}`,
		`null`, `{}`, `[]`, ``, `{"nodeID":""}`,
	} {
		f.Add(s, int64(0), int64(3600))
	}
	f.Fuzz(func(t *testing.T, annotation string, offset, step int64) {
		lock, err := ParseLock(annotation)
		if err != nil {
			require.ErrorIs(t, err, ErrMalformedLock)
			var me *MalformedLockError
			require.True(t, errors.As(err, &me))
			require.Equal(t, LockAnnotation, me.Annotation)
			require.Contains(t, err.Error(), LockAnnotation)
			return
		}
		if !lock.Multi {
			require.Len(t, lock.Entries, 1, "the single form has exactly one holder")
			require.Zero(t, lock.MaxOwners)
		}
		for _, e := range lock.Entries {
			require.NotEmpty(t, e.NodeID)
		}

		again, err := ParseLock(kuredWrites(t, lock))
		require.NoError(t, err, "kured's own rendering of %q", annotation)
		requireSameLock(t, lock, again)

		// Holders only shrink as time goes on: nothing revives an expired entry.
		at := time.Unix(offset%(1<<40), 0)
		later := at.Add(time.Duration(step%(1<<40)) * time.Second)
		if later.Before(at) {
			at, later = later, at
		}
		before := Holders(lock, at)
		for _, h := range Holders(lock, later) {
			require.Contains(t, before, h, "holder %s at %s but not at the earlier %s", h, later, at)
		}
		for _, e := range lock.Entries {
			if e.TTL <= 0 {
				require.Contains(t, Holders(lock, later), e.NodeID, "an entry without TTL never expires")
			}
		}
	})
}

// kuredWrites marshals lock the way kured's Acquire does, with the test's
// mirror of kured's types.
func kuredWrites(t *testing.T, lock Lock) string {
	t.Helper()
	values := make([]kuredLockAnnotationValue, 0, len(lock.Entries))
	for _, e := range lock.Entries {
		values = append(values, kuredLockAnnotationValue{NodeID: e.NodeID, Metadata: kuredNodeMeta{Unschedulable: e.Unschedulable},
			Created: e.Created, TTL: e.TTL})
	}
	if lock.Multi {
		return marshal(t, &kuredMultiLockAnnotationValue{MaxOwners: lock.MaxOwners, LockAnnotations: values})
	}
	return marshal(t, &values[0])
}

func requireSameLock(t *testing.T, want, got Lock) {
	t.Helper()
	require.Equal(t, want.Multi, got.Multi)
	require.Equal(t, want.MaxOwners, got.MaxOwners)
	require.Len(t, got.Entries, len(want.Entries))
	for i := range want.Entries {
		w, g := want.Entries[i], got.Entries[i]
		require.Equal(t, w.NodeID, g.NodeID)
		require.Equal(t, w.Unschedulable, g.Unschedulable)
		require.True(t, w.Created.Equal(g.Created), "created %s, then %s", w.Created, g.Created)
		require.Equal(t, w.TTL, g.TTL)
	}
}
