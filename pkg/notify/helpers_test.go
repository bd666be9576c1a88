package notify

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitFor bounds every wait in these tests: long enough for a loaded machine,
// short enough that a hang fails the test instead of the whole run.
const waitFor = 30 * time.Second

// request is one request a receiver got.
type request struct {
	key         string // Idempotency-Key
	contentType string
	body        string
	attempt     int // 1 for the first request with this key
}

// receiver is a real HTTP server on 127.0.0.1 that records what it gets and
// answers as answer says (for the attempt-th request with that key).
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	requests []request
	attempts map[string]int
	accepted map[string]int // 2xx answers per key
	header   http.Header    // added to every answer
}

// setHeader adds a header to every answer from now on.
func (rc *receiver) setHeader(key, value string) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.header.Set(key, value)
}

// answer returns the status for a request; 0 means: drop the connection
// without answering.
type answer func(r request) int

func newReceiver(t *testing.T, a answer) *receiver {
	t.Helper()
	rc := &receiver{attempts: map[string]int{}, accepted: map[string]int{}, header: http.Header{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		key := r.Header.Get("Idempotency-Key")
		rc.mu.Lock()
		rc.attempts[key]++
		req := request{key: key, contentType: r.Header.Get("Content-Type"), body: string(body), attempt: rc.attempts[key]}
		rc.requests = append(rc.requests, req)
		for k, v := range rc.header {
			w.Header()[k] = v
		}
		rc.mu.Unlock()
		status := a(req)
		if status == 0 {
			// The answer is lost: the client sees the connection end.
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close()
			}
			return
		}
		if status >= 200 && status < 300 {
			rc.mu.Lock()
			rc.accepted[key]++
			rc.mu.Unlock()
		}
		if status >= 300 && status < 400 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) snapshot() ([]request, map[string]int, map[string]int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	attempts, accepted := map[string]int{}, map[string]int{}
	for k, v := range rc.attempts {
		attempts[k] = v
	}
	for k, v := range rc.accepted {
		accepted[k] = v
	}
	return append([]request(nil), rc.requests...), attempts, accepted
}

func ok(request) int { return http.StatusOK }

// recorder is an Observer that remembers every call.
type recorder struct {
	mu        sync.Mutex
	delivered map[string]int // "sink kind"
	failed    map[string][]error
	dropped   map[string]int
}

func newRecorder() *recorder {
	return &recorder{delivered: map[string]int{}, failed: map[string][]error{}, dropped: map[string]int{}}
}

func (r *recorder) Delivered(sink, kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered[sink+" "+kind]++
}

func (r *recorder) Failed(sink, kind string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed[sink+" "+kind] = append(r.failed[sink+" "+kind], err)
}

func (r *recorder) Dropped(sink, kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropped[sink+" "+kind]++
}

func (r *recorder) failures(key string) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.failed[key]...)
}

// fast are delivery settings for tests: retries within milliseconds.
func fast(c Config) Config {
	if c.InitialBackoff == 0 {
		c.InitialBackoff = time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Millisecond
	}
	if c.AttemptTimeout == 0 {
		c.AttemptTimeout = 5 * time.Second
	}
	return c
}

// started makes a Notifier from c (with fast retries), starts it and closes
// it when the test ends.
func started(t *testing.T, c Config) *Notifier {
	t.Helper()
	n, err := New(fast(c))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	n.Start(ctx)
	t.Cleanup(func() {
		closeCtx, done := context.WithTimeout(context.Background(), waitFor)
		defer done()
		_ = n.Close(closeCtx)
		cancel()
	})
	return n
}

func flush(t *testing.T, n *Notifier) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, n.Flush(ctx))
}

// cycle is one event of every kind, of one cycle of node.
func cycle(node, id string) []Event {
	var events []Event
	at := time.Date(2025, 6, 1, 2, 0, 0, 0, time.UTC)
	for i, k := range Kinds() {
		e := Event{Kind: k, Node: node, Cycle: id, Time: at.Add(time.Duration(i) * time.Minute)}
		if k == Failed || k == BlockedLong || k == LoopDetected {
			e.Reason = fmt.Sprintf("reason of %s: \"quoted\"\nand a second line", k)
		}
		events = append(events, e)
	}
	return events
}

// genericURL is the shoutrrr generic:// URL of a receiver (plain HTTP).
func genericURL(rc *receiver, path string) string {
	return "generic://" + strings.TrimPrefix(rc.URL, "http://") + path + "?disabletls=yes"
}
