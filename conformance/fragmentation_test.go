package conformance

import (
	"fmt"
	"slices"
	"testing"
)

// Autobahn 5.x: fragmentation, and 9.x/10.x-style fragmented big messages.
func TestFragmentation(t *testing.T) {
	kib := textPayload(1024)
	var many [][]byte
	var manyText []byte
	for i := range 100 {
		s := fmt.Sprintf("fragment %d;", i)
		manyText = append(manyText, s...)
		many = append(many, Frame(opCont, i == 99, 0, []byte(s)))
	}
	many[0][0] = many[0][0]&^0x0f | byte(opText)

	// 5.19/5.20: five fragments with pings in between.
	var withPings [][]byte
	var withPingsWant []want
	for i := range 5 {
		op := opCont
		if i == 0 {
			op = opText
		}
		withPings = append(withPings, Frame(op, i == 4, 0, fmt.Appendf(nil, "fragment%d", i+1)))
		if i < 4 {
			p := fmt.Appendf(nil, "pongme %d!", i+1)
			withPings = append(withPings, fr(opPing, p))
			withPingsWant = append(withPingsWant, pong(p))
		}
	}
	withPingsWant = append(withPingsWant, text("fragment1fragment2fragment3fragment4fragment5"))

	runCases(t, srvDefault, Options{}, []wireCase{
		{"5.1 fragmented ping", [][]byte{Frame(opPing, false, 0, []byte("fragment1")), Frame(opCont, true, 0, []byte("fragment2"))}, []want{closed(1002)}},
		{"5.2 fragmented pong", [][]byte{Frame(opPong, false, 0, []byte("fragment1")), Frame(opCont, true, 0, []byte("fragment2"))}, []want{closed(1002)}},
		{"fragmented close", [][]byte{Frame(opClose, false, 0, CloseBody(1000, "")), Frame(opCont, true, 0, []byte("x"))}, []want{closed(1002)}},
		{"5.3 text in 2 fragments", [][]byte{Frame(opText, false, 0, []byte("fragment1")), Frame(opCont, true, 0, []byte("fragment2"))}, []want{text("fragment1fragment2")}},
		{"binary in 2 fragments", [][]byte{Frame(opBinary, false, 0, []byte{1, 2}), Frame(opCont, true, 0, []byte{3})}, []want{bin([]byte{1, 2, 3})}},
		{"text in 3 fragments", [][]byte{Frame(opText, false, 0, []byte("a")), Frame(opCont, false, 0, []byte("b")), Frame(opCont, true, 0, []byte("c"))}, []want{text("abc")}},
		{"text in 100 fragments", many, []want{textB(manyText)}},
		{"empty fragments", [][]byte{Frame(opText, false, 0, nil), Frame(opCont, false, 0, nil), Frame(opCont, true, 0, nil)}, []want{text("")}},
		{"5.6 text fragments with a ping between", [][]byte{
			Frame(opText, false, 0, []byte("fragment1")), frs(opPing, "pongme!"), Frame(opCont, true, 0, []byte("fragment2")),
		}, []want{pong([]byte("pongme!")), text("fragment1fragment2")}},
		{"unsolicited pong between fragments", [][]byte{
			Frame(opBinary, false, 0, []byte{1}), fr(opPong, nil), Frame(opCont, true, 0, []byte{2}),
		}, []want{bin([]byte{1, 2})}},
		{"5.9 continuation (FIN) without a start", [][]byte{
			Frame(opCont, true, 0, []byte("non-continuation payload")), frs(opText, "Hello, world!"),
		}, []want{closed(1002)}},
		{"5.12 continuation (no FIN) without a start", [][]byte{
			Frame(opCont, false, 0, []byte("non-continuation payload")), frs(opText, "Hello, world!"),
		}, []want{closed(1002)}},
		{"5.15 fragments, then a continuation after FIN", [][]byte{
			Frame(opText, false, 0, []byte("fragment1")), Frame(opCont, true, 0, []byte("fragment2")),
			Frame(opCont, false, 0, []byte("fragment3")), Frame(opCont, true, 0, []byte("fragment4")),
		}, []want{text("fragment1fragment2"), closed(1002)}},
		{"5.18 text start then a new text", [][]byte{
			Frame(opText, false, 0, []byte("fragment1")), Frame(opText, true, 0, []byte("fragment2")),
		}, []want{closed(1002)}},
		{"binary start then a new text", [][]byte{
			Frame(opBinary, false, 0, []byte("fragment1")), Frame(opText, true, 0, []byte("fragment2")),
		}, []want{closed(1002)}},
		{"5.19 five fragments with pings between", withPings, withPingsWant},
		{"1 KiB text in 1-byte fragments", fragments(opText, kib, 1), []want{textB(kib)}},
	})

	// 9.x/10.1: big messages in many frames, one write each way.
	for _, size := range []int{64, 1300, 4096, 65536} {
		name := fmt.Sprintf("1 MiB binary in %d-byte frames", size)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := binPayload(1<<20, uint64(size))
			runCase(t, srvDefault, Options{}, wireCase{name, [][]byte{slices.Concat(fragments(opBinary, p, size)...)}, []want{bin(p)}}, oneWrite)
		})
	}
	t.Run("1 MiB text in 4099-byte frames, split mid-code-point", func(t *testing.T) {
		t.Parallel()
		p := textPayload(1 << 20)
		runCase(t, srvDefault, Options{}, wireCase{"", fragments(opText, p, 4099), []want{textB(p)}}, perByte)
	})
}
