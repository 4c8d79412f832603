package codec

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/flate"
)

// Small server windows (RFC 7692 §7.1.2.1): a client that can only afford a
// small inflate window asks for server_max_window_bits=N, and the server
// must either decline or compress every message with back-references no
// farther than 2^N bytes, history from earlier messages included when it
// keeps its context.

// negotiateOffer runs an offer through an Upgrader and returns what it
// agreed and the Sec-WebSocket-Extensions line it answered.
func negotiateOffer(t *testing.T, cfg DeflateConfig, offer string) (Accept, string) {
	t.Helper()
	req := mutate("", "Sec-WebSocket-Extensions: "+offer+"\r\n")
	u := Upgrader{Deflate: cfg}
	a, err := u.Negotiate(req)
	if err != nil {
		t.Fatal(err)
	}
	line := ""
	if _, rest, ok := strings.Cut(string(AppendAccept(nil, req, a)), "Sec-WebSocket-Extensions: "); ok {
		line, _, _ = strings.Cut(rest, "\r\n")
	}
	return a, line
}

func TestSmallServerWindowAccepted(t *testing.T) {
	for _, takeover := range []bool{false, true} {
		for bits := 8; bits <= 15; bits++ {
			t.Run(fmt.Sprintf("takeover=%v/bits=%d", takeover, bits), func(t *testing.T) {
				cfg := DeflateConfig{Enabled: true, ContextTakeover: takeover}
				a, line := negotiateOffer(t, cfg, "permessage-deflate; server_max_window_bits="+strconv.Itoa(bits))
				if !a.Deflate {
					t.Fatalf("server_max_window_bits=%d: extension declined (answered %q)", bits, line)
				}
				if a.Params.ServerMaxWindowBits != bits {
					t.Errorf("Params.ServerMaxWindowBits = %d, want %d", a.Params.ServerMaxWindowBits, bits)
				}
				want := "; server_max_window_bits=" + strconv.Itoa(bits)
				if !strings.Contains(line, want) {
					t.Errorf("answered %q, want it to contain %q", line, want)
				}
				if strings.Contains(line, "client_max_window_bits") {
					t.Errorf("answered %q: client_max_window_bits was not offered", line)
				}
			})
		}
	}
}

// client_max_window_bits, with or without a value, only tells the server
// that the client could honour a limit: we inflate with a 32 KiB window, so
// we accept and never impose one.
func TestClientWindowOfferAccepted(t *testing.T) {
	for _, offer := range []string{
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; client_max_window_bits=8",
		"permessage-deflate; client_max_window_bits=9; server_max_window_bits=10",
		"permessage-deflate; server_max_window_bits=8; client_max_window_bits",
	} {
		for _, takeover := range []bool{false, true} {
			a, line := negotiateOffer(t, DeflateConfig{Enabled: true, ContextTakeover: takeover}, offer)
			if !a.Deflate {
				t.Errorf("%q (takeover %v) declined", offer, takeover)
				continue
			}
			if strings.Contains(line, "client_max_window_bits") || a.Params.ClientMaxWindowBits != 0 {
				t.Errorf("%q (takeover %v): answered %q, %+v; want no client window limit", offer, takeover, line, a.Params)
			}
		}
	}
}

// windowCorpus returns messages whose repeats lie at every distance from a
// few bytes to four windows back, inside one message and (with takeover)
// across messages, so that an encoder ignoring the window must reach too
// far, while one honouring it still finds plenty to compress.
func windowCorpus(bits int, seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, uint64(bits)))
	window := 1 << bits
	var all []byte
	var msgs [][]byte
	for range 5 {
		start := len(all)
		size := min(2*window, 16<<10) + r.IntN(512)
		for len(all)-start < size {
			seg := 16 + r.IntN(48)
			switch {
			case len(all) > seg && r.IntN(3) > 0:
				// Repeat an earlier piece: near (inside the window) or far.
				var dist int
				if r.IntN(2) == 0 {
					dist = seg + r.IntN(window-seg+1)
				} else {
					dist = window + 1 + r.IntN(3*window)
				}
				dist = min(dist, len(all))
				from := len(all) - dist
				for i := range seg {
					all = append(all, all[from+i])
				}
			default:
				for range seg {
					all = append(all, byte('a'+r.IntN(26)))
				}
			}
		}
		msgs = append(msgs, all[start:])
	}
	return msgs
}

// deflateMessages compresses msgs as one connection's server would.
func deflateMessages(f *Flate, p DeflateParams, msgs [][]byte) [][]byte {
	ctx := f.NewContext(p)
	defer ctx.Release()
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		out[i] = f.Deflate(nil, m, ctx)
	}
	return out
}

// referenceInflate inflates permessage-deflate messages with zlib (python3's
// zlib module) limited to a 2^bits window, one decompressor for all messages
// with takeover and a fresh one per message without. zlib only checks a
// distance against its window when the distance reaches behind the output
// of the current inflate() call, so the script asks for one byte of output
// per call: every back-reference is then checked, and one reaching farther
// than 2^bits fails with "invalid distance too far back".
func referenceInflate(t *testing.T, py string, bits int, takeover bool, msgs [][]byte) ([][]byte, error) {
	t.Helper()
	const script = `
import struct, sys, zlib
bits, takeover = int(sys.argv[1]), sys.argv[2] == "1"
data = sys.stdin.buffer.read()
out = sys.stdout.buffer
d = None
pos = 0
while pos < len(data):
    (n,) = struct.unpack(">I", data[pos:pos + 4])
    msg = data[pos + 4:pos + 4 + n] + b"\x00\x00\xff\xff"
    pos += 4 + n
    if d is None or not takeover:
        d = zlib.decompressobj(-bits)
    got = bytearray()
    for i in range(0, len(msg), 64):
        buf = msg[i:i + 64]
        while True:
            o = d.decompress(buf, 1)
            buf = d.unconsumed_tail
            if o:
                got += o
            elif not buf:
                break
    out.write(struct.pack(">I", len(got)))
    out.write(got)
`
	var in bytes.Buffer
	for _, m := range msgs {
		in.Write(binary.BigEndian.AppendUint32(nil, uint32(len(m))))
		in.Write(m)
	}
	tk := "0"
	if takeover {
		tk = "1"
	}
	cmd := exec.Command(py, "-c", script, strconv.Itoa(bits), tk)
	cmd.Stdin = &in
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	var err error
	if err = cmd.Start(); err != nil {
		t.Fatalf("starting python3: %v", err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatal("python3 reference inflater did not finish in 60 s")
	}
	if err != nil {
		return nil, fmt.Errorf("zlib with a 2^%d window: %v: %s", bits, err, lastLine(stderr.String()))
	}
	var res [][]byte
	p := stdout.Bytes()
	for len(p) >= 4 {
		n := int(binary.BigEndian.Uint32(p))
		res = append(res, p[4:4+n])
		p = p[4+n:]
	}
	return res, nil
}

// python returns the python3 interpreter itself: python3 on PATH may be a
// wrapper script (pyenv's costs half a second per start). A missing python3
// fails the test: its zlib is the only window-limited inflater at hand.
func python(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("python3", "-c", "import sys, zlib; print(sys.executable)").Output()
	if err != nil {
		t.Fatalf("python3 with its zlib module is required: it is this test's window-limited reference inflater (%v)", err)
	}
	return strings.TrimSpace(string(out))
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func TestSmallServerWindowCompression(t *testing.T) {
	py := python(t)
	for _, takeover := range []bool{false, true} {
		for bits := 8; bits <= 15; bits++ {
			t.Run(fmt.Sprintf("takeover=%v/bits=%d", takeover, bits), func(t *testing.T) {
				cfg := DeflateConfig{Enabled: true, ContextTakeover: takeover, Threshold: -1}
				a, line := negotiateOffer(t, cfg, "permessage-deflate; server_max_window_bits="+strconv.Itoa(bits))
				if !a.Deflate {
					t.Fatalf("server_max_window_bits=%d declined (answered %q)", bits, line)
				}
				msgs := windowCorpus(bits, 1)
				z := deflateMessages(NewFlate(cfg), a.Params, msgs)
				got, err := referenceInflate(t, py, bits, takeover, z)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(msgs) {
					t.Fatalf("reference inflated %d messages, want %d", len(got), len(msgs))
				}
				in, out := 0, 0
				for i := range msgs {
					if !bytes.Equal(got[i], msgs[i]) {
						t.Fatalf("message %d inflates to %d bytes, not the %d sent", i, len(got[i]), len(msgs[i]))
					}
					in, out = in+len(msgs[i]), out+len(z[i])
				}
				// Honouring the window must not mean giving up: the
				// corpus is mostly near repeats.
				if out > in/2 {
					t.Errorf("compressed %d bytes to %d: the windowed compressor barely compresses", in, out)
				}
			})
		}
	}
}

// The reference must be able to fail: a full 32 KiB window compressor on the
// same corpus reaches farther than 2^bits, and zlib limited to 2^bits must
// say so.
func TestReferenceInflaterRejectsFarDistances(t *testing.T) {
	py := python(t)
	for _, bits := range []int{8, 9, 12, 14} {
		msgs := windowCorpus(bits, 1)
		z := make([][]byte, len(msgs))
		for i, m := range msgs {
			var b bytes.Buffer
			w, _ := flate.NewWriter(&b, flate.BestCompression)
			_, _ = w.Write(m)
			_ = w.Flush()
			z[i] = bytes.TrimSuffix(b.Bytes(), []byte(flushTail))
		}
		_, err := referenceInflate(t, py, bits, false, z)
		if err == nil || !strings.Contains(err.Error(), "invalid distance too far back") {
			t.Errorf("bits %d: a 32 KiB window stream passed the 2^%d reference: %v", bits, bits, err)
		}
	}
}
