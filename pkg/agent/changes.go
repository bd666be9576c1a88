package agent

import "sync"

// changeSignal tells waiters that the Node cache changed: the channel Changed
// returns is closed at the next change. A waiter takes it, then looks at the
// cache, then waits on it, so that no change between the look and the wait is
// missed.
type changeSignal struct {
	mu sync.Mutex
	ch chan struct{}
}

func newChangeSignal() *changeSignal { return &changeSignal{ch: make(chan struct{})} }

// Changed is closed at the next change.
func (c *changeSignal) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

// notify wakes every waiter.
func (c *changeSignal) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.ch)
	c.ch = make(chan struct{})
}
