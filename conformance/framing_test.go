package conformance

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
)

// Autobahn 1.x (text and binary echo of every length class) and 9.x-style
// big messages, including exactly the default 16 MiB limit.
var framingSizes = []int{0, 1, 125, 126, 127, 128, 65535, 65536, 65537, 1 << 20, maxDefault}

func TestFraming(t *testing.T) {
	for _, op := range []codec.OpCode{opText, opBinary} {
		for _, n := range framingSizes {
			for _, split := range []string{"one_write", "chunked"} {
				name := fmt.Sprintf("%s/%d/%s", opName(op), n, split)
				big := n >= 1<<20
				t.Run(name, func(t *testing.T) {
					if !big {
						t.Parallel()
					}
					payload := binPayload(n, uint64(n))
					if op == opText {
						payload = textPayload(n)
					}
					echoMessage(t, srvDefault, op, payload, split == "chunked")
				})
			}
		}
	}
}

// echoMessage sends one frame holding payload and expects it echoed.
// Chunked writes go one byte at a time for small frames and in random
// pieces for big ones.
func echoMessage(t *testing.T, d *daemon, op codec.OpCode, payload []byte, chunked bool) {
	t.Helper()
	c := dial(t, d, Options{})
	defer c.Close()
	if len(payload) >= 1<<20 {
		c.Timeout = 30 * time.Second
	}
	frame := Frame(op, true, 0, payload)
	done := make(chan error, 1)
	go func() {
		switch {
		case !chunked:
			done <- c.Write(frame)
		case len(frame) <= 256:
			done <- c.WriteChunks(frame, func() int { return 1 }, 200*time.Microsecond)
		case len(frame) <= 1<<17:
			done <- c.WriteChunks(frame, func() int { return 1 + rand.IntN(4096) }, 100*time.Microsecond)
		default:
			done <- c.WriteChunks(frame, func() int { return 1 + rand.IntN(64<<10) }, 0)
		}
	}()
	expect(t, c, want{op: op, data: payload})
	if err := <-done; err != nil {
		t.Fatalf("write: %v", err)
	}
	closeNormally(t, c)
}

// Framing violations Autobahn cannot send (its client always masks), plus
// length encodings at the edges.
func TestFramingViolations(t *testing.T) {
	unmasked := codec.AppendFrame(nil, opText, true, []byte("unmasked"))
	runCases(t, srvDefault, Options{}, []wireCase{
		{"unmasked text", [][]byte{unmasked}, []want{closed(1002)}},
		{"unmasked after echo", [][]byte{frs(opText, "hello"), unmasked, fr(opPing, nil)}, []want{text("hello"), closed(1002)}},
		{"unmasked ping", [][]byte{codec.AppendFrame(nil, opPing, true, nil)}, []want{closed(1002)}},
		{"64-bit length with the top bit set", [][]byte{{0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}}, []want{closed(1002, 1009)}},
	}, oneWrite, perByte)
}
