package conformance

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// Autobahn 7.x: the closing handshake.
func TestClose(t *testing.T) {
	reason123 := strings.Repeat("r", 123)
	reason124 := strings.Repeat("r", 124)
	close1000 := fr(opClose, CloseBody(1000, ""))
	cases := []wireCase{
		{"7.1.1 echo then close", [][]byte{frs(opText, "Hello World!"), close1000}, []want{text("Hello World!"), closed(1000)}},
		{"7.1.2 close twice", [][]byte{close1000, close1000}, []want{closed(1000)}},
		{"7.1.3 ping after close is ignored", [][]byte{close1000, frs(opPing, "Hello World!")}, []want{closed(1000)}},
		{"7.1.4 text after close is ignored", [][]byte{close1000, frs(opText, "Hello World!")}, []want{closed(1000)}},
		{"7.1.5 close between fragments", [][]byte{
			Frame(opText, false, 0, []byte("fragment1")), close1000, Frame(opCont, true, 0, []byte("fragment2")),
		}, []want{closed(1000)}},
		{"7.1.6 big message, close, then ping", [][]byte{fr(opText, textPayload(256<<10)), close1000, frs(opPing, "Hello World!")},
			[]want{textB(textPayload(256 << 10)), closed(1000)}},
		{"7.3.1 close without body", [][]byte{fr(opClose, nil)}, []want{closed(noStatus, 1000)}},
		{"7.3.2 close with a 1-byte body", [][]byte{fr(opClose, []byte{0x03})}, []want{closed(1002)}},
		{"7.3.3 close 1000 without reason", [][]byte{close1000}, []want{closed(1000)}},
		{"7.3.4 close 1000 with a reason", [][]byte{fr(opClose, CloseBody(1000, "Hello World!"))}, []want{closed(1000)}},
		{"7.3.5 close 1000 with a 123-byte reason", [][]byte{fr(opClose, CloseBody(1000, reason123))}, []want{closed(1000)}},
		{"7.3.6 close 1000 with a 124-byte reason (payload 126)", [][]byte{fr(opClose, CloseBody(1000, reason124))}, []want{closed(1002)}},
		{"7.5.1 close reason with invalid UTF-8", [][]byte{fr(opClose, CloseBody(1000, "κόσμε\xed\xa0\x80edited"))}, []want{closed(1007)}},
		{"close reason truncated mid-code-point", [][]byte{fr(opClose, CloseBody(1000, "κόσμ\xce"))}, []want{closed(1007)}},
	}
	for _, code := range []uint16{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999} {
		cases = append(cases, wireCase{fmt.Sprintf("7.7 valid code %d is echoed", code),
			[][]byte{fr(opClose, CloseBody(code, "Hello"))}, []want{closed(code)}})
	}
	for _, code := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cases = append(cases, wireCase{fmt.Sprintf("7.9 invalid code %d", code),
			[][]byte{fr(opClose, CloseBody(code, ""))}, []want{closed(1002)}})
	}
	runCases(t, srvDefault, Options{}, cases, oneWrite, perByte)
}

// The server's reply to a close with a reason carries a valid body, and the
// TCP connection ends only after the close frame was delivered.
func TestCloseReplyBody(t *testing.T) {
	c := dial(t, srvDefault, Options{})
	defer c.Close()
	if err := c.Write(fr(opClose, CloseBody(1000, "Hello World!"))); err != nil {
		t.Fatal(err)
	}
	ev, err := c.Next()
	if err != nil {
		t.Fatalf("want close 1000, got error: %v", err)
	}
	if ev.Op != opClose || ev.Code != 1000 {
		t.Fatalf("want close 1000, got %s", ev)
	}
	if len(ev.Payload) > 125 || !bytes.Equal(ev.Payload[:2], []byte{0x03, 0xe8}) {
		t.Fatalf("close body % x", ev.Payload)
	}
	expectTCPClosed(t, c, closeAfter)
}
