package server

import (
	"bytes"
	"net"
	"testing"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// echoRoundTrip dials path and returns a function that sends one masked
// message of size bytes and reads its echo. The client side reuses its
// buffers and allocates nothing, so allocations counted around it are the
// server's.
func echoRoundTrip(tb testing.TB, addr, path string, size int) func() {
	c, err := wstest.Dial(addr, path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	payload := bytes.Repeat([]byte{'x'}, size)
	frame := codec.AppendMaskedFrame(nil, codec.OpBinary, true, false, [4]byte{1, 2, 3, 4}, payload)
	buf := make([]byte, codec.HeaderLen(size, false)+size)
	conn := c.Conn.(*net.TCPConn)
	roundTrip := func() {
		if _, err := conn.Write(frame); err != nil {
			tb.Fatal(err)
		}
		for got := 0; got < len(buf); {
			n, err := conn.Read(buf[got:])
			if err != nil {
				tb.Fatal(err)
			}
			got += n
		}
	}
	for range 1000 { // warm the pools
		roundTrip()
	}
	return roundTrip
}

// echoServer serves /inline (on the loop) and /worker (on the pool).
func echoServer(tb testing.TB) string {
	srv := New[struct{}](Options{})
	srv.Handle("/inline", echo[struct{}](), Inline())
	srv.Handle("/worker", echo[struct{}]())
	return start(tb, srv)
}

// benchEcho measures one echo round trip over loopback; the goal is 0
// allocs/op in steady state.
func benchEcho(b *testing.B, path string, size int) {
	roundTrip := echoRoundTrip(b, echoServer(b), path, size)
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		roundTrip()
	}
}

func BenchmarkEchoInline1KiB(b *testing.B) { benchEcho(b, "/inline", 1024) }
func BenchmarkEchoWorker1KiB(b *testing.B) { benchEcho(b, "/worker", 1024) }
