package server

import (
	"bytes"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

const deflateOffer = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// compressedFrame is one masked, compressed, final frame of payload.
func compressedFrame(op codec.OpCode, payload []byte) []byte {
	body := codec.NewFlate(codec.DeflateConfig{Enabled: true}).Deflate(nil, payload, nil)
	return codec.AppendMaskedFrame(nil, op, true, true, [4]byte{9, 8, 7, 6}, body)
}

// wordy is n bytes of text that compresses about 3:1, like JSON does, so
// that inflating it costs what inflating real traffic costs.
func wordy(n int, seed uint64) []byte {
	words := []string{"price ", "symbol ", "\"bid\": ", "12.50, ", "ask ", "volume ", "time ", "news\n", "é ", "€ "}
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, 0, n+16)
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, byte('a'+r.IntN(26)), byte('a'+r.IntN(26)))
	}
	return b[:n]
}

// A big compressed message is inflated and validated by the worker, not
// the loop: valid ones arrive intact, invalid UTF-8 closes with 1007 and
// one too big once inflated closes with 1009, and the handler never sees
// either.
func TestOffloadInflateOnWorker(t *testing.T) {
	got := make(chan []byte, 4)
	srv := New[struct{}](Options{Compression: true, MaxMessageBytes: 4 << 20})
	srv.Handle("/in", Funcs[struct{}]{Message: func(_ *Conn[struct{}], m Message) { got <- bytes.Clone(m.Data) }})
	addr := start(t, srv)
	dial := func() *wstest.Client {
		c, err := wstest.Dial(addr, "/in", deflateOffer)
		if err != nil {
			t.Fatal(err)
		}
		c.Timeout = 20 * time.Second
		t.Cleanup(func() { c.Conn.Close() })
		return c
	}
	offloaded := func() uint64 { return srv.Stats().Offloaded }

	t.Run("valid", func(t *testing.T) {
		c := dial()
		text := wordy(1<<20, 1)         // big when compressed too
		zeros := make([]byte, 3<<20)    // tiny compressed, big inflated
		small := []byte("hello, small") // stays on the loop
		before := offloaded()
		for _, m := range []struct {
			op codec.OpCode
			b  []byte
		}{{codec.OpText, text}, {codec.OpBinary, zeros}, {codec.OpText, small}} {
			if err := c.WriteRaw(compressedFrame(m.op, m.b)); err != nil {
				t.Fatal(err)
			}
			if b := recv(t, got, 20*time.Second, "the message"); !bytes.Equal(b, m.b) {
				t.Fatalf("message of %d bytes arrived as %d different bytes", len(m.b), len(b))
			}
		}
		if n := offloaded() - before; n != 2 {
			t.Fatalf("%d messages inflated off the loop, want the 2 big ones", n)
		}
	})
	for _, tc := range []struct {
		name    string
		op      codec.OpCode
		payload []byte
		code    uint16
	}{
		{"invalid UTF-8", codec.OpText, append(wordy(1<<20, 2), 0xff, 'x'), codec.CloseInvalidPayload},
		{"too big inflated", codec.OpBinary, make([]byte, 5<<20), codec.CloseTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dial()
			before := offloaded()
			if err := c.WriteRaw(compressedFrame(tc.op, tc.payload)); err != nil {
				t.Fatal(err)
			}
			// A message behind the bad one is not delivered either.
			if err := c.WriteRaw(compressedFrame(codec.OpText, wordy(200<<10, 3))); err != nil {
				t.Fatal(err)
			}
			code, _, err := c.ExpectClose()
			if err != nil || code != tc.code {
				t.Fatalf("close %d (%v), want %d", code, err, tc.code)
			}
			if offloaded() == before {
				t.Fatal("the message was not inflated off the loop")
			}
			select {
			case b := <-got:
				t.Fatalf("the handler got a message of %d bytes", len(b))
			default:
			}
		})
	}
}

// One connection sends 16 MiB compressed messages while others on the same
// loop echo 1 KiB: every echo arrives. The p99 with the hog inflating on a
// worker, and (for comparison) on the loop, is logged, not asserted.
func TestOffloadKeepsLoopServing(t *testing.T) {
	size, hogMsgs := 16<<20, 2
	if os.Getenv("WSD_MEMORY_SOAK") != "" {
		hogMsgs = 20
	}
	frame := compressedFrame(codec.OpText, wordy(size, 4))
	run := func(t *testing.T, offload int, hog bool) time.Duration {
		var hogGot atomic.Int64
		srv := New[struct{}](Options{Compression: true, Loops: 1, OffloadBytes: offload})
		srv.Handle("/echo", echo[struct{}]())
		srv.Handle("/sink", Funcs[struct{}]{Message: func(_ *Conn[struct{}], m Message) {
			if len(m.Data) == size {
				hogGot.Add(1)
			}
		}})
		addr := start(t, srv)
		echoers := make([]*echoer, 20)
		for i := range echoers {
			c, err := wstest.Dial(addr, "/echo")
			if err != nil {
				t.Fatal(err)
			}
			c.Timeout = 30 * time.Second
			t.Cleanup(func() { c.Conn.Close() })
			echoers[i] = &echoer{c: c}
		}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		if hog {
			h, err := wstest.Dial(addr, "/sink", deflateOffer)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Conn.Close() })
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer close(stop)
				for range hogMsgs {
					if h.WriteRaw(frame) != nil {
						return
					}
				}
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				deadline := time.Now().Add(60 * time.Second)
				for hogGot.Load() < int64(hogMsgs) && time.Now().Before(deadline) {
					<-tick.C
				}
			}()
			runEchoers(echoers, stop, 1<<30)
		} else {
			runEchoers(echoers, nil, 200)
		}
		wg.Wait()
		for i, e := range echoers {
			if e.err != nil || len(e.lat) == 0 {
				t.Fatalf("echoer %d: %d echoes, err %v", i, len(e.lat), e.err)
			}
		}
		if hog && hogGot.Load() != int64(hogMsgs) {
			t.Fatalf("the sink got %d of the %d big messages", hogGot.Load(), hogMsgs)
		}
		return p99(echoers)
	}
	quiet := run(t, 0, false)
	offloaded := run(t, 0, true)
	t.Logf("1 KiB echo p99 on a loop shared with a conn sending %d × %d MiB compressed: quiet %v, inflated on a worker %v",
		hogMsgs, size>>20, quiet, offloaded)
	if os.Getenv("WSD_MEMORY_SOAK") != "" {
		// The comparison with inflating on the loop: seconds under -race.
		t.Logf("the same, inflated on the loop: %v", run(t, -1, true))
	}
}
