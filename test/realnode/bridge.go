package realnode

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

// apiBridge is the machine's end of a node's way to the API server: each
// node has its own network namespace with nothing but loopback, and its
// loopproxy carries connections to 127.0.0.1:<API port> over a unix socket to
// here, where they are dialled on the machine's loopback.
type apiBridge struct {
	listener net.Listener
	target   string

	mu      sync.Mutex
	conns   []net.Conn
	stopped bool
	wg      sync.WaitGroup
}

// startAPIBridgeT listens on the unix socket path until the test ends.
func startAPIBridgeT(t testing.TB, path, target string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	require.NoError(t, err)
	b := &apiBridge{listener: l, target: target}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.stop)
}

func (b *apiBridge) accept() {
	defer b.wg.Done()
	for {
		c, err := b.listener.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue
		}
		b.wg.Add(1)
		go b.carry(c)
	}
}

// carry copies both ways between c and a new connection to the target, and
// closes both when either side ends.
func (b *apiBridge) carry(c net.Conn) {
	defer b.wg.Done()
	defer c.Close()
	up, err := net.Dial("tcp", b.target)
	if err != nil {
		return
	}
	defer up.Close()
	if !b.track(c, up) {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

// track remembers the connections for stop; false once stopped.
func (b *apiBridge) track(conns ...net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.stopped {
		return false
	}
	b.conns = append(b.conns, conns...)
	return true
}

// stop closes the listener and every carried connection, and waits for the
// goroutines.
func (b *apiBridge) stop() {
	b.mu.Lock()
	_ = b.listener.Close()
	for _, c := range b.conns {
		_ = c.Close()
	}
	b.conns, b.stopped = nil, true
	b.mu.Unlock()
	b.wg.Wait()
}
