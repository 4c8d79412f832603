package codec

import (
	"testing"
	"unicode/utf8"
)

// Every sequence of up to three bytes, and every four-byte sequence with a
// lead byte in F0..F4, is judged exactly as the standard library judges it,
// whole and split at every point.
func TestUTF8MatchesStdlib(t *testing.T) {
	check := func(b []byte) {
		want := utf8.Valid(b)
		if got := ValidUTF8(b); got != want {
			t.Fatalf("ValidUTF8(% x) = %v, want %v", b, got, want)
		}
		for cut := 0; cut <= len(b); cut++ {
			var v utf8Validator
			ok := v.Write(b[:cut]) && v.Write(b[cut:]) && v.Done()
			if ok != want {
				t.Fatalf("split %d of % x = %v, want %v", cut, b, ok, want)
			}
		}
	}
	for a := 0; a < 256; a++ {
		check([]byte{byte(a)})
		for b := 0; b < 256; b++ {
			check([]byte{byte(a), byte(b)})
			if a >= 0xc0 && a < 0xf0 {
				for c := 0x70; c < 0xd0; c++ {
					check([]byte{byte(a), byte(b), byte(c)})
				}
			}
		}
	}
	for a := 0xf0; a <= 0xf5; a++ {
		for b := 0x70; b < 0xd0; b++ {
			for c := 0x70; c < 0xd0; c += 7 {
				check([]byte{byte(a), byte(b), byte(c), 0x80})
				check([]byte{byte(a), byte(b), byte(c), 0xbf})
				check([]byte{byte(a), byte(b), byte(c), 0xc0})
			}
		}
	}
}

// Fail fast: a prefix that can never become valid is rejected before the
// rest of the message arrives (Autobahn 6.4.x).
func TestUTF8FailFast(t *testing.T) {
	cases := [][]byte{
		{0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xf4, 0x90}, // > U+10FFFF
		{0xed, 0xa0}, // surrogate
		{0xc0},       // overlong lead
		{0xe0, 0x80}, // overlong
		{0xff},       // never valid
	}
	for _, c := range cases {
		var v utf8Validator
		if v.Write(c) {
			t.Errorf("% x: accepted as a valid prefix", c)
		}
	}
	var v utf8Validator
	if !v.Write([]byte{0xf0, 0x9f}) || v.Done() {
		t.Fatal("valid incomplete prefix misjudged")
	}
}

func FuzzUTF8(f *testing.F) {
	f.Add([]byte("hello κόσμε"), 3)
	f.Add([]byte{0xf4, 0x90, 0x80, 0x80}, 1)
	f.Fuzz(func(t *testing.T, b []byte, cut int) {
		if cut < 0 || cut > len(b) {
			cut = len(b) / 2
		}
		var v utf8Validator
		ok := v.Write(b[:cut]) && v.Write(b[cut:]) && v.Done()
		if ok != utf8.Valid(b) {
			t.Fatalf("% x split at %d: %v", b, cut, ok)
		}
	})
}

func BenchmarkValidUTF8ASCII1KiB(b *testing.B) {
	p := make([]byte, 1024)
	for i := range p {
		p[i] = 'a' + byte(i%26)
	}
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if !ValidUTF8(p) {
			b.Fatal("invalid")
		}
	}
}

// utf8Validator checks UTF-8 that arrives in pieces, the way the frame
// reader does across frames (a test harness around utf8Step). The zero value is ready.
// Not safe for concurrent use.
type utf8Validator struct{ state uint32 }

// Write feeds p and reports false as soon as the input so far cannot be the
// prefix of valid UTF-8.
func (v *utf8Validator) Write(p []byte) bool {
	v.state = utf8Step(v.state, p)
	return v.state != utf8Reject
}

// Done reports whether everything fed so far is complete, valid UTF-8.
func (v *utf8Validator) Done() bool { return v.state == utf8Accept }
