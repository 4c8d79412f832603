package conformance

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/wsdhq/wsd/codec"
)

// Autobahn 2.x: pings and pongs.
func TestPingPong(t *testing.T) {
	p125 := bytes.Repeat([]byte{0xfe}, 125)
	p126 := bytes.Repeat([]byte{0xfe}, 126)
	bin := []byte{0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff}
	var tenPings [][]byte
	var tenPongs []want
	for i := range 10 {
		p := fmt.Appendf(nil, "ping-%d", i)
		tenPings = append(tenPings, fr(opPing, p))
		tenPongs = append(tenPongs, pong(p))
	}
	runCases(t, srvDefault, Options{}, []wireCase{
		{"2.1 ping without payload", [][]byte{fr(opPing, nil)}, []want{pong([]byte{})}},
		{"2.2 ping with text payload", [][]byte{frs(opPing, "Hello, world!")}, []want{pong([]byte("Hello, world!"))}},
		{"2.3 ping with binary payload", [][]byte{fr(opPing, bin)}, []want{pong(bin)}},
		{"2.4 ping with 125-byte payload", [][]byte{fr(opPing, p125)}, []want{pong(p125)}},
		{"2.5 ping with 126-byte payload", [][]byte{fr(opPing, p126), frs(opText, "not echoed")}, []want{closed(1002)}},
		{"2.7 unsolicited pong without payload", [][]byte{fr(opPong, nil), frs(opText, "after")}, []want{text("after")}},
		{"2.8 unsolicited pong with payload", [][]byte{frs(opPong, "unsolicited"), frs(opText, "after")}, []want{text("after")}},
		{"2.9 unsolicited pong then ping", [][]byte{frs(opPong, "unsolicited"), frs(opPing, "solicited")}, []want{pong([]byte("solicited"))}},
		{"2.10 ten pings pipelined", tenPings, tenPongs},
		{"fragmented ping", [][]byte{Frame(opPing, false, 0, []byte("frag")), Frame(opCont, true, 0, []byte("ment"))}, []want{closed(1002)}},
		{"fragmented pong", [][]byte{Frame(opPong, false, 0, []byte("frag")), Frame(opCont, true, 0, []byte("ment"))}, []want{closed(1002)}},
		{"ping between fragments", [][]byte{
			Frame(opText, false, 0, []byte("frag1 ")), frs(opPing, "in between"), Frame(opCont, true, 0, []byte("frag2")),
		}, []want{pong([]byte("in between")), text("frag1 frag2")}},
	})
}

// Every ping payload length 0..125 on one connection.
func TestPingEverySize(t *testing.T) {
	c := dial(t, srvDefault, Options{})
	defer c.Close()
	for n := 0; n <= 125; n++ {
		p := binPayload(n, uint64(n))
		if err := c.Write(fr(opPing, p)); err != nil {
			t.Fatalf("ping %d: %v", n, err)
		}
		expect(t, c, pong(p))
	}
	closeNormally(t, c)
}

// Autobahn 3.x: reserved bits without a negotiated extension.
func TestReservedBits(t *testing.T) {
	hello := frs(opText, "Hello, world!")
	runCases(t, srvDefault, Options{}, []wireCase{
		{"3.1 RSV3 on text", [][]byte{Frame(opText, true, 1, []byte("Hello, world!"))}, []want{closed(1002)}},
		{"3.2 RSV2 on text after a valid echo", [][]byte{hello, Frame(opText, true, 2, []byte("Hello, world!")), fr(opPing, nil)},
			[]want{text("Hello, world!"), closed(1002)}},
		{"3.3 RSV2+RSV3 on text after a valid echo", [][]byte{hello, Frame(opText, true, 3, []byte("Hello, world!")), fr(opPing, nil)},
			[]want{text("Hello, world!"), closed(1002)}},
		{"3.4 RSV1 on text", [][]byte{hello, Frame(opText, true, 4, []byte("Hello, world!")), fr(opPing, nil)},
			[]want{text("Hello, world!"), closed(1002)}},
		{"3.5 RSV1+RSV3 on binary", [][]byte{Frame(opBinary, true, 5, []byte{0, 1, 2})}, []want{closed(1002)}},
		{"3.6 RSV1+RSV2 on ping", [][]byte{Frame(opPing, true, 6, []byte("ping"))}, []want{closed(1002)}},
		{"3.7 all RSV bits on close", [][]byte{Frame(opClose, true, 7, CloseBody(1000, ""))}, []want{closed(1002)}},
		{"RSV2 on a continuation", [][]byte{Frame(opText, false, 0, []byte("a")), Frame(opCont, true, 2, []byte("b"))}, []want{closed(1002)}},
	})
}

// Autobahn 4.x: reserved opcodes.
func TestReservedOpcodes(t *testing.T) {
	var cases []wireCase
	for _, op := range []codec.OpCode{3, 4, 5, 6, 7, 11, 12, 13, 14, 15} {
		cases = append(cases,
			wireCase{fmt.Sprintf("opcode %d", op), [][]byte{fr(op, nil)}, []want{closed(1002)}},
			wireCase{fmt.Sprintf("opcode %d with payload after a valid echo", op),
				[][]byte{frs(opText, "Hello"), frs(op, "reserved"), fr(opPing, nil)},
				[]want{text("Hello"), closed(1002)}},
		)
	}
	runCases(t, srvDefault, Options{}, cases, oneWrite, perFrame)
}
