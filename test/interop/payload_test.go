package interop

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
)

const (
	// bigSize is the "1 MiB message" every client sends (default
	// --max-message is 16 MiB).
	bigSize = 1 << 20
	// ioTimeout bounds one echo round trip.
	ioTimeout = 15 // seconds
)

// textMsg has 2-, 3- and 4-byte UTF-8 sequences.
const textMsg = "hello, wsd ✓ — ünïcödé 😀"

// binaryMsg holds every byte value, so it is not valid UTF-8.
func binaryMsg() []byte {
	b := make([]byte, 512)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// randomBytes returns n reproducible, incompressible bytes.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// compressibleText returns about n bytes of repetitive JSON-ish text, the
// kind of traffic permessage-deflate is for.
func compressibleText(n int) string {
	var sb strings.Builder
	for i := 0; sb.Len() < n; i++ {
		fmt.Fprintf(&sb, `{"channel":"prices","offset":%d,"data":{"sym":"WSD","bid":%d.25,"ask":%d.75}}`+"\n", i, 100+i%7, 101+i%7)
	}
	return sb.String()
}

// multibyteText returns about n bytes of text made mostly of multi-byte
// runes, so that splitting it at arbitrary byte offsets cuts runes in half.
func multibyteText(n int) string {
	const unit = "wsd→ü😀€ "
	return strings.Repeat(unit, n/len(unit)+1)
}

// splitBytes cuts b into parts of the given sizes (the rest goes in a last
// part). Offsets are in bytes, so UTF-8 sequences may be split across parts
// on purpose.
func splitBytes(b []byte, sizes ...int) [][]byte {
	var parts [][]byte
	for _, n := range sizes {
		if n > len(b) {
			n = len(b)
		}
		parts = append(parts, b[:n])
		b = b[n:]
	}
	if len(b) > 0 {
		parts = append(parts, b)
	}
	return parts
}

// splitsRune reports whether some part boundary falls inside a UTF-8
// sequence: the fragmented-text cases rely on that.
func splitsRune(parts [][]byte) bool {
	for _, p := range parts[1:] {
		if len(p) > 0 && !utf8.RuneStart(p[0]) {
			return true
		}
	}
	return false
}

// sameMessage fails t if got is not want, without dumping megabytes.
func sameMessage(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: echo differs: got %d bytes, want %d; first difference at byte %d (got %q, want %q)",
		what, len(got), len(want), i, snippet(got, i), snippet(want, i))
}

func snippet(b []byte, i int) []byte {
	end := i + 16
	if end > len(b) {
		end = len(b)
	}
	if i > len(b) {
		i = len(b)
	}
	return b[i:end]
}
