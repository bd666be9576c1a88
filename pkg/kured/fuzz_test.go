package kured

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
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

// FuzzMigrate checks, for any arguments and KURED_* variables: Migrate fails
// only with a FlagError that names a flag; otherwise every value it produces
// is a chart value that values.schema.json accepts, and its YAML parses back
// to the same values.
func FuzzMigrate(f *testing.F) {
	chart := chartValues(f)
	var schema map[string]any
	require.NoError(f, json.Unmarshal(readChartFile(f, "values.schema.json"), &schema))
	v := validator{root: schema}

	for _, seed := range []struct{ args, env string }{
		{"--period=1h\n--reboot-sentinel=/sentinel/reboot-required", ""},
		{"--reboot-days=mon,tue\n--start-time=22:00\n--end-time=5:59:59\n--time-zone=Europe/Berlin", "KURED_REBOOT_DAYS=sun"},
		{"--lock-ttl=10m\n--drain-timeout=30m\n--concurrency=3\n--force-reboot", "KURED_CONCURRENCY=2"},
		{"--reboot-method=signal\n--reboot-signal=40\n--reboot-command\n/sbin/reboot", ""},
		{"--prometheus-url=http://p\n--blocking-pod-selector=a=b\n--pre-reboot-node-labels=x=y,\"q,r\"", "KURED_NOTIFY_URL='slack://a/b/c'"},
		{"--slack-hook-url=https://hooks.slack.com/services/A/B/C\n--log-format=xml\n--metrics-port=0", "KURED_LOG_FORMAT=json"},
		{"--start-time=23:59:30\n--end-time=0:00\n--drain-grace-period=-9\n--reboot-sentinel=/etc/x", "KURED_LOCK_TTL=-1s"},
		{"--unknown\nvalue\nstray\n--\n--period=x", "OTHER=1\nKURED_NOPE=2"},
		{"--pre-reboot-node-labels=a=b,nodepatch.io/x=1,bad\n--post-reboot-node-labels=a=c,a=c\n--blocking-pod-selector=\n--blocking-pod-selector=x=y", ""},
		{"--prometheus-url=https://p:9090\n--alert-filter-match-only\n--lock-release-delay=30m\n--skip-wait-for-delete-timeout=5", "KURED_ALERT_FIRING_ONLY=true"},
		{"--ds-name=Bad\n--lock-annotation=a/b/c\n--reboot-delay=-5s\n--drain-delay=1h", "KURED_DS_NAMESPACE=ops"},
		{"--notify-url=\"slack://T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX\"\n--message-template-drain=Draining %s (100%%)\n--message-template-reboot=%d", "KURED_MESSAGE_TEMPLATE_UNCORDON=%s %s"},
		{"--notify-url=Generic://example.com/a b\n--slack-hook-url=https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX", "KURED_NOTIFY_URL="},
	} {
		f.Add(seed.args, seed.env)
	}
	f.Fuzz(func(t *testing.T, args, env string) {
		// What the API server hands out is valid UTF-8.
		args, env = strings.ToValidUTF8(args, "\uFFFD"), strings.ToValidUTF8(env, "\uFFFD")
		in := kuredInput(strings.Split(args, "\n")...)
		for _, line := range strings.Split(env, "\n") {
			if name, value, ok := strings.Cut(line, "="); ok && name != "" {
				in.Env = append(in.Env, corev1.EnvVar{Name: name, Value: value})
			}
		}
		r, err := Migrate(in)
		if err != nil {
			require.ErrorIs(t, err, ErrKuredConfig)
			var fe *FlagError
			require.True(t, errors.As(err, &fe))
			require.NotEmpty(t, fe.Flag)
			require.Contains(t, err.Error(), fe.Flag)
			return
		}
		for _, p := range leafPaths("", r.Values) {
			require.NoError(t, chartPathError(chart, p))
		}
		var values any
		b, err := json.Marshal(r.Values)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(b, &values))
		require.Empty(t, v.check("", schema, values), "args %q env %q", args, env)

		out, err := r.YAML()
		require.NoError(t, err)
		var back any
		require.NoError(t, yaml.Unmarshal(out, &back))
		require.Equal(t, values, back, "the YAML (comments and all) parses back to the values")
	})
}
