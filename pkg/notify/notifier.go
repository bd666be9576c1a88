package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Observer hears what became of each notification, per sink and kind, for the
// agent to count in its metrics. Its methods are called from the delivery
// goroutines and from Notify: they must be quick and must not call back.
type Observer interface {
	// Delivered: the sink took the event.
	Delivered(sink, kind string)
	// Failed: the sink refused the event for good, or every attempt failed.
	Failed(sink, kind string, err error)
	// Dropped: the event never went to the sink (its queue was full, or the
	// Notifier was closed or stopped first).
	Dropped(sink, kind string)
}

// Stats are the Notifier's totals over all sinks and kinds.
type Stats struct {
	Delivered, Failed, Dropped uint64
}

// sink is one destination: a --notify-url or the --notify-webhook.
type sink interface {
	name() string
	// describe is the destination for logs, without secrets.
	describe() string
	wants(Kind) bool
	// send makes one attempt to deliver e.
	send(ctx context.Context, e Event) error
	// retryable tells whether an attempt that failed with err is worth
	// another.
	retryable(err error) bool
}

// Notifier sends the agent's events to every sink in the background. Notify
// never waits: each sink has a bounded queue and a goroutine that delivers
// from it with retries, so a slow or dead receiver costs its own events only.
type Notifier struct {
	set      settings
	observer Observer
	log      *slog.Logger
	queues   []chan Event // queues[i] feeds set.sinks[i]

	mu       sync.Mutex
	closed   bool
	started  bool
	stop     context.CancelFunc
	enqueued []uint64      // per sink, events put in its queue
	untried  [][]Event     // per sink, events a stopping goroutine took but did not try
	handled  []uint64      // per sink, events taken from it and done with
	progress chan struct{} // closed and replaced whenever handled grows

	wg sync.WaitGroup

	delivered, failed, dropped atomic.Uint64
}

// New checks c and makes a Notifier; Start sets it delivering. With no
// --notify-url and no --notify-webhook it is a Notifier that sends nothing.
func New(c Config) (*Notifier, error) {
	set, err := c.build()
	if err != nil {
		return nil, err
	}
	n := &Notifier{set: set, observer: c.Observer, log: c.Logger, progress: make(chan struct{}),
		enqueued: make([]uint64, len(set.sinks)), handled: make([]uint64, len(set.sinks)), untried: make([][]Event, len(set.sinks))}
	if n.observer == nil {
		n.observer = nopObserver{}
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	for range set.sinks {
		n.queues = append(n.queues, make(chan Event, set.queueSize))
	}
	return n, nil
}

// Sinks names the sinks, as Observer calls them: the --notify-url services by
// scheme (slack, teams, ...; slack-2 for a second slack URL) and webhook.
func (n *Notifier) Sinks() []string {
	names := make([]string, 0, len(n.set.sinks))
	for _, s := range n.set.sinks {
		names = append(names, s.name())
	}
	return names
}

// Stats returns the totals so far.
func (n *Notifier) Stats() Stats {
	return Stats{Delivered: n.delivered.Load(), Failed: n.failed.Load(), Dropped: n.dropped.Load()}
}

// Notify queues e for every sink that takes its kind and returns at once: a
// full queue drops e for that sink (counted by Observer.Dropped). A zero
// e.Time is set to now.
func (n *Notifier) Notify(e Event) {
	if len(n.queues) == 0 {
		return
	}
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if _, err := ParseKind(string(e.Kind)); err != nil {
		n.log.Warn("notification of an unknown kind not sent", "kind", e.Kind, "node", e.Node)
		return
	}
	var lost []sink
	n.mu.Lock()
	for i, s := range n.set.sinks {
		if !s.wants(e.Kind) {
			continue
		}
		if n.closed {
			lost = append(lost, s)
			continue
		}
		select {
		case n.queues[i] <- e:
			n.enqueued[i]++
		default:
			lost = append(lost, s)
		}
	}
	n.mu.Unlock()
	// The observer is called outside the lock: it is the caller's code.
	for _, s := range lost {
		n.drop(s, e, "queue full or notifier closed")
	}
}

func (n *Notifier) drop(s sink, e Event, why string) {
	n.dropped.Add(1)
	n.observer.Dropped(s.name(), string(e.Kind))
	n.log.Warn("notification dropped", "sink", s.name(), "kind", e.Kind, "node", e.Node, "cycle", e.Cycle, "why", why)
}

// Start starts the delivery goroutines; it returns at once. Cancelling ctx
// stops them at once, abandoning attempts under way: to let Close deliver
// what is queued after the agent's own context ends, start with a context
// that outlives it (context.WithoutCancel). A second Start does nothing.
func (n *Notifier) Start(ctx context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started || n.closed {
		return
	}
	n.started = true
	ctx, n.stop = context.WithCancel(ctx)
	for i := range n.set.sinks {
		n.wg.Add(1)
		go n.work(ctx, i)
	}
}

func (n *Notifier) work(ctx context.Context, i int) {
	defer n.wg.Done()
	s, q := n.set.sinks[i], n.queues[i]
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-q:
			if !ok {
				return
			}
			if ctx.Err() != nil {
				// Stopped while both were ready: leave e to Close, which
				// counts it dropped, rather than fail it untried.
				n.requeue(i, e)
				return
			}
			n.deliver(ctx, s, e)
			n.markHandled(i)
		}
	}
}

// requeue hands e back to Close's count of what was never tried.
func (n *Notifier) requeue(i int, e Event) {
	n.mu.Lock()
	n.untried[i] = append(n.untried[i], e)
	n.mu.Unlock()
}

func (n *Notifier) markHandled(i int) {
	n.mu.Lock()
	n.handled[i]++
	close(n.progress)
	n.progress = make(chan struct{})
	n.mu.Unlock()
}

// deliver sends e to s, retrying with back-off while the failure is worth it.
func (n *Notifier) deliver(ctx context.Context, s sink, e Event) {
	var err error
	attempt := 0
retry:
	for {
		attempt++
		actx, cancel := context.WithTimeout(ctx, n.set.attemptTimeout)
		err = s.send(actx, e)
		cancel()
		if err == nil {
			n.delivered.Add(1)
			n.observer.Delivered(s.name(), string(e.Kind))
			return
		}
		if ctx.Err() != nil || !s.retryable(err) || attempt >= n.set.maxAttempts {
			break
		}
		wait := n.backoff(attempt, err)
		n.log.Debug("notification attempt failed, retrying", "sink", s.name(), "kind", e.Kind, "node", e.Node,
			"attempt", attempt, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			err = fmt.Errorf("%w (stopped before attempt %d)", err, attempt+1)
			break retry
		case <-t.C:
		}
	}
	n.failed.Add(1)
	n.observer.Failed(s.name(), string(e.Kind), err)
	n.log.Warn("notification not delivered", "sink", s.name(), "to", s.describe(), "kind", e.Kind, "node", e.Node,
		"cycle", e.Cycle, "attempts", attempt, "err", err)
}

// backoff is the wait before attempt+1: InitialBackoff doubled per failed
// attempt, capped at MaxBackoff, jittered down by up to half so that agents
// failing together do not retry together. A receiver's Retry-After, when
// longer, wins (still capped).
func (n *Notifier) backoff(attempt int, err error) time.Duration {
	d := n.set.initialBackoff
	for i := 1; i < attempt && d < n.set.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, n.set.maxBackoff)
	d = d/2 + rand.N(d/2+1)
	var se *StatusError
	if errors.As(err, &se) && se.RetryAfter > d {
		d = min(se.RetryAfter, n.set.maxBackoff)
	}
	return d
}

// Flush waits until every event queued before the call has been delivered or
// given up on, or ctx ends. Call it before the reboot, so the rebooting
// message leaves the node before the node goes down.
func (n *Notifier) Flush(ctx context.Context) error {
	n.mu.Lock()
	target := append([]uint64(nil), n.enqueued...)
	n.mu.Unlock()
	for {
		n.mu.Lock()
		done := true
		for i := range target {
			if n.handled[i] < target[i] {
				done = false
			}
		}
		progress := n.progress
		n.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("notify: flush: %w", ctx.Err())
		case <-progress:
		}
	}
}

// Close stops taking events, delivers what is queued until ctx ends, then
// stops the goroutines; what was not delivered by then is dropped and
// counted. It returns an error when something was left undelivered. A second
// Close does nothing.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	for _, q := range n.queues {
		close(q)
	}
	started, stop := n.started, n.stop
	n.mu.Unlock()

	var err error
	if started {
		done := make(chan struct{})
		go func() { n.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			err = ctx.Err()
			stop() // every attempt and back-off wait watches this: done comes soon
			<-done
		}
		stop()
	}
	left := 0
	for i, q := range n.queues {
		n.mu.Lock()
		untried := n.untried[i]
		n.untried[i] = nil
		n.mu.Unlock()
		for _, e := range untried {
			n.drop(n.set.sinks[i], e, "not delivered before close")
			n.markHandled(i)
			left++
		}
		for e := range q {
			n.drop(n.set.sinks[i], e, "not delivered before close")
			n.markHandled(i)
			left++
		}
	}
	switch {
	case err != nil:
		return fmt.Errorf("notify: close: gave up with %d queued notifications undelivered: %w", left, err)
	case left > 0:
		return fmt.Errorf("notify: close: %d notifications dropped: the notifier was not started or was stopped", left)
	}
	return nil
}

type nopObserver struct{}

func (nopObserver) Delivered(string, string)     {}
func (nopObserver) Failed(string, string, error) {}
func (nopObserver) Dropped(string, string)       {}
