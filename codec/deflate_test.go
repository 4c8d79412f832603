package codec

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/flate"
)

// deflateJSON is a pub/sub-like JSON payload of exactly n bytes.
func deflateJSON(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.WriteString("[")
	for b.Len() < n {
		fmt.Fprintf(&b, `{"id":%d,"user":"user%d","channel":"prices.eur","price":%.4f,"ts":"2024-01-%02dT10:%02d:%02dZ","ok":true},`,
			r.IntN(100000), r.IntN(500), r.Float64()*100, r.IntN(28)+1, r.IntN(60), r.IntN(60))
	}
	return b.Bytes()[:n]
}

func deflateNoise(n int) []byte {
	r := rand.New(rand.NewPCG(3, 4))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func deflateRepetitive(n int) []byte {
	return bytes.Repeat([]byte("wsd "), n/4+1)[:n]
}

func TestDeflateRoundTrip(t *testing.T) {
	f := NewFlate(DeflateConfig{Enabled: true})
	for _, size := range []int{0, 1, 1 << 10, 1 << 20} {
		for name, msg := range map[string][]byte{
			"random":     deflateNoise(size),
			"repetitive": deflateRepetitive(size),
			"json":       deflateJSON(size),
		} {
			t.Run(fmt.Sprintf("%s/%d", name, size), func(t *testing.T) {
				prefix := []byte("hdr")
				c := f.Deflate(prefix, msg, nil)
				if string(c[:3]) != "hdr" {
					t.Fatal("Deflate overwrote dst")
				}
				c = c[3:]
				if bytes.HasSuffix(c, []byte(flushTail)) && size > 0 {
					t.Errorf("tail not stripped: % x", c[len(c)-4:])
				}
				if size == 0 && !bytes.Equal(c, []byte{0}) {
					// RFC 7692 §7.2.1 applied to no input leaves 0x00.
					t.Errorf("empty message compressed to % x", c)
				}
				if name == "repetitive" && size >= 1<<10 && len(c) > size/10 {
					t.Errorf("repetitive %d bytes compressed to %d", size, len(c))
				}
				out, err := f.Inflate([]byte("x"), c, size, nil)
				if err != nil {
					t.Fatalf("Inflate: %v", err)
				}
				if !bytes.Equal(out[1:], msg) || out[0] != 'x' {
					t.Fatalf("round trip mismatch: %d bytes in, %d out", len(msg), len(out)-1)
				}
				// One byte less than the message is too big.
				if size > 0 {
					out, err = f.Inflate(out[:1], c, size-1, nil)
					if err != ErrMessageTooBig || len(out) != 1 {
						t.Fatalf("max=size-1: len %d err %v, want ErrMessageTooBig", len(out), err)
					}
				}
			})
		}
	}
}

func TestInflateEmptyPayload(t *testing.T) {
	f := NewFlate(DeflateConfig{})
	out, err := f.Inflate(nil, nil, 0, nil)
	if err != nil || len(out) != 0 {
		t.Fatalf("empty payload: %q %v", out, err)
	}
	out, err = f.Inflate(nil, []byte{0}, 0, nil)
	if err != nil || len(out) != 0 {
		t.Fatalf("0x00 payload: %q %v", out, err)
	}
}

func TestInflateBomb(t *testing.T) {
	f := NewFlate(DeflateConfig{Enabled: true})
	bomb := f.Deflate(nil, make([]byte, 64<<20), nil)
	t.Logf("64 MiB of zeros compress to %d bytes", len(bomb))

	const max = 1 << 20
	dst := make([]byte, 0, 16)
	// Warm the pool so that the measurement sees only Inflate's own work.
	if _, err := f.Inflate(dst, bomb[:1024], max, nil); err != ErrMessageTooBig && err != ErrCorruptCompression {
		t.Fatalf("warm-up: %v", err)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := f.Inflate(dst, bomb, max, nil)
	runtime.ReadMemStats(&after)
	if err != ErrMessageTooBig {
		t.Fatalf("err = %v, want ErrMessageTooBig", err)
	}
	if len(out) != 0 {
		t.Errorf("dst grew to %d on error", len(out))
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("inflating the bomb with max=1 MiB allocated %d bytes", alloc)
	if alloc > 8<<20 {
		t.Errorf("allocated %d bytes, want < 8 MiB", alloc)
	}
}

func TestInflateLimitExact(t *testing.T) {
	f := NewFlate(DeflateConfig{})
	msg := deflateJSON(100 << 10)
	c := f.Deflate(nil, msg, nil)
	for _, max := range []int{0, 1, 511, 512, 513, 4096, len(msg) - 1} {
		out, err := f.Inflate(nil, c, max, nil)
		if err != ErrMessageTooBig || len(out) != 0 {
			t.Errorf("max %d: len %d err %v", max, len(out), err)
		}
	}
	for _, max := range []int{len(msg), len(msg) + 1, 1 << 30} {
		out, err := f.Inflate(nil, c, max, nil)
		if err != nil || !bytes.Equal(out, msg) {
			t.Errorf("max %d: len %d err %v", max, len(out), err)
		}
	}
}

func TestInflateCorrupt(t *testing.T) {
	f := NewFlate(DeflateConfig{})
	good := f.Deflate(nil, deflateJSON(4096), nil)
	big := f.Deflate(nil, deflateNoise(inflateCopyMax+100), nil)
	tests := map[string][]byte{
		"reserved block type":    {0x07, 0x00},
		"stored length mismatch": {0x00, 0x05, 0x00, 0x00, 0x00},
		"truncated":              good[:len(good)/2],
		"truncated big":          big[:len(big)-10],
		"garbage":                deflateNoise(300),
		"flipped bits":           flipBits(good),
	}
	for name, payload := range tests {
		out, err := f.Inflate([]byte("keep"), payload, 1<<20, nil)
		if err != ErrCorruptCompression {
			t.Errorf("%s: err = %v, want ErrCorruptCompression", name, err)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst = %q after error", name, out)
		}
	}
	// The pooled reader is still good afterwards.
	if _, err := f.Inflate(nil, good, 1<<20, nil); err != nil {
		t.Fatal(err)
	}
}

func flipBits(p []byte) []byte {
	q := bytes.Clone(p)
	for i := 3; i < len(q); i += 7 {
		q[i] ^= 0x5a
	}
	return q
}

// stdPeer is a third-party encoder: compress/flate with a sync flush per
// message, tail stripped, as a browser does. The writer persists across
// messages, i.e. with context takeover.
type stdPeer struct {
	buf bytes.Buffer
	w   *stdflate.Writer
}

func newStdPeer(level int) *stdPeer {
	p := new(stdPeer)
	p.w, _ = stdflate.NewWriter(&p.buf, level)
	return p
}

func (p *stdPeer) message(msg []byte) []byte {
	p.buf.Reset()
	p.w.Write(msg)
	p.w.Flush()
	return bytes.TrimSuffix(bytes.Clone(p.buf.Bytes()), []byte(flushTail))
}

func TestInflateInterop(t *testing.T) {
	f := NewFlate(DeflateConfig{})
	for _, level := range []int{stdflate.BestSpeed, stdflate.DefaultCompression, stdflate.BestCompression, stdflate.HuffmanOnly, stdflate.NoCompression} {
		for _, msg := range [][]byte{{}, []byte("a"), deflateJSON(1 << 10), deflateNoise(1 << 17), deflateRepetitive(1 << 20)} {
			payload := newStdPeer(level).message(msg)
			out, err := f.Inflate(nil, payload, len(msg), nil)
			if err != nil || !bytes.Equal(out, msg) {
				t.Errorf("level %d, %d bytes: err %v, got %d bytes", level, len(msg), err, len(out))
			}
		}
	}
	// A peer that ends a message with a final block (BFINAL=1, RFC 7692 §7.2.3.4)
	// instead of a sync flush.
	var b bytes.Buffer
	w, _ := stdflate.NewWriter(&b, 1)
	w.Write([]byte("final block"))
	w.Close()
	if out, err := f.Inflate(nil, b.Bytes(), 100, nil); err != nil || string(out) != "final block" {
		t.Errorf("BFINAL message: %q %v", out, err)
	}
}

func TestDeflateInterop(t *testing.T) {
	// Our output, tail restored, must read with compress/flate.
	f := NewFlate(DeflateConfig{Level: 6})
	for _, msg := range [][]byte{{}, []byte("a"), deflateJSON(1 << 10), deflateNoise(1 << 17)} {
		c := append(f.Deflate(nil, msg, nil), flushTail...)
		out, err := io.ReadAll(stdflate.NewReader(io.MultiReader(bytes.NewReader(c), bytes.NewReader([]byte{1, 0, 0, 0xff, 0xff}))))
		if err != nil || !bytes.Equal(out, msg) {
			t.Errorf("%d bytes: %v", len(msg), err)
		}
	}
}

func TestContextTakeover(t *testing.T) {
	f := NewFlate(DeflateConfig{Enabled: true, ContextTakeover: true})
	if c := f.NewContext(DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true}); c != nil {
		t.Fatal("context without takeover")
	}
	var nilCtx *FlateContext
	nilCtx.Release()

	msgs := make([][]byte, 0, 40)
	for i := range 40 {
		var m []byte
		switch i % 4 {
		case 0, 1:
			m = fmt.Appendf(nil, `{"channel":"prices.eur","offset":%d,"data":{"bid":1.0842,"ask":1.0845}}`, i)
		case 2:
			m = deflateJSON(3000 + i*1000) // spans and rolls the 32 KiB window
		case 3:
			m = deflateNoise(40 << 10)
		}
		msgs = append(msgs, m)
	}

	t.Run("ours to ours", func(t *testing.T) {
		ctx := f.NewContext(DeflateParams{})
		defer ctx.Release()
		var payloads [][]byte
		for _, m := range msgs {
			payloads = append(payloads, f.Deflate(nil, m, ctx))
		}
		if len(payloads[1]) >= len(f.Deflate(nil, msgs[1], nil)) {
			t.Errorf("takeover did not help: %d bytes, fresh %d", len(payloads[1]), len(f.Deflate(nil, msgs[1], nil)))
		}
		in := f.NewContext(DeflateParams{})
		defer in.Release()
		for i, p := range payloads {
			out, err := f.Inflate(nil, p, 1<<20, in)
			if err != nil || !bytes.Equal(out, msgs[i]) {
				t.Fatalf("message %d: err %v, %d bytes, want %d", i, err, len(out), len(msgs[i]))
			}
		}
		// Without the history the same payload must not decode to the same
		// message: proves the history was used.
		if out, err := f.Inflate(nil, payloads[1], 1<<20, nil); err == nil && bytes.Equal(out, msgs[1]) {
			t.Error("second message decodes without history")
		}
	})

	t.Run("compress/flate peer", func(t *testing.T) {
		in := f.NewContext(DeflateParams{ServerNoContextTakeover: true})
		defer in.Release()
		peer := newStdPeer(stdflate.DefaultCompression)
		for i, m := range msgs {
			out, err := f.Inflate(nil, peer.message(m), 1<<20, in)
			if err != nil || !bytes.Equal(out, m) {
				t.Fatalf("message %d: err %v", i, err)
			}
		}
	})

	t.Run("server takeover only", func(t *testing.T) {
		ctx := f.NewContext(DeflateParams{ClientNoContextTakeover: true})
		defer ctx.Release()
		// The client resets per message, so each of its payloads stands
		// alone; the context must not feed history into Inflate.
		peer := newStdPeer(1)
		for i, m := range msgs[:8] {
			peer.w.Reset(&peer.buf)
			out, err := f.Inflate(nil, peer.message(m), 1<<20, ctx)
			if err != nil || !bytes.Equal(out, m) {
				t.Fatalf("message %d: err %v", i, err)
			}
		}
		// Our side keeps history: decode with a persistent std reader.
		var stream bytes.Buffer
		r := stdflate.NewReader(&stream)
		for i, m := range msgs {
			stream.Write(f.Deflate(nil, m, ctx))
			stream.WriteString(flushTail)
			got := make([]byte, len(m))
			if _, err := io.ReadFull(r, got); err != nil || !bytes.Equal(got, m) {
				t.Fatalf("message %d: %v", i, err)
			}
		}
	})

	t.Run("release and reuse", func(t *testing.T) {
		for range 3 {
			ctx := f.NewContext(DeflateParams{})
			a := f.Deflate(nil, msgs[0], ctx)
			b := f.Deflate(nil, msgs[1], ctx)
			in := f.NewContext(DeflateParams{})
			for i, p := range [][]byte{a, b} {
				if out, err := f.Inflate(nil, p, 1<<20, in); err != nil || !bytes.Equal(out, msgs[i]) {
					t.Fatalf("after reuse, message %d: %v", i, err)
				}
			}
			ctx.Release()
			in.Release()
		}
	})
}

func TestInflateWindow(t *testing.T) {
	var w inflateWindow
	var all []byte
	r := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		p := deflateNoise(r.IntN(3 * flateWindowSize / 2))
		if r.IntN(4) == 0 {
			p = p[:r.IntN(10)]
		}
		w.add(p)
		all = append(all, p...)
		want := all[max(0, len(all)-flateWindowSize):]
		if !bytes.Equal(w.buf[:w.n], want) {
			t.Fatalf("window holds %d bytes, want the last %d", w.n, len(want))
		}
	}
}

func TestFlateConcurrent(t *testing.T) {
	f := NewFlate(DeflateConfig{Threshold: -1})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := f.NewContext(DeflateParams{ServerNoContextTakeover: g%2 == 0})
			defer ctx.Release()
			in := f.NewContext(DeflateParams{ServerNoContextTakeover: g%2 == 0})
			defer in.Release()
			for i := range 50 {
				msg := deflateJSON(100 + 97*i + g)
				c := f.Deflate(nil, msg, ctx)
				out, err := f.Inflate(nil, c, 1<<20, in)
				if err != nil || !bytes.Equal(out, msg) {
					t.Errorf("goroutine %d message %d: %v", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestDeflateConfigDefaults(t *testing.T) {
	tests := []struct {
		cfg              DeflateConfig
		level, threshold int
	}{
		{DeflateConfig{}, 1, 128},
		{DeflateConfig{Level: 9, Threshold: 10}, 9, 10},
		{DeflateConfig{Level: -2, Threshold: -5}, -2, 0},
		{DeflateConfig{Level: 10}, 1, 128},
		{DeflateConfig{Level: -3}, 1, 128},
	}
	for _, tt := range tests {
		f := NewFlate(tt.cfg)
		if f.level != tt.level || f.threshold != tt.threshold {
			t.Errorf("%+v: level %d threshold %d, want %d %d", tt.cfg, f.level, f.threshold, tt.level, tt.threshold)
		}
		if f.ShouldCompress(tt.threshold-1) && tt.threshold > 0 || !f.ShouldCompress(tt.threshold) {
			t.Errorf("%+v: ShouldCompress wrong around %d", tt.cfg, tt.threshold)
		}
		msg := deflateJSON(5000)
		if out, err := f.Inflate(nil, f.Deflate(nil, msg, nil), len(msg), nil); err != nil || !bytes.Equal(out, msg) {
			t.Errorf("%+v: round trip: %v", tt.cfg, err)
		}
	}
}

// TestContextTakeoverMemory bounds what context takeover costs a connection
// that has sent and received one message: the compressor it keeps and its
// 32 KiB inflate window (DeflateConfig.ContextTakeover quotes ≈0.8 MiB).
// Measured as live heap, with the contexts held, so garbage does not count.
func TestContextTakeoverMemory(t *testing.T) {
	const (
		conns = 20
		// 848 KiB measured at level 1 with klauspost/compress v1.20 on
		// linux/amd64 (with and without -race); the bound leaves room for
		// library and runtime updates, not for a second compressor.
		maxPerConn = 1280 << 10
		// Every context holds at least its inflate window; less means the
		// measurement missed the contexts, and the bound above would pass
		// for nothing.
		minPerConn = 32 << 10
	)
	f := NewFlate(DeflateConfig{ContextTakeover: true})
	msg := deflateJSON(1 << 10)
	c := f.Deflate(nil, msg, nil)
	dst := make([]byte, 0, 4096)
	ctxs := make([]*FlateContext, conns)
	before := liveHeap()
	for i := range ctxs {
		ctxs[i] = f.NewContext(DeflateParams{})
		dst = f.Deflate(dst[:0], msg, ctxs[i])
		var err error
		if dst, err = f.Inflate(dst[:0], c, 1<<20, ctxs[i]); err != nil || !bytes.Equal(dst, msg) {
			t.Fatalf("round trip: %v", err)
		}
	}
	per := (liveHeap() - before) / conns
	runtime.KeepAlive(ctxs)
	t.Logf("context takeover: %d KiB per connection after one message each way", per>>10)
	if per > maxPerConn || per < minPerConn {
		t.Errorf("context takeover holds %d KiB per connection, want %d..%d KiB", per>>10, minPerConn>>10, maxPerConn>>10)
	}
	for _, ctx := range ctxs {
		ctx.Release()
	}
}

// liveHeap is the heap in use after a full collection. Two cycles: the
// first moves sync.Pool contents to the victim cache, the second frees them.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

func BenchmarkDeflate1KiB(b *testing.B) {
	msg := deflateJSON(1 << 10)
	b.Run("wsd", func(b *testing.B) {
		f := NewFlate(DeflateConfig{})
		dst := make([]byte, 0, 4096)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			dst = f.Deflate(dst[:0], msg, nil)
		}
		b.ReportMetric(float64(len(dst)), "out-bytes")
	})
	// The two libraries wsd could use, same level, same reuse pattern.
	b.Run("klauspost", func(b *testing.B) {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, 1)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			w.Reset(&buf)
			w.Write(msg)
			w.Flush()
		}
		b.ReportMetric(float64(buf.Len()-4), "out-bytes")
	})
	b.Run("stdlib", func(b *testing.B) {
		var buf bytes.Buffer
		w, _ := stdflate.NewWriter(&buf, 1)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			buf.Reset()
			w.Reset(&buf)
			w.Write(msg)
			w.Flush()
		}
		b.ReportMetric(float64(buf.Len()-4), "out-bytes")
	})
}

func BenchmarkInflate1KiB(b *testing.B) {
	msg := deflateJSON(1 << 10)
	c := NewFlate(DeflateConfig{}).Deflate(nil, msg, nil)
	full := append(bytes.Clone(c), inflateTail...)
	b.Run("wsd", func(b *testing.B) {
		f := NewFlate(DeflateConfig{})
		dst := make([]byte, 0, 4096)
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			dst, _ = f.Inflate(dst[:0], c, 1<<20, nil)
		}
	})
	b.Run("klauspost", func(b *testing.B) {
		br := bytes.NewReader(full)
		r := flate.NewReader(br)
		out := make([]byte, len(msg))
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			br.Reset(full)
			r.(flate.Resetter).Reset(br, nil)
			io.ReadFull(r, out)
		}
	})
	b.Run("stdlib", func(b *testing.B) {
		br := bytes.NewReader(full)
		r := stdflate.NewReader(br)
		out := make([]byte, len(msg))
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			br.Reset(full)
			r.(stdflate.Resetter).Reset(br, nil)
			io.ReadFull(r, out)
		}
	})
}
