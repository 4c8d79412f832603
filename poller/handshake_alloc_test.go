//go:build !race

package poller

import (
	"io"
	"log/slog"
	"testing"

	"github.com/panjf2000/gnet/v2"
)

// requestConn is a gnet.Conn whose inbound buffer holds one upgrade
// request; what the handshake writes back is dropped.
type requestConn struct {
	gnet.Conn
	in []byte
}

func (c *requestConn) Peek(int) ([]byte, error)    { return c.in, nil }
func (c *requestConn) Discard(n int) (int, error)  { c.in = c.in[n:]; return n, nil }
func (c *requestConn) Write(b []byte) (int, error) { return len(b), nil }
func (c *requestConn) InboundBuffered() int        { return len(c.in) }

// An upgrade costs the request's parse (the head, the Request, its
// headers) and nothing of the handshake's own: every short-lived object
// made while thousands of conns arrive lands between the conns' long-lived
// ones and keeps their spans from being returned (the Accept made there
// shared its size class with gnet's per-conn address).
func TestHandshakeAllocs(t *testing.T) {
	const runs = 200
	e := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, fdEchoHandler{})
	l := &loop{eng: e}
	req := []byte("GET /echo HTTP/1.1\r\nHost: 127.0.0.1:9\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	conns := make([]*Conn, runs+1) // AllocsPerRun runs f once more to warm up
	for i := range conns {
		conns[i] = &Conn{gc: &requestConn{in: req}, loop: l}
		conns[i].rd.Limits = &e.cfg.Limits
	}
	next := 0
	allocs := testing.AllocsPerRun(runs, func() {
		c := conns[next]
		next++
		e.handshake(c)
		if c.state != stateOpen {
			t.Fatalf("state %v after a valid upgrade", c.state)
		}
	})
	if allocs > 3 {
		t.Fatalf("%.1f allocations per upgrade, want at most 3 (the parsed request)", allocs)
	}
}
