//go:build !race

package server

import (
	"bytes"
	"net"
	"testing"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// The echo hot path must not allocate in steady state: an inline route
// not at all, a worker route at most the loop wake-up (gnet's Execute
// closure and queue node). AllocsPerRun counts the whole process, server
// included; the client side below reuses its buffers.
func TestEchoAllocs(t *testing.T) {
	srv := New[struct{}](Options{})
	srv.Handle("/inline", echo[struct{}](), Inline())
	srv.Handle("/worker", echo[struct{}]())
	addr := start(t, srv)
	for _, tt := range []struct {
		path string
		max  float64
	}{{"/inline", 0}, {"/worker", 2}} {
		c, err := wstest.Dial(addr, tt.path)
		if err != nil {
			t.Fatal(err)
		}
		payload := bytes.Repeat([]byte{'x'}, 1024)
		frame := codec.AppendMaskedFrame(nil, codec.OpBinary, true, false, [4]byte{1, 2, 3, 4}, payload)
		buf := make([]byte, codec.HeaderLen(len(payload), false)+len(payload))
		conn := c.Conn.(*net.TCPConn)
		roundTrip := func() {
			if _, err := conn.Write(frame); err != nil {
				t.Fatal(err)
			}
			for got := 0; got < len(buf); {
				n, err := conn.Read(buf[got:])
				if err != nil {
					t.Fatal(err)
				}
				got += n
			}
		}
		for range 1000 { // warm the pools
			roundTrip()
		}
		if got := testing.AllocsPerRun(2000, roundTrip); got > tt.max {
			t.Errorf("%s: %.1f allocations per echoed 1 KiB message, want at most %.0f", tt.path, got, tt.max)
		}
		c.Close()
	}
}
