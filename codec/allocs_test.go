//go:build !race

// Allocation checks. Under -race sync.Pool drops items at random, so the
// counts would mean nothing: these tests do not exist there, and make test
// runs them in a separate pass without -race (make test-allocs).

package codec

import (
	"bytes"
	"testing"
)

func TestFlateAllocs(t *testing.T) {
	f := NewFlate(DeflateConfig{})
	msg := deflateJSON(1 << 10)
	c := f.Deflate(nil, msg, nil)
	dst := make([]byte, 0, 4096)
	if n := testing.AllocsPerRun(200, func() { dst = f.Deflate(dst[:0], msg, nil) }); n != 0 {
		t.Errorf("Deflate: %.1f allocs", n)
	}
	if n := testing.AllocsPerRun(200, func() { dst, _ = f.Inflate(dst[:0], c, 1<<20, nil) }); n != 0 {
		t.Errorf("Inflate: %.1f allocs", n)
	}
	ctx := f.NewContext(DeflateParams{})
	defer ctx.Release()
	if n := testing.AllocsPerRun(200, func() { dst = f.Deflate(dst[:0], msg, ctx) }); n != 0 {
		t.Errorf("Deflate with takeover: %.1f allocs", n)
	}
	// c stands alone, so it also inflates against any history.
	if n := testing.AllocsPerRun(200, func() { dst, _ = f.Inflate(dst[:0], c, 1<<20, ctx) }); n != 0 {
		t.Errorf("Inflate with takeover: %.1f allocs", n)
	}
}

func TestHandshakeAllocs(t *testing.T) {
	u := Upgrader{Protocols: []string{"chat"}, Deflate: DeflateConfig{Enabled: true}}
	in := []byte(chromeRequest)
	buf := make([]byte, 0, 512)
	allocs := testing.AllocsPerRun(100, func() {
		req, _, err := u.ReadRequest(in)
		if err != nil {
			t.Fatal(err)
		}
		a, err := u.Negotiate(req)
		if err != nil || !a.Deflate {
			t.Fatal(a, err)
		}
		buf = AppendAccept(buf[:0], req, a)
	})
	// Request, its string copy, Header, Protocols; negotiation's scratch.
	if allocs > 8 {
		t.Errorf("%.0f allocations per handshake", allocs)
	}
	if !bytes.HasPrefix(buf, []byte("HTTP/1.1 101 ")) {
		t.Errorf("%q", buf)
	}
}
