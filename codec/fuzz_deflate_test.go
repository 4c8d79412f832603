package codec

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// FuzzInflate feeds arbitrary bytes as a compressed message: Inflate must
// never panic nor produce more than max bytes, and whatever Deflate made
// must inflate back to the original.
func FuzzInflate(f *testing.F) {
	fl := NewFlate(DeflateConfig{Enabled: true})
	f.Add([]byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, []byte("Hello"))
	f.Add([]byte{0x00, 0x00, 0xff, 0xff}, []byte{})
	f.Add(fl.Deflate(nil, bytes.Repeat([]byte("a"), 5000), nil), bytes.Repeat([]byte("ab"), 300))
	f.Fuzz(func(t *testing.T, compressed, plain []byte) {
		const max = 4096
		out, err := fl.Inflate(nil, compressed, max, nil)
		if err == nil && len(out) > max {
			t.Fatalf("inflated %d bytes past max %d", len(out), max)
		}
		if err != nil && err != ErrMessageTooBig && err != ErrCorruptCompression {
			t.Fatalf("unexpected error type %T %v", err, err)
		}
		z := fl.Deflate(nil, plain, nil)
		back, err := fl.Inflate(nil, z, len(plain)+1, nil)
		if err != nil || !bytes.Equal(back, plain) {
			t.Fatalf("round trip of %d bytes: %v", len(plain), err)
		}
	})
}

// FuzzParseClose: a close payload is either rejected or yields a code that
// may be on the wire and a UTF-8 reason.
func FuzzParseClose(f *testing.F) {
	f.Add([]byte{0x03, 0xe8, 'b', 'y', 'e'})
	f.Add([]byte{0x03})
	f.Add([]byte{0x03, 0xed})
	f.Fuzz(func(t *testing.T, p []byte) {
		code, reason, err := ParseClose(p)
		if err != nil {
			return
		}
		if len(p) == 0 {
			if code != CloseNoStatus {
				t.Fatalf("empty close gave %d", code)
			}
			return
		}
		if !ValidCloseCode(code) || !utf8.Valid(reason) {
			t.Fatalf("accepted code %d reason %q", code, reason)
		}
	})
}
