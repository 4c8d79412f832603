package conformance

import (
	"bytes"
	"compress/flate"
	"fmt"
	"sync"
	"testing"
	"time"
)

// The client's side of permessage-deflate is the standard library's
// compress/flate, an implementation independent of the server's
// (klauspost/compress through codec.Flate): interoperability is what is tested.

// offer is what a browser sends.
const offer = "permessage-deflate; client_max_window_bits"

var deflateOpts = Options{Extensions: offer}

// compress is a permessage-deflate payload for p from a fresh context.
func compress(p []byte) []byte { return Compress(p, flate.BestCompression) }

// Autobahn 12.x/13.x (negotiation part) and RFC 7692 §7.1.
func TestDeflateNegotiation(t *testing.T) {
	cases := []struct {
		name   string
		offer  string
		accept bool // false: must be declined; true: must be accepted
		check  func(d *Deflate) error
	}{
		{"browser offer", offer, true, func(d *Deflate) error {
			if !d.ServerNoContextTakeover || !d.ClientNoContextTakeover {
				return fmt.Errorf("want server_no_context_takeover and client_no_context_takeover by default, got %+v", *d)
			}
			return nil
		}},
		{"bare offer", "permessage-deflate", true, nil},
		{"no context takeover both ways", "permessage-deflate; server_no_context_takeover; client_no_context_takeover", true, func(d *Deflate) error {
			if !d.ServerNoContextTakeover || !d.ClientNoContextTakeover {
				return fmt.Errorf("requested no context takeover, got %+v", *d)
			}
			return nil
		}},
		{"client_max_window_bits=10", "permessage-deflate; client_max_window_bits=10", true, func(d *Deflate) error {
			if d.ClientMaxWindowBits > 10 {
				return fmt.Errorf("client_max_window_bits=%d in the response exceeds the offered 10", d.ClientMaxWindowBits)
			}
			return nil
		}},
		{"server_max_window_bits=9 is honoured", "permessage-deflate; server_max_window_bits=9", true, func(d *Deflate) error {
			if d.ServerMaxWindowBits != 9 {
				return fmt.Errorf("want server_max_window_bits=9 in the response, got %+v", *d)
			}
			return nil
		}},
		{"server_max_window_bits=8 is honoured", "permessage-deflate; server_max_window_bits=8; client_max_window_bits", true, func(d *Deflate) error {
			if d.ServerMaxWindowBits != 8 {
				return fmt.Errorf("want server_max_window_bits=8 in the response, got %+v", *d)
			}
			return nil
		}},
		{"unknown parameter is declined", "permessage-deflate; foo=bar", false, nil},
		{"server_max_window_bits=16 is declined", "permessage-deflate; server_max_window_bits=16", false, nil},
		{"server_max_window_bits without value is declined", "permessage-deflate; server_max_window_bits", false, nil},
		{"duplicate parameter is declined", "permessage-deflate; server_no_context_takeover; server_no_context_takeover", false, nil},
		{"bad offer then good offer", "permessage-deflate; foo=bar, permessage-deflate; client_max_window_bits", true, nil},
		{"unknown extension only", "x-webkit-deflate-frame", false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, srvDefault, Options{Extensions: tc.offer})
			defer c.Close()
			exts := c.Resp.Get("Sec-WebSocket-Extensions")
			switch {
			case tc.accept && c.Deflate == nil:
				t.Fatalf("offer %q: want permessage-deflate accepted, got no extension", tc.offer)
			case !tc.accept && c.Deflate != nil:
				t.Fatalf("offer %q: want it declined, got %q", tc.offer, exts)
			}
			if tc.check != nil && c.Deflate != nil {
				if err := tc.check(c.Deflate); err != nil {
					t.Fatalf("response %q: %v", exts, err)
				}
			}
			// Whatever was agreed must work.
			p := textPayload(4096)
			rsv := byte(0)
			body := p
			if c.Deflate != nil {
				rsv, body = 4, c.Compress(p)
			}
			if err := c.Write(Frame(opText, true, rsv, body)); err != nil {
				t.Fatal(err)
			}
			expect(t, c, textB(p))
			closeNormally(t, c)
		})
	}
	t.Run("--deflate=false declines", func(t *testing.T) {
		t.Parallel()
		c := dial(t, srvPlain, deflateOpts)
		defer c.Close()
		if c.Deflate != nil {
			t.Fatalf("--deflate=false, yet the server accepted %q", c.Resp.Get("Sec-WebSocket-Extensions"))
		}
		if err := c.Write(Frame(opText, true, 4, compress([]byte("Hello")))); err != nil {
			t.Fatal(err)
		}
		expect(t, c, closed(1002))
	})
}

// Autobahn 12.x/13.x (echo part).
func TestDeflateEcho(t *testing.T) {
	var cases []wireCase
	for _, n := range []int{0, 1024, 64 << 10, 1 << 20} {
		tp := textPayload(n)
		bp := binPayload(n, uint64(n))
		copy(bp[n/2:], bytes.Repeat([]byte("compressible "), n/26)) // half random, half repetitive
		cases = append(cases,
			wireCase{fmt.Sprintf("text %d", n), [][]byte{Frame(opText, true, 4, compress(tp))}, []want{textB(tp)}},
			wireCase{fmt.Sprintf("binary %d", n), [][]byte{Frame(opBinary, true, 4, compress(bp))}, []want{bin(bp)}},
		)
	}
	kosme := textPayload(100 << 10)
	ck := compress(kosme)
	third := len(ck) / 3
	oneByteCompressed := fragments(opBinary, compress([]byte("tiny compressed")), 1)
	oneByteCompressed[0][0] |= 0x40 // RSV1 on the first frame only
	var ten [][]byte
	var tenWant []want
	for i := range 10 {
		p := bytes.Repeat(fmt.Appendf(nil, "message %d ", i), 50+i)
		ten = append(ten, Frame(opText, true, 4, compress(p)))
		tenWant = append(tenWant, textB(p))
	}
	cases = append(cases,
		wireCase{"uncompressed message on a deflate connection", [][]byte{frs(opText, "plain")}, []want{text("plain")}},
		wireCase{"compressed message in 3 frames", [][]byte{
			Frame(opText, false, 4, ck[:third]), Frame(opCont, false, 0, ck[third:2*third]), Frame(opCont, true, 0, ck[2*third:]),
		}, []want{textB(kosme)}},
		wireCase{"compressed message in 1-byte frames", oneByteCompressed, []want{bin([]byte("tiny compressed"))}},
		wireCase{"ten compressed messages in a row", ten, tenWant},
		wireCase{"compressed, plain, compressed", [][]byte{
			Frame(opText, true, 4, compress([]byte("one"))), frs(opText, "two"), Frame(opText, true, 4, compress([]byte("three"))),
		}, []want{text("one"), text("two"), text("three")}},
		wireCase{"ping between compressed fragments", [][]byte{
			Frame(opText, false, 4, ck[:third]), frs(opPing, "p"), Frame(opCont, true, 0, ck[third:]),
		}, []want{pong([]byte("p")), textB(kosme)}},
	)
	runCases(t, srvDefault, deflateOpts, cases, oneWrite, perFrame)
}

// Protocol errors specific to permessage-deflate.
func TestDeflateViolations(t *testing.T) {
	c := compress([]byte("Hello, compressed world"))
	runCases(t, srvDefault, deflateOpts, []wireCase{
		{"RSV1 on a continuation", [][]byte{Frame(opText, false, 4, c[:4]), Frame(opCont, true, 4, c[4:])}, []want{closed(1002)}},
		{"RSV1 on a ping", [][]byte{Frame(opPing, true, 4, nil)}, []want{closed(1002)}},
		{"RSV1 on a close", [][]byte{Frame(opClose, true, 4, CloseBody(1000, ""))}, []want{closed(1002)}},
		{"RSV2 on a text frame", [][]byte{Frame(opText, true, 2, []byte("x"))}, []want{closed(1002)}},
		{"RSV1+RSV3 on a text frame", [][]byte{Frame(opText, true, 5, c)}, []want{closed(1002)}},
		{"corrupt deflate data", [][]byte{Frame(opBinary, true, 4, []byte{0xff, 0xff, 0xff, 0xff})}, []want{closed(1007, 1002)}},
		{"compressed text that inflates to invalid UTF-8", [][]byte{Frame(opText, true, 4, compress([]byte("κόσμε\xed\xa0\x80edited")))}, []want{closed(1007)}},
		{"compressed text truncated mid-code-point", [][]byte{Frame(opText, true, 4, compress([]byte("κόσμ\xce")))}, []want{closed(1007)}},
	}, oneWrite)
}

var (
	bombOnce sync.Once
	bomb     []byte // 64 MiB of zeros, compressed
)

// zipBomb is a permessage-deflate payload that inflates to mib MiB of
// zeros. One compressed MiB, sync-flushed, is repeated: each copy decodes
// the same way once the window holds zeros, and this keeps the setup fast
// under -race.
func zipBomb(mib int) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(make([]byte, 1<<20))
	w.Flush()
	seg := b.Bytes() // ends with the 00 00 ff ff of the sync flush
	out := bytes.Repeat(seg, mib)
	return out[:len(out)-4]
}

// Decompression bombs hit the message limit after inflating, and the
// daemon survives them.
func TestDeflateBomb(t *testing.T) {
	bombOnce.Do(func() { bomb = zipBomb(64) })
	t.Logf("64 MiB of zeros compress to %d bytes", len(bomb))
	check := func(t *testing.T, d *daemon, send [][]byte) {
		c := dial(t, d, deflateOpts)
		defer c.Close()
		if c.Deflate == nil {
			t.Fatalf("permessage-deflate not accepted")
		}
		c.Timeout = 10 * time.Second
		start := time.Now()
		s := sendAsync(c, send, oneWrite)
		defer s.wait()
		expect(t, c, closed(1009))
		t.Logf("closed after %v", time.Since(start).Round(time.Millisecond))
	}
	t.Run("small/exactly the limit inflated echoes", func(t *testing.T) {
		runCase(t, srvSmall, deflateOpts, wireCase{"", [][]byte{Frame(opBinary, true, 4, compress(make([]byte, maxSmall)))}, []want{bin(make([]byte, maxSmall))}}, oneWrite)
	})
	t.Run("small/one byte over the limit inflated", func(t *testing.T) {
		check(t, srvSmall, [][]byte{Frame(opBinary, true, 4, compress(make([]byte, maxSmall+1)))})
	})
	t.Run("small/1 MiB of zeros (about 1 KiB on the wire)", func(t *testing.T) {
		check(t, srvSmall, [][]byte{Frame(opText, true, 4, zipBomb(1))})
	})
	t.Run("small/64 MiB of zeros in one frame", func(t *testing.T) {
		check(t, srvSmall, [][]byte{Frame(opBinary, true, 4, bomb)})
	})
	t.Run("small/64 MiB of zeros in 4 KiB frames", func(t *testing.T) {
		f := fragments(opBinary, bomb, 4096)
		f[0][0] |= 0x40
		check(t, srvSmall, f)
	})
	t.Run("default/64 MiB of zeros against the 16 MiB limit", func(t *testing.T) {
		check(t, srvDefault, [][]byte{Frame(opBinary, true, 4, bomb)})
	})
	srvSmall.healthy(t)
	srvDefault.healthy(t)
	// And compression still works afterwards.
	runCase(t, srvSmall, deflateOpts, wireCase{"", [][]byte{Frame(opText, true, 4, compress([]byte("after the bomb")))}, []want{text("after the bomb")}}, oneWrite)
}
