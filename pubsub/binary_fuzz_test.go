package pubsub

import (
	"bytes"
	"testing"
)

// FuzzParseBinaryPush: any input parses or fails cleanly (no panic), and
// whatever parses encodes back to the same bytes.
func FuzzParseBinaryPush(f *testing.F) {
	f.Add([]byte("\x01\x03g:b\x00\x00\x00\x00\x00\x00\x00\x2a\x02e1\x00\xff"))
	f.Add([]byte("\x01\x01c\x00\x00\x00\x00\x00\x00\x00\x01\x00"))
	f.Add([]byte(`{"channel":"c"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseBinaryPush(b)
		if err != nil {
			return
		}
		if !p.Binary || p.Channel == "" {
			t.Fatalf("%q parsed as %+v", b, p)
		}
		if out := AppendBinaryPush(nil, &p); !bytes.Equal(out, b) {
			t.Fatalf("%q parsed as %+v, encodes back as %q", b, p, out)
		}
	})
}
