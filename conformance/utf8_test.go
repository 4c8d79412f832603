package conformance

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"
)

// Autobahn 6.x: UTF-8 handling. The sequences follow Markus Kuhn's UTF-8
// decoder stress test, which Autobahn's 6.x cases are built from.
var validUTF8 = []struct {
	name string
	s    string
}{
	{"6.2 Hello-µ@ßöäüàá-UTF-8!!", "Hello-µ@ßöäüàá-UTF-8!!"},
	{"6.5 kosme", "κόσμε"},
	{"multilingual", "Ünïcödé – 日本語 – 한국어 – العربية – עברית – 𝄞 – Ελληνικά"},
	{"emoji", "😀🎉👩‍👩‍👧‍👦🇪🇺"},
	{"U+0000", "\x00"},
	{"first 2-byte U+0080", "\xc2\x80"},
	{"first 3-byte U+0800", "\xe0\xa0\x80"},
	{"first 4-byte U+10000", "\xf0\x90\x80\x80"},
	{"last 1-byte U+007F", "\x7f"},
	{"last 2-byte U+07FF", "\xdf\xbf"},
	{"last 3-byte U+FFFF", "\xef\xbf\xbf"},
	{"U+D7FF", "\xed\x9f\xbf"},
	{"U+E000", "\xee\x80\x80"},
	{"U+FFFD", "\xef\xbf\xbd"},
	{"last valid U+10FFFF", "\xf4\x8f\xbf\xbf"},
	{"noncharacters U+FFFE U+1FFFF U+10FFFE", "\xef\xbf\xbe\xf0\x9f\xbf\xbf\xf4\x8f\xbf\xbe"},
	{"3- and 4-byte mix", "€𐍈€𐍈ह€한𐍈"},
}

var invalidUTF8 = []struct {
	name string
	s    string
}{
	{"6.3 kosme with a surrogate inside", "κόσμε\xed\xa0\x80edited"},
	{"6.4 kosme then U+110000", "κόσμε\xf4\x90\x80\x80edited"},
	{"first 5-byte sequence", "\xf8\x88\x80\x80\x80"},
	{"first 6-byte sequence", "\xfc\x84\x80\x80\x80\x80"},
	{"last 5-byte sequence", "\xfb\xbf\xbf\xbf\xbf"},
	{"last 6-byte sequence", "\xfd\xbf\xbf\xbf\xbf\xbf"},
	{"U+110000", "\xf4\x90\x80\x80"},
	{"4-byte beyond U+10FFFF (f7 bf bf bf)", "\xf7\xbf\xbf\xbf"},
	{"lone continuation 0x80", "\x80"},
	{"lone continuation 0xbf", "\xbf"},
	{"2 continuations", "\x80\xbf"},
	{"3 continuations", "\x80\xbf\x80"},
	{"all 64 continuation bytes", allBytes(0x80, 0xbf, "")},
	{"lonely 2-byte starts c0..df", allBytes(0xc0, 0xdf, " ")},
	{"lonely 3-byte starts e0..ef", allBytes(0xe0, 0xef, " ")},
	{"lonely 4-byte starts f0..f7", allBytes(0xf0, 0xf7, " ")},
	{"lonely 5-byte starts f8..fb", allBytes(0xf8, 0xfb, " ")},
	{"lonely 6-byte starts fc fd", allBytes(0xfc, 0xfd, " ")},
	{"truncated U+0000 2-byte", "\xc0"},
	{"truncated 2-byte", "\xc2"},
	{"truncated 3-byte", "\xe0\xa0"},
	{"truncated 4-byte", "\xf0\x90\x80"},
	{"truncated last 2-byte", "\xdf"},
	{"truncated last 3-byte", "\xef\xbf"},
	{"truncated last 4-byte", "\xf4\x8f\xbf"},
	{"text truncated at the end", "κόσμε\xce"},
	{"concatenated truncated sequences", "\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80\xdf\xef\xbf\xf7\xbf\xbf"},
	{"impossible byte fe", "\xfe"},
	{"impossible byte ff", "\xff"},
	{"impossible bytes fe fe ff ff", "\xfe\xfe\xff\xff"},
	{"overlong / 2-byte", "\xc0\xaf"},
	{"overlong / 3-byte", "\xe0\x80\xaf"},
	{"overlong / 4-byte", "\xf0\x80\x80\xaf"},
	{"overlong / 5-byte", "\xf8\x80\x80\x80\xaf"},
	{"overlong / 6-byte", "\xfc\x80\x80\x80\x80\xaf"},
	{"maximum overlong 2-byte", "\xc1\xbf"},
	{"maximum overlong 3-byte", "\xe0\x9f\xbf"},
	{"maximum overlong 4-byte", "\xf0\x8f\xbf\xbf"},
	{"overlong NUL 2-byte", "\xc0\x80"},
	{"overlong NUL 3-byte", "\xe0\x80\x80"},
	{"overlong NUL 4-byte", "\xf0\x80\x80\x80"},
	{"surrogate U+D800", "\xed\xa0\x80"},
	{"surrogate U+DB7F", "\xed\xad\xbf"},
	{"surrogate U+DB80", "\xed\xae\x80"},
	{"surrogate U+DBFF", "\xed\xaf\xbf"},
	{"surrogate U+DC00", "\xed\xb0\x80"},
	{"surrogate U+DF80", "\xed\xbe\x80"},
	{"surrogate U+DFFF", "\xed\xbf\xbf"},
	{"surrogate pair U+D800 U+DC00", "\xed\xa0\x80\xed\xb0\x80"},
	{"surrogate pair U+DBFF U+DFFF", "\xed\xaf\xbf\xed\xbf\xbf"},
	{"valid text then an invalid byte", "Hello, world! \xff"},
}

func allBytes(from, to byte, sep string) string {
	var b []byte
	for c := int(from); c <= int(to); c++ {
		b = append(b, byte(c))
		b = append(b, sep...)
	}
	return string(b)
}

func TestUTF8Valid(t *testing.T) {
	var cases []wireCase
	for _, v := range validUTF8 {
		if !utf8.ValidString(v.s) {
			t.Fatalf("test bug: %q is not valid", v.s)
		}
		p := []byte(v.s)
		cases = append(cases,
			wireCase{v.name + "/one frame", [][]byte{fr(opText, p)}, []want{textB(p)}},
			wireCase{v.name + "/1-byte fragments", fragments(opText, p, 1), []want{textB(p)}},
		)
	}
	runCases(t, srvDefault, Options{}, cases)

	// Every split point, as two fragments, on one connection per text.
	for _, v := range validUTF8 {
		t.Run(v.name+"/every 2-fragment split", func(t *testing.T) {
			t.Parallel()
			c := dial(t, srvDefault, Options{})
			defer c.Close()
			p := []byte(v.s)
			for k := 1; k < len(p); k++ {
				if err := c.Write(cat(Frame(opText, false, 0, p[:k]), Frame(opCont, true, 0, p[k:]))); err != nil {
					t.Fatalf("split %d: %v", k, err)
				}
				expect(t, c, textB(p))
			}
			closeNormally(t, c)
		})
	}
}

func TestUTF8Invalid(t *testing.T) {
	var cases []wireCase
	for _, v := range invalidUTF8 {
		if utf8.ValidString(v.s) {
			t.Fatalf("test bug: %q is valid", v.s)
		}
		p := []byte(v.s)
		half := len(p) / 2
		cases = append(cases,
			wireCase{v.name + "/one frame", [][]byte{fr(opText, p)}, []want{closed(1007)}},
			wireCase{v.name + "/1-byte fragments", fragments(opText, p, 1), []want{closed(1007)}},
			wireCase{v.name + "/2 fragments", [][]byte{Frame(opText, false, 0, p[:half]), Frame(opCont, true, 0, p[half:])}, []want{closed(1007)}},
		)
	}
	// Invalid text after a good echo: the echo comes first, nothing after.
	cases = append(cases, wireCase{"valid echo, then invalid, then ping",
		[][]byte{frs(opText, "κόσμε"), fr(opText, []byte("\xed\xa0\x80")), fr(opPing, nil)},
		[]want{text("κόσμε"), closed(1007)}})
	// Binary messages are not UTF-8 checked.
	cases = append(cases, wireCase{"binary with invalid UTF-8 is echoed",
		[][]byte{fr(opBinary, []byte("\xed\xa0\x80\xff"))}, []want{bin([]byte("\xed\xa0\x80\xff"))}})
	runCases(t, srvDefault, Options{}, cases, oneWrite)
}

// Autobahn 6.4: the server fails a text message as soon as it sees a byte
// that cannot be valid, without waiting for the rest of the message.
func TestUTF8FailFast(t *testing.T) {
	// split cuts one frame in two TCP writes after k bytes.
	split := func(frame []byte, k int) ([]byte, []byte) { return frame[:k], frame[k:] }
	bad := []byte("κόσμε\xf4\x90\x80\x80")
	bigFirst, _ := split(Frame(opText, true, 0, append(bytes.Clone(bad), bytes.Repeat([]byte("a"), 64<<10-len(bad))...)), 14+len(bad))
	smallFirst, smallRest := split(Frame(opText, true, 0, append(bytes.Clone(bad), "edited"...)), 6+len(bad))
	cases := []struct {
		name   string
		first  []byte // sent, then the server must fail within 2 s
		rest   []byte // sent only if it did not; nil: never sent
		strict bool   // false: Autobahn NON-STRICT, failing after the rest is accepted
	}{
		{"6.4.1 invalid second fragment",
			cat(Frame(opText, false, 0, []byte("κόσμε")), Frame(opCont, false, 0, []byte("\xf4\x90\x80\x80"))),
			Frame(opCont, true, 0, []byte("edited")), true},
		{"6.4.2 code point split across fragments",
			cat(Frame(opText, false, 0, []byte("κόσμε\xf4")), Frame(opCont, false, 0, []byte("\x90"))),
			Frame(opCont, true, 0, []byte("\x80\x80edited")), true},
		{"first fragment already invalid",
			Frame(opText, false, 0, []byte("\xc0\xafinvalid from the start")),
			Frame(opCont, true, 0, []byte("rest")), true},
		{"first fragment invalid, continuation never sent",
			Frame(opText, false, 0, []byte("ok so far \xed\xa0\x80")), nil, true},
		{"invalid bytes early in a 64 KiB frame (TCP split, rest never sent)", bigFirst, nil, true},
		{"6.4.3 invalid bytes in a small frame (TCP split)", smallFirst, smallRest, false},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := dial(t, srvDefault, Options{})
			defer c.Close()
			if err := c.Write(tc.first); err != nil {
				t.Fatalf("write: %v", err)
			}
			c.Timeout = 2 * time.Second
			ev, err := c.Next()
			if err == nil {
				if !closed(1007).match(ev) {
					t.Fatalf("want close 1007, got %s%s", ev, c.drain(3))
				}
				finishClose(t, c, ev)
				return
			}
			if !isTimeout(err) {
				t.Fatalf("want close 1007, got error: %v", err)
			}
			// No verdict yet.
			if tc.rest == nil {
				t.Fatalf("no close within 2 s of the invalid bytes (the rest of the message is never sent): the server waits instead of failing fast")
			}
			if err := c.Write(tc.rest); err != nil {
				t.Fatalf("write rest: %v", err)
			}
			ev, err = c.Next()
			switch {
			case err != nil:
				t.Fatalf("no close within 2 s of the invalid bytes, and after the rest: %v", err)
			case !closed(1007).match(ev):
				t.Fatalf("no close within 2 s of the invalid bytes, and after the rest: %s%s", ev, c.drain(3))
			case tc.strict:
				t.Errorf("not fail-fast: close 1007 came only after the rest of the message was sent")
			default:
				t.Logf("NON-STRICT (as Autobahn grades it): close 1007 came only once the whole frame arrived")
			}
			finishClose(t, c, ev)
		})
	}
}
