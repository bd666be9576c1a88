// Package systemd talks to the host's systemd over D-Bus: it connects to the
// system bus and runs commands as transient units.
package systemd

import (
	"context"
	"fmt"
	"os"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
)

// Conn is a go-systemd connection that also tells when the bus went away:
// systemd's bus dies with the host during a reboot, and go-systemd's job
// channels are never told.
type Conn struct {
	*sdbus.Conn
	closed context.Context
}

// Done is closed when the connection to the bus is lost or closed.
func (c *Conn) Done() <-chan struct{} { return c.closed.Done() }

// Address returns the bus address Connect uses for address: the given one,
// else $DBUS_SYSTEM_BUS_ADDRESS, else "" (the standard system bus socket).
func Address(address string) string {
	if address != "" {
		return address
	}
	return os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")
}

// Connect opens a connection to systemd on the bus at address (see Address).
// The connection is closed when ctx ends or when Close is called.
func Connect(ctx context.Context, address string) (*Conn, error) {
	addr := Address(address)
	closed, cancel := context.WithCancel(ctx)
	var raws []*godbus.Conn
	conn, err := sdbus.NewConnection(func() (*godbus.Conn, error) {
		raw, err := dial(ctx, addr)
		if err == nil {
			raws = append(raws, raw)
			// go-systemd uses two connections; losing either one loses the job
			// signals or the calls, so either closing marks the whole as gone.
			context.AfterFunc(raw.Context(), cancel)
		}
		return raw, err
	})
	if err != nil {
		cancel()
		for _, r := range raws {
			_ = r.Close()
		}
		return nil, fmt.Errorf("connect to systemd on bus %s: %w", describe(addr), err)
	}
	return &Conn{Conn: conn, closed: closed}, nil
}

// dial returns an authenticated connection that has said Hello, as
// go-systemd's NewConnection requires.
func dial(ctx context.Context, addr string) (*godbus.Conn, error) {
	if addr == "" {
		return godbus.ConnectSystemBus(godbus.WithContext(ctx))
	}
	return godbus.Connect(addr, godbus.WithContext(ctx))
}

func describe(addr string) string {
	if addr == "" {
		return "(system bus)"
	}
	return addr
}
