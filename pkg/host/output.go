package host

import (
	"sync"
	"unicode/utf8"
)

// tailBuffer keeps the last max bytes written to it. Safe for concurrent
// writers, since exec copies stdout and stderr from two goroutines.
type tailBuffer struct {
	mu      sync.Mutex
	max     int
	buf     []byte
	dropped bool
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		// Shift rather than reslice so the backing array stays bounded.
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.dropped = true
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TrimToValidUTF8Start(t.buf, t.dropped)
}

// headBuffer keeps the first max bytes written to it and remembers whether
// anything was dropped.
type headBuffer struct {
	max       int
	buf       []byte
	truncated bool
}

func (h *headBuffer) Write(p []byte) (int, error) {
	room := h.max - len(h.buf)
	if room < len(p) {
		h.truncated = true
		if room > 0 {
			h.buf = append(h.buf, p[:room]...)
		}
		return len(p), nil
	}
	h.buf = append(h.buf, p...)
	return len(p), nil
}

// Tail returns the last max bytes of b as a string, starting on a whole
// UTF-8 sequence when bytes were cut.
func Tail(b []byte, max int) string {
	if len(b) <= max {
		return string(b)
	}
	return TrimToValidUTF8Start(b[len(b)-max:], true)
}

// TrimToValidUTF8Start drops a partial UTF-8 sequence at the start of b when
// b was cut from a longer text.
func TrimToValidUTF8Start(b []byte, cut bool) string {
	if cut {
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	return string(b)
}
