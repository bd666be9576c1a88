package agent

import (
	"context"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/record"
)

// eventCount counts Events recorded and Events the sink has handled, so that
// Flush can wait for the ones recorded so far: the broadcaster sends in the
// background, and a host going down takes unsent Events with it.
type eventCount struct {
	mu       sync.Mutex
	recorded int64
	handled  int64
	changed  chan struct{} // closed and replaced on every handled Event
}

func newEventCount() *eventCount { return &eventCount{changed: make(chan struct{})} }

func (c *eventCount) record() {
	c.mu.Lock()
	c.recorded++
	c.mu.Unlock()
}

func (c *eventCount) handle() {
	c.mu.Lock()
	c.handled++
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Flush waits until every Event recorded before the call was handed to the API
// server (or failed to be), or ctx ends.
func (c *eventCount) Flush(ctx context.Context) error {
	c.mu.Lock()
	target := c.recorded
	c.mu.Unlock()
	for {
		c.mu.Lock()
		handled, changed := c.handled, c.changed
		c.mu.Unlock()
		if handled >= target {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changed:
		}
	}
}

// countingRecorder counts each Event it records.
type countingRecorder struct {
	record.EventRecorder
	count *eventCount
}

func (r countingRecorder) Event(obj runtime.Object, eventType, reason, message string) {
	r.count.record()
	r.EventRecorder.Event(obj, eventType, reason, message)
}

func (r countingRecorder) Eventf(obj runtime.Object, eventType, reason, format string, args ...any) {
	r.count.record()
	r.EventRecorder.Eventf(obj, eventType, reason, format, args...)
}

func (r countingRecorder) AnnotatedEventf(obj runtime.Object, annotations map[string]string, eventType, reason, format string, args ...any) {
	r.count.record()
	r.EventRecorder.AnnotatedEventf(obj, annotations, eventType, reason, format, args...)
}

// countingSink counts each Event the broadcaster hands it.
type countingSink struct {
	record.EventSink
	count *eventCount
}

func (s countingSink) Create(e *corev1.Event) (*corev1.Event, error) {
	defer s.count.handle()
	return s.EventSink.Create(e)
}

func (s countingSink) Update(e *corev1.Event) (*corev1.Event, error) {
	defer s.count.handle()
	return s.EventSink.Update(e)
}

func (s countingSink) Patch(e *corev1.Event, data []byte) (*corev1.Event, error) {
	defer s.count.handle()
	return s.EventSink.Patch(e, data)
}

// newRecorder records Events on the Node through the core Events API. The
// correlator's spam filter is opened wide: the agent says each thing once
// already, and a dropped Event would leave Flush waiting for it.
func newRecorder(sink typedcorev1.EventInterface, node string) (record.EventRecorder, func(context.Context) error, func()) {
	count := newEventCount()
	broadcaster := record.NewBroadcaster(record.WithCorrelatorOptions(record.CorrelatorOptions{QPS: 100, BurstSize: 1000}))
	broadcaster.StartRecordingToSink(countingSink{EventSink: &typedcorev1.EventSinkImpl{Interface: sink}, count: count})
	recorder := broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: "nodepatch", Host: node})
	return countingRecorder{EventRecorder: recorder, count: count}, count.Flush, broadcaster.Shutdown
}
