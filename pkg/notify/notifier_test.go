package notify

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWebhookDeliversEveryEventOnceThroughFailures(t *testing.T) {
	for _, failFirst := range []int{0, 1, 3} {
		t.Run(strings.Repeat("500,", failFirst)+"200", func(t *testing.T) {
			rc := newReceiver(t, func(r request) int {
				if r.attempt <= failFirst {
					return http.StatusInternalServerError
				}
				return http.StatusOK
			})
			obs := newRecorder()
			// Exactly enough attempts: one fewer and the test fails.
			n := started(t, Config{WebhookURL: rc.URL + "/hook", Observer: obs, MaxAttempts: failFirst + 1})
			events := cycle("node-a", "c-1")
			for _, e := range events {
				n.Notify(e)
			}
			flush(t, n)

			requests, attempts, accepted := rc.snapshot()
			require.Len(t, accepted, len(events))
			for _, e := range events {
				key := e.IdempotencyKey()
				require.Equal(t, 1, accepted[key], "%s accepted", key)
				require.Equal(t, failFirst+1, attempts[key], "%s attempts", key)
				require.Equal(t, 1, obs.delivered["webhook "+string(e.Kind)], "%s delivered", e.Kind)
			}
			require.Equal(t, Stats{Delivered: uint64(len(events))}, n.Stats())

			// The bodies: JSON, the default shape, the event's own values.
			for _, r := range requests {
				require.Equal(t, "application/json", r.contentType)
				var body map[string]string
				require.NoError(t, json.Unmarshal([]byte(r.body), &body), r.body)
				kind := Kind(body["kind"])
				require.Equal(t, "c-1/"+string(kind), r.key)
				require.Equal(t, "node-a", body["node"])
				require.Equal(t, "c-1", body["cycle"])
				require.Contains(t, body["text"], "node-a")
				_, err := time.Parse(time.RFC3339Nano, body["time"])
				require.NoError(t, err)
				if kind == Failed {
					require.Equal(t, "reason of failed: \"quoted\"\nand a second line", body["reason"])
				}
			}
		})
	}
}

func TestWebhookRetriesWhenTheAnswerIsLost(t *testing.T) {
	// The receiver takes the event, then the connection drops before its
	// answer: the retry carries the same key, so the receiver keeps one.
	var mu sync.Mutex
	kept := map[string]int{}
	rc := newReceiver(t, func(r request) int {
		if r.attempt == 1 {
			mu.Lock()
			kept[r.key]++
			mu.Unlock()
			return 0
		}
		return http.StatusOK
	})
	n := started(t, Config{WebhookURL: rc.URL, MaxAttempts: 3})
	e := Event{Kind: Rebooting, Node: "node-b", Cycle: "c-9"}
	n.Notify(e)
	flush(t, n)
	_, attempts, accepted := rc.snapshot()
	require.Equal(t, 2, attempts["c-9/rebooting"])
	require.Equal(t, 1, accepted["c-9/rebooting"])
	mu.Lock()
	require.Equal(t, map[string]int{"c-9/rebooting": 1}, kept)
	mu.Unlock()
	require.Equal(t, uint64(1), n.Stats().Delivered)
}

func TestWebhookAnswers(t *testing.T) {
	const maxAttempts = 4
	for _, tc := range []struct {
		status   int
		attempts int
	}{
		{http.StatusBadRequest, 1},
		{http.StatusUnauthorized, 1},
		{http.StatusNotFound, 1},
		{http.StatusUnprocessableEntity, 1},
		{http.StatusFound, 1}, // a redirect is neither followed nor retried
		{http.StatusTooManyRequests, maxAttempts},
		{http.StatusInternalServerError, maxAttempts},
		{http.StatusBadGateway, maxAttempts},
		{http.StatusServiceUnavailable, maxAttempts},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			rc := newReceiver(t, func(request) int { return tc.status })
			obs := newRecorder()
			n := started(t, Config{WebhookURL: rc.URL, Observer: obs, MaxAttempts: maxAttempts})
			n.Notify(Event{Kind: Drained, Node: "node-c", Cycle: "c-2"})
			flush(t, n)

			requests, attempts, _ := rc.snapshot()
			require.Equal(t, tc.attempts, attempts["c-2/drained"])
			require.Len(t, requests, tc.attempts, "the redirect's target is never asked")
			require.Equal(t, Stats{Failed: 1}, n.Stats())
			errs := obs.failures("webhook drained")
			require.Len(t, errs, 1)
			var se *StatusError
			require.ErrorAs(t, errs[0], &se)
			require.Equal(t, tc.status, se.StatusCode)
		})
	}
}

func TestWebhookRetriesConnectionErrors(t *testing.T) {
	rc := newReceiver(t, func(r request) int {
		if r.attempt <= 2 {
			return 0 // no answer: the connection just ends
		}
		return http.StatusNoContent
	})
	n := started(t, Config{WebhookURL: rc.URL, MaxAttempts: 3})
	n.Notify(Event{Kind: Back, Node: "node-d", Cycle: "c-3"})
	flush(t, n)
	_, attempts, accepted := rc.snapshot()
	require.Equal(t, 3, attempts["c-3/back"])
	require.Equal(t, 1, accepted["c-3/back"])
	require.Equal(t, uint64(1), n.Stats().Delivered)
}

func TestWebhookHonoursRetryAfterWithinTheCap(t *testing.T) {
	rc := newReceiver(t, func(r request) int {
		if r.attempt == 1 {
			return http.StatusTooManyRequests
		}
		return http.StatusOK
	})
	// Retry-After: 3600 would stall the test an hour without the cap.
	rc.setHeader("Retry-After", "3600")
	n := started(t, Config{WebhookURL: rc.URL, MaxAttempts: 2})
	n.Notify(Event{Kind: Back, Node: "node-e", Cycle: "c-4"})
	flush(t, n)
	require.Equal(t, uint64(1), n.Stats().Delivered)
}

func TestHangingReceiverDoesNotBlockNotify(t *testing.T) {
	release := make(chan struct{})
	var inHandler atomic.Int32
	hang := newReceiver(t, func(request) int {
		inHandler.Add(1)
		<-release
		return http.StatusOK
	})
	t.Cleanup(func() { close(release) }) // before the server's Close, which waits for handlers

	chat := newReceiver(t, ok)
	obs := newRecorder()
	// The queues are big enough for the chat sink's share (3 kinds of 7),
	// too small for all the webhook's.
	const queue, events = 100, 200
	n, err := New(fast(Config{WebhookURL: hang.URL, URLs: []string{genericURL(chat, "/chat")}, Observer: obs,
		QueueSize: queue, AttemptTimeout: time.Hour}))
	require.NoError(t, err)
	n.Start(context.Background())

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range events {
			n.Notify(Event{Kind: Kinds()[i%len(Kinds())], Node: "node-f", Cycle: "c-" + string(rune('a'+i%26))})
		}
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatalf("Notify blocked on a receiver that never answers")
	}

	// The hanging webhook holds one event and its queue 100; the rest of its
	// events are dropped and counted. The chat sink is not held up by it.
	require.Eventually(t, func() bool { return inHandler.Load() == 1 }, waitFor, time.Millisecond)
	obs.mu.Lock()
	webhookDrops := 0
	for k, v := range obs.dropped {
		require.True(t, strings.HasPrefix(k, "webhook "), k)
		webhookDrops += v
	}
	obs.mu.Unlock()
	require.GreaterOrEqual(t, webhookDrops, events-queue-1)
	require.LessOrEqual(t, webhookDrops, events-1)

	// The chat sink took only its kinds (drained, rebooting, back): 3 of every 7.
	chatEvents := 0
	for i := range events {
		if k := Kinds()[i%len(Kinds())]; k == Drained || k == Rebooting || k == Back {
			chatEvents++
		}
	}
	require.Eventually(t, func() bool {
		requests, _, _ := chat.snapshot()
		return len(requests) == chatEvents
	}, waitFor, time.Millisecond)

	// Close cannot deliver to the hanging receiver: it gives up at its
	// deadline, drops what is queued, abandons the attempt under way.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = n.Close(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	st := n.Stats()
	require.Equal(t, uint64(chatEvents), st.Delivered)
	require.Equal(t, uint64(events+chatEvents), st.Delivered+st.Failed+st.Dropped)
	require.Equal(t, uint64(1), st.Failed, "the attempt under way")
}

func TestCloseFlushes(t *testing.T) {
	// Every event fails once first, so delivery takes many round trips and
	// back-offs: Close returning before them would leave events behind.
	rc := newReceiver(t, func(r request) int {
		if r.attempt == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	n, err := New(fast(Config{WebhookURL: rc.URL, MaxAttempts: 2, InitialBackoff: 2 * time.Millisecond}))
	require.NoError(t, err)
	n.Start(context.Background())
	const events = 20
	for i := range events {
		n.Notify(Event{Kind: BlockedLong, Node: "node-g", Cycle: "c-" + string(rune('A'+i))})
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, n.Close(ctx))

	_, _, accepted := rc.snapshot()
	require.Len(t, accepted, events)
	require.Equal(t, Stats{Delivered: events}, n.Stats())

	// Closed: later events are dropped, not sent; a second Close is a no-op.
	n.Notify(Event{Kind: Back, Node: "node-g", Cycle: "late"})
	require.Equal(t, uint64(1), n.Stats().Dropped)
	require.NoError(t, n.Close(ctx))
	requests, _, _ := rc.snapshot()
	require.Len(t, requests, 2*events)
}

func TestCloseWithoutStartDropsAndSaysSo(t *testing.T) {
	rc := newReceiver(t, ok)
	obs := newRecorder()
	n, err := New(fast(Config{WebhookURL: rc.URL, Observer: obs}))
	require.NoError(t, err)
	n.Notify(Event{Kind: Drained, Node: "node-h", Cycle: "c-5"})
	err = n.Close(context.Background())
	require.ErrorContains(t, err, "1 notifications dropped")
	require.Equal(t, map[string]int{"webhook drained": 1}, obs.dropped)
	n.Start(context.Background()) // after Close: nothing to start
	requests, _, _ := rc.snapshot()
	require.Empty(t, requests)
}

func TestStopAbandonsRetries(t *testing.T) {
	rc := newReceiver(t, func(request) int { return http.StatusInternalServerError })
	obs := newRecorder()
	waiting := &signalHandler{message: "notification attempt failed, retrying", seen: make(chan struct{})}
	n, err := New(Config{WebhookURL: rc.URL, Observer: obs, MaxAttempts: 100, InitialBackoff: time.Hour, Logger: slog.New(waiting)})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	n.Start(ctx)
	n.Notify(Event{Kind: Failed, Node: "node-i", Cycle: "c-6", Reason: "drain timed out"})
	select {
	case <-waiting.seen: // the first attempt failed; the hour-long wait begins
	case <-time.After(waitFor):
		t.Fatal("the first attempt never failed")
	}
	cancel() // stops the wait
	require.Eventually(t, func() bool { return n.Stats().Failed == 1 }, waitFor, time.Millisecond)
	errs := obs.failures("webhook failed")
	require.Len(t, errs, 1)
	require.ErrorContains(t, errs[0], "stopped before attempt 2")
	require.NoError(t, n.Close(context.Background()))
}

func TestFlushWaitsForEarlierEventsOnEverySink(t *testing.T) {
	gate := make(chan struct{})
	slow := newReceiver(t, func(request) int { <-gate; return http.StatusOK })
	t.Cleanup(func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	})
	chat := newReceiver(t, ok)
	n := started(t, Config{WebhookURL: slow.URL, URLs: []string{genericURL(chat, "/")}})
	n.Notify(Event{Kind: Drained, Node: "node-j", Cycle: "c-7"})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, n.Flush(ctx), context.DeadlineExceeded, "the webhook has not answered yet")
	close(gate)
	flush(t, n)
	require.Equal(t, uint64(2), n.Stats().Delivered)
}

func TestNoSinksSendsNothing(t *testing.T) {
	n, err := New(Config{})
	require.NoError(t, err)
	require.Empty(t, n.Sinks())
	n.Start(context.Background())
	n.Notify(Event{Kind: Drained, Node: "node-k"})
	require.NoError(t, n.Flush(context.Background()))
	require.NoError(t, n.Close(context.Background()))
	require.Equal(t, Stats{}, n.Stats())
}

func TestUnknownKindIsNotSent(t *testing.T) {
	rc := newReceiver(t, ok)
	n := started(t, Config{WebhookURL: rc.URL})
	n.Notify(Event{Kind: "exploded", Node: "node-l", Cycle: "c-8"})
	n.Notify(Event{Kind: Back, Node: "node-l", Cycle: "c-8"})
	flush(t, n)
	requests, _, _ := rc.snapshot()
	require.Len(t, requests, 1)
	require.Equal(t, "c-8/back", requests[0].key)
}

func TestSinkNames(t *testing.T) {
	rc := newReceiver(t, ok)
	n, err := New(Config{URLs: []string{genericURL(rc, "/a"), genericURL(rc, "/b"), "'" + genericURL(rc, "/c") + "'"},
		WebhookURL: rc.URL})
	require.NoError(t, err)
	require.Equal(t, []string{"generic", "generic-2", "generic-3", "webhook"}, n.Sinks())
}

func TestBackoff(t *testing.T) {
	n := &Notifier{set: settings{initialBackoff: 100 * time.Millisecond, maxBackoff: time.Second}}
	for _, tc := range []struct {
		attempt  int
		err      error
		min, max time.Duration
	}{
		{1, errors.New("refused"), 50 * time.Millisecond, 100 * time.Millisecond},
		{2, errors.New("refused"), 100 * time.Millisecond, 200 * time.Millisecond},
		{4, errors.New("refused"), 400 * time.Millisecond, 800 * time.Millisecond},
		{5, errors.New("refused"), 500 * time.Millisecond, time.Second},
		{80, errors.New("refused"), 500 * time.Millisecond, time.Second}, // no overflow
		{1, &StatusError{StatusCode: 429, RetryAfter: 700 * time.Millisecond}, 700 * time.Millisecond, 700 * time.Millisecond},
		{1, &StatusError{StatusCode: 503, RetryAfter: time.Hour}, time.Second, time.Second},
	} {
		for range 50 {
			d := n.backoff(tc.attempt, tc.err)
			require.GreaterOrEqual(t, d, tc.min, "attempt %d", tc.attempt)
			require.LessOrEqual(t, d, tc.max, "attempt %d", tc.attempt)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"7", 7 * time.Second},
		{" 7 ", 7 * time.Second},
		{"999999999999999999", time.Hour},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{now.Add(1000 * time.Hour).Format(http.TimeFormat), time.Hour},
		{"soon", 0},
	} {
		require.Equal(t, tc.want, retryAfter(tc.header, now), "%q", tc.header)
	}
}

func TestIdempotencyKey(t *testing.T) {
	at := time.Unix(1700000000, 5)
	require.Equal(t, "c-1/drained", Event{Kind: Drained, Node: "n", Cycle: "c-1", Time: at}.IdempotencyKey())
	require.Equal(t, "n/blocked-long/1700000000000000005", Event{Kind: BlockedLong, Node: "n", Time: at}.IdempotencyKey())
	require.NotEqual(t, Event{Kind: Drained, Cycle: "c"}.IdempotencyKey(), Event{Kind: Back, Cycle: "c"}.IdempotencyKey())
}

// signalHandler is a slog.Handler that closes seen at the first record with
// message: a test's way to know where the delivery goroutine is.
type signalHandler struct {
	message string
	once    sync.Once
	seen    chan struct{}
}

func (h *signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *signalHandler) WithGroup(string) slog.Handler            { return h }
func (h *signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.message {
		h.once.Do(func() { close(h.seen) })
	}
	return nil
}
