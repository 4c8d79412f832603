package server

import (
	"bytes"
	"net"
	"testing"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// benchEcho measures one echo round trip over loopback. The client side
// reuses its buffers and allocates nothing, so allocs/op is the server's:
// the goal is 0 in steady state.
func benchEcho(b *testing.B, path string, size int) {
	srv := New[struct{}](Options{})
	srv.Handle("/inline", echo[struct{}](), Inline())
	srv.Handle("/worker", echo[struct{}]())
	addr := start(b, srv)
	c, err := wstest.Dial(addr, path)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	payload := bytes.Repeat([]byte{'x'}, size)
	frame := codec.AppendMaskedFrame(nil, codec.OpBinary, true, false, [4]byte{1, 2, 3, 4}, payload)
	want := codec.HeaderLen(size, false) + size
	buf := make([]byte, want)
	conn := c.Conn.(*net.TCPConn)
	roundTrip := func() {
		if _, err := conn.Write(frame); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < want; {
			n, err := conn.Read(buf[got:])
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
	for range 1000 { // warm the pools
		roundTrip()
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		roundTrip()
	}
}

func BenchmarkEchoInline1KiB(b *testing.B) { benchEcho(b, "/inline", 1024) }
func BenchmarkEchoWorker1KiB(b *testing.B) { benchEcho(b, "/worker", 1024) }
