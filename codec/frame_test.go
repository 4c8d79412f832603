package codec

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"
)

var testKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// parsed is a message or control frame reassembled from Reader pieces.
type parsed struct {
	op      OpCode
	payload []byte
	comp    bool
}

// feed runs r over stream delivered in chunks of the given sizes (cycled),
// like a socket would, and returns what came out and the first error.
func feed(r *Reader, stream []byte, chunks []int) (out []parsed, err error) {
	var buf []byte
	var cur *parsed
	ci := 0
	for len(stream) > 0 || len(buf) > 0 {
		if len(stream) > 0 {
			k := min(chunks[ci%len(chunks)], len(stream))
			ci++
			buf = append(buf, stream[:k]...)
			stream = stream[k:]
		}
		for {
			f, n, err := r.Next(buf)
			if err != nil {
				return out, err
			}
			if f.Op == 0 {
				if n != 0 {
					panic("consumed without a frame")
				}
				break
			}
			buf = buf[n:]
			if f.Op.IsControl() {
				out = append(out, parsed{op: f.Op, payload: append([]byte{}, f.Payload...)})
				continue
			}
			if f.First {
				cur = &parsed{op: f.Op, payload: []byte{}, comp: f.Compressed}
			}
			cur.payload = append(cur.payload, f.Payload...)
			if f.Fin {
				out = append(out, *cur)
				cur = nil
			}
		}
		if len(stream) == 0 && len(buf) > 0 {
			// Nothing more will come; whatever is left is a truncated frame.
			if f, _, _ := r.Next(buf); f.Op == 0 {
				break
			}
		}
	}
	return out, nil
}

func masked(op OpCode, fin bool, payload []byte) []byte {
	return AppendMaskedFrame(nil, op, fin, false, testKey, payload)
}

func TestRoundTripSizes(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 127, 4095, 4096, 65535, 65536, 65537, 1 << 20} {
		payload := make([]byte, n)
		for i := range payload {
			payload[i] = byte(i * 7)
		}
		stream := masked(OpBinary, true, payload)
		if got, want := len(stream), HeaderLen(n, true)+n; got != want {
			t.Fatalf("n=%d: frame is %d bytes, want %d", n, got, want)
		}
		for _, chunks := range [][]int{{len(stream)}, {1}, {3, 1000}, {65536}} {
			var r Reader
			out, err := feed(&r, stream, chunks)
			if err != nil || len(out) != 1 || out[0].op != OpBinary || !bytes.Equal(out[0].payload, payload) {
				t.Fatalf("n=%d chunks=%v: err=%v out=%d", n, chunks, err, len(out))
			}
		}
	}
}

func TestServerFramesParsedByClient(t *testing.T) {
	stream := AppendFrame(nil, OpText, false, []byte("hel"))
	stream = AppendFrame(stream, OpPing, true, []byte("p"))
	stream = AppendFrame(stream, OpContinuation, true, []byte("lo"))
	stream = AppendClose(stream, CloseNormal, "bye")
	r := Reader{Client: true}
	out, err := feed(&r, stream, []int{1})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != 3 || out[0].op != OpPing || string(out[1].payload) != "hello" || out[2].op != OpClose {
		t.Fatalf("got %+v", out)
	}
	code, reason, err := ParseClose(out[2].payload)
	if err != nil || code != CloseNormal || string(reason) != "bye" {
		t.Fatalf("close: %d %q %v", code, reason, err)
	}
	// A masked frame towards a client is an error.
	r = Reader{Client: true}
	if _, err := feed(&r, masked(OpText, true, nil), []int{9}); err != ErrMaskedFromServer {
		t.Fatalf("masked server frame: %v", err)
	}
}

// Control frames in the middle of a fragmented message come out on their
// own, and the message stays whole (Autobahn 5.x).
func TestFragmentationWithControl(t *testing.T) {
	var s []byte
	s = append(s, masked(OpText, false, []byte("frag1 "))...)
	s = append(s, masked(OpPing, true, []byte("ping"))...)
	s = append(s, masked(OpContinuation, false, []byte("κό"))...)
	s = append(s, masked(OpPong, true, nil)...)
	s = append(s, masked(OpContinuation, true, []byte("σμε"))...)
	for cut := 1; cut < 20; cut++ {
		var r Reader
		out, err := feed(&r, s, []int{cut})
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if len(out) != 3 || out[0].op != OpPing || out[1].op != OpPong || string(out[2].payload) != "frag1 κόσμε" {
			t.Fatalf("cut %d: %+v", cut, out)
		}
	}
}

func TestProtocolViolations(t *testing.T) {
	long := bytes.Repeat([]byte{'a'}, 126)
	rsv := func(b []byte, bits byte) []byte { b[0] |= bits << 4; return b }
	cases := []struct {
		name    string
		stream  []byte
		deflate bool
		want    *ProtocolError
	}{
		{"reserved opcode 3", masked(3, true, nil), false, ErrReservedOpcode},
		{"reserved opcode 11", masked(11, true, nil), false, ErrReservedOpcode},
		{"rsv1 without extension", rsv(masked(OpText, true, nil), 4), false, ErrRSVNotNegotiated},
		{"rsv2 with deflate", rsv(masked(OpText, true, nil), 2), true, ErrRSVNotNegotiated},
		{"rsv3", rsv(masked(OpBinary, true, nil), 1), false, ErrRSVNotNegotiated},
		{"rsv1 on control with deflate", rsv(masked(OpPing, true, nil), 4), true, ErrRSV1OnContinuation},
		{"rsv1 on continuation", append(masked(OpText, false, nil), rsv(masked(OpContinuation, true, nil), 4)...), true, ErrRSV1OnContinuation},
		{"ping 126 bytes", masked(OpPing, true, long), false, ErrControlTooLong},
		{"fragmented ping", masked(OpPing, false, nil), false, ErrControlFragmented},
		{"continuation first", masked(OpContinuation, true, []byte("x")), false, ErrUnexpectedCont},
		{"text inside fragmented", append(masked(OpText, false, []byte("a")), masked(OpText, true, nil)...), false, ErrExpectedCont},
		{"unmasked", AppendFrame(nil, OpText, true, []byte("x")), false, ErrUnmasked},
		{"bad utf8", masked(OpText, true, []byte{0xce, 0xba, 0xff}), false, ErrInvalidUTF8},
		{"utf8 cut at fin", masked(OpText, true, []byte{0xce}), false, ErrInvalidUTF8},
		{"64-bit length msb", []byte{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}, false, ErrBadLength},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, chunks := range [][]int{{1}, {len(c.stream)}} {
				r := Reader{Deflate: c.deflate}
				_, err := feed(&r, c.stream, chunks)
				if err != c.want {
					t.Fatalf("chunks %v: err = %v, want %v", chunks, err, c.want)
				}
			}
		})
	}
}

// Fail fast: the error comes from the header alone, before any payload.
func TestLimitsDecidedFromHeader(t *testing.T) {
	lim := &Limits{MaxFrame: 1000, MaxMessage: 1500}
	hdr := AppendMaskedFrame(nil, OpBinary, true, false, testKey, make([]byte, 1001))[:8]
	r := Reader{Limits: lim}
	if _, _, err := r.Next(hdr); err != ErrFrameTooBig {
		t.Fatalf("frame: %v", err)
	}
	// Two fragments that together pass the message limit.
	r = Reader{Limits: lim}
	s := append(masked(OpBinary, false, make([]byte, 900)), masked(OpContinuation, true, make([]byte, 700))[:8]...)
	if _, err := feed(&r, s, []int{len(s)}); err != ErrMessageTooBig {
		t.Fatalf("message: %v", err)
	}
	var pe *ProtocolError
	if !errors.As(error(ErrMessageTooBig), &pe) || pe.Code != CloseTooBig {
		t.Fatal("1009 expected")
	}
}

func TestTextValidatedAcrossFragments(t *testing.T) {
	// "κ" is ce ba: split between two fragments.
	s := append(masked(OpText, false, []byte{0xce}), masked(OpContinuation, true, []byte{0xba})...)
	var r Reader
	out, err := feed(&r, s, []int{3})
	if err != nil || string(out[0].payload) != "κ" {
		t.Fatalf("%v %+v", err, out)
	}
	// Invalid in the first fragment fails before the second arrives.
	r = Reader{}
	if _, err := feed(&r, masked(OpText, false, []byte{0xf4, 0x90}), []int{100}); err != ErrInvalidUTF8 {
		t.Fatalf("fail fast: %v", err)
	}
	// Fail fast inside one small frame whose payload is still in flight.
	r = Reader{}
	whole := masked(OpText, true, append([]byte("κόσμε"), 0xf4, 0x90, 0x80, 0x80, 'x', 'y'))
	if _, n, err := r.Next(whole[:len(whole)-2]); err != ErrInvalidUTF8 || n != 0 {
		t.Fatalf("partial frame: n=%d err=%v", n, err)
	}
	// A valid prefix waits, untouched, and then parses whole.
	r = Reader{}
	ok := masked(OpText, true, []byte("κόσμε"))
	cp := append([]byte{}, ok...)
	if f, n, err := r.Next(cp[:len(cp)-3]); err != nil || n != 0 || f.Op != 0 || !bytes.Equal(cp, ok) {
		t.Fatalf("valid prefix: n=%d err=%v", n, err)
	}
	if f, _, err := r.Next(cp); err != nil || string(f.Payload) != "κόσμε" {
		t.Fatalf("whole: %v %q", err, f.Payload)
	}
	// Compressed text is not checked on the wire bytes.
	r = Reader{Deflate: true}
	c := masked(OpText, true, []byte{0xff})
	c[0] |= 0x40
	if out, err := feed(&r, c, []int{100}); err != nil || !out[0].comp {
		t.Fatalf("compressed: %v", err)
	}
}

func TestParseClose(t *testing.T) {
	cases := []struct {
		payload []byte
		code    uint16
		err     error
	}{
		{nil, CloseNoStatus, nil},
		{[]byte{3}, 0, ErrCloseBody},
		{[]byte{0x03, 0xe8}, 1000, nil},
		{[]byte{0x03, 0xe8, 'o', 'k'}, 1000, nil},
		{[]byte{0x03, 0xe8, 0xff}, 0, ErrCloseReasonUTF8},
	}
	for _, c := range cases {
		code, _, err := ParseClose(c.payload)
		if code != c.code || err != c.err {
			t.Errorf("% x: %d %v, want %d %v", c.payload, code, err, c.code, c.err)
		}
	}
	valid := []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999}
	invalid := []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535}
	for _, c := range valid {
		if !ValidCloseCode(c) {
			t.Errorf("%d should be valid", c)
		}
	}
	for _, c := range invalid {
		if ValidCloseCode(c) {
			t.Errorf("%d should be invalid", c)
		}
	}
}

func TestAppendCloseTruncatesAtRuneBoundary(t *testing.T) {
	reason := string(bytes.Repeat([]byte("é"), 100)) // 200 bytes
	f := AppendClose(nil, CloseGoingAway, reason)
	r := Reader{Client: true}
	out, err := feed(&r, f, []int{len(f)})
	if err != nil || len(out[0].payload) > MaxControlPayload {
		t.Fatal(err, len(out[0].payload))
	}
	if _, _, err := ParseClose(out[0].payload); err != nil {
		t.Fatal(err)
	}
}

// A stream of random valid frames parses identically however it is split.
func TestRandomSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var stream []byte
	var want [][]byte
	for i := 0; i < 200; i++ {
		p := make([]byte, rng.IntN(70000))
		for j := range p {
			p[j] = byte(rng.IntN(128))
		}
		stream = append(stream, masked(OpText, true, p)...)
		want = append(want, p)
	}
	for trial := 0; trial < 20; trial++ {
		chunks := []int{1 + rng.IntN(9000), 1 + rng.IntN(20), 65536}
		var r Reader
		out, err := feed(&r, stream, chunks)
		if err != nil || len(out) != len(want) {
			t.Fatalf("err=%v got %d msgs", err, len(out))
		}
		for i := range want {
			if !bytes.Equal(out[i].payload, want[i]) {
				t.Fatalf("message %d differs", i)
			}
		}
	}
}

// FuzzFrames feeds arbitrary bytes split at fuzz-chosen points: the parser
// must never panic, never consume more than it was given, and must parse
// the same way whatever the split.
func FuzzFrames(f *testing.F) {
	f.Add(masked(OpText, true, []byte("hello")), uint16(1), false)
	f.Add(append(masked(OpText, false, []byte("he")), masked(OpContinuation, true, []byte("llo"))...), uint16(3), false)
	f.Add(masked(OpPing, true, []byte("ping")), uint16(2), false)
	f.Add(AppendMaskedFrame(nil, OpBinary, true, true, testKey, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}), uint16(5), true)
	f.Add(masked(OpClose, true, []byte{0x03, 0xe8, 'b', 'y', 'e'}), uint16(4), false)
	f.Add(masked(OpBinary, true, make([]byte, 300)), uint16(100), false)
	f.Add(AppendFrame(nil, OpText, true, []byte("server text")), uint16(0x8003), false)
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16, deflate bool) {
		lim := &Limits{MaxFrame: 1 << 16, MaxMessage: 1 << 17}
		client := chunk&0x8000 != 0 // also parse as a client (unmasked frames)
		whole := Reader{Limits: lim, Deflate: deflate, Client: client}
		out1, err1 := feed(&whole, append([]byte{}, data...), []int{len(data) + 1})
		split := Reader{Limits: lim, Deflate: deflate, Client: client}
		out2, err2 := feed(&split, append([]byte{}, data...), []int{int(chunk%512) + 1})
		if err1 != err2 {
			t.Fatalf("error differs with split: %v vs %v", err1, err2)
		}
		if len(out1) != len(out2) {
			t.Fatalf("message count differs: %d vs %d", len(out1), len(out2))
		}
		for i := range out1 {
			if out1[i].op != out2[i].op || !bytes.Equal(out1[i].payload, out2[i].payload) {
				t.Fatalf("message %d differs", i)
			}
		}
	})
}

func BenchmarkParseUnmask1KiB(b *testing.B) {
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64)
	frame := masked(OpBinary, true, payload)
	buf := make([]byte, len(frame))
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	var r Reader
	for b.Loop() {
		copy(buf, frame)
		f, n, err := r.Next(buf)
		if err != nil || n != len(frame) || !f.Fin {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseText1KiB(b *testing.B) {
	payload := bytes.Repeat([]byte("héllo wörld 0123"), 58)
	frame := masked(OpText, true, payload)
	buf := make([]byte, len(frame))
	b.SetBytes(int64(len(payload)))
	b.ReportAllocs()
	var r Reader
	for b.Loop() {
		copy(buf, frame)
		if _, _, err := r.Next(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode1KiB(b *testing.B) {
	payload := make([]byte, 1024)
	dst := make([]byte, 0, 2048)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendFrame(dst[:0], OpBinary, true, payload)
	}
}

func BenchmarkEncodeMasked1KiB(b *testing.B) {
	payload := make([]byte, 1024)
	dst := make([]byte, 0, 2048)
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendMaskedFrame(dst[:0], OpBinary, true, false, testKey, payload)
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
