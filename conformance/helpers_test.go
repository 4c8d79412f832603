package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/wsdhq/wsd/codec"
)

// Opcodes, short.
const (
	opCont   = codec.OpContinuation
	opText   = codec.OpText
	opBinary = codec.OpBinary
	opClose  = codec.OpClose
	opPing   = codec.OpPing
	opPong   = codec.OpPong
)

// noStatus stands for a close frame with an empty body.
const noStatus = codec.CloseNoStatus

// closeAfter is how long the server gets to close TCP after the closing handshake.
const closeAfter = 2 * time.Second

// want is one expected server event.
type want struct {
	op    codec.OpCode
	data  []byte   // data messages and pongs
	codes []uint16 // close: any of these (noStatus = empty body)
}

func text(s string) want          { return want{op: opText, data: []byte(s)} }
func textB(b []byte) want         { return want{op: opText, data: b} }
func bin(b []byte) want           { return want{op: opBinary, data: b} }
func pong(b []byte) want          { return want{op: opPong, data: b} }
func closed(codes ...uint16) want { return want{op: opClose, codes: codes} }

func (w want) String() string {
	if w.op == opClose {
		var s []string
		for _, c := range w.codes {
			if c == noStatus {
				s = append(s, "no body")
			} else {
				s = append(s, fmt.Sprint(c))
			}
		}
		return "close " + strings.Join(s, " or ")
	}
	return fmt.Sprintf("%s (%d bytes %s)", opName(w.op), len(w.data), preview(w.data))
}

func (w want) match(ev Event) bool {
	if ev.Op != w.op {
		return false
	}
	if w.op == opClose {
		for _, c := range w.codes {
			if ev.Code == c {
				return true
			}
		}
		return false
	}
	return bytes.Equal(ev.Payload, w.data)
}

// detail explains a payload mismatch between w and ev of the same opcode.
func (w want) detail(ev Event) string {
	if ev.Op != w.op || w.op == opClose {
		return ""
	}
	i := 0
	for i < len(w.data) && i < len(ev.Payload) && w.data[i] == ev.Payload[i] {
		i++
	}
	return fmt.Sprintf(" (payload differs: %d bytes vs %d wanted, first difference at offset %d)", len(ev.Payload), len(w.data), i)
}

// dial opens a client to d, failing t on error.
func dial(t testing.TB, d *daemon, o Options) *Client {
	t.Helper()
	addr := d.need(t)
	c, err := Dial(addr, o)
	if err != nil {
		d.checkAlive(t)
		t.Fatalf("dial %s (%s): %v", addr, d.name, err)
	}
	return c
}

// expect reads one event per want and fails t on any difference. A close
// event ends the exchange: the client answers it (unless it sent a close
// itself) and checks that the server closes TCP.
func expect(t testing.TB, c *Client, wants ...want) {
	t.Helper()
	for i, w := range wants {
		ev, err := c.Next()
		if err != nil {
			t.Fatalf("event %d/%d: want %s, got error: %v", i+1, len(wants), w, err)
		}
		if !w.match(ev) {
			t.Fatalf("event %d/%d: want %s, got %s%s%s", i+1, len(wants), w, ev, w.detail(ev), c.drain(3))
		}
		if ev.Op == opClose {
			if i != len(wants)-1 {
				t.Fatalf("test bug: close is not the last expectation")
			}
			finishClose(t, c, ev)
			return
		}
	}
}

// drain describes up to n further events, for error messages.
func (c *Client) drain(n int) string {
	old := c.Timeout
	c.Timeout = 300 * time.Millisecond
	defer func() { c.Timeout = old }()
	var s []string
	for range n {
		ev, err := c.Next()
		if err != nil {
			if isClosed(err) {
				s = append(s, "TCP closed")
			} else if !isTimeout(err) {
				s = append(s, err.Error())
			}
			break
		}
		s = append(s, ev.String())
		if ev.Op == opClose {
			break
		}
	}
	if len(s) == 0 {
		return ""
	}
	return "; then: " + strings.Join(s, ", ")
}

// finishClose completes a closing handshake the server's close frame ev
// started or answered, then checks that the server closes TCP.
func finishClose(t testing.TB, c *Client, ev Event) {
	t.Helper()
	if !c.SentClose() {
		var body []byte
		if ev.Code != noStatus {
			body = CloseBody(ev.Code, "")
		}
		c.Write(Frame(opClose, true, 0, body)) // the server may be gone already
	}
	expectTCPClosed(t, c, closeAfter)
}

// expectTCPClosed checks that the server closes the connection within limit
// and sends nothing more.
func expectTCPClosed(t testing.TB, c *Client, limit time.Duration) {
	t.Helper()
	old := c.Timeout
	c.Timeout = limit
	defer func() { c.Timeout = old }()
	start := time.Now()
	for {
		ev, err := c.Next()
		switch {
		case err == nil:
			t.Errorf("after the close frame the server sent %s", ev)
			if time.Since(start) < limit {
				continue
			}
		case isClosed(err):
		case isTimeout(err):
			t.Errorf("the server did not close the TCP connection within %v after the close frame", limit)
		default:
			t.Errorf("after the close frame: %v", err)
		}
		return
	}
}

// closeNormally runs a client-initiated closing handshake with 1000.
func closeNormally(t testing.TB, c *Client) {
	t.Helper()
	if err := c.Write(Frame(opClose, true, 0, CloseBody(1000, "bye"))); err != nil {
		t.Fatalf("writing close: %v", err)
	}
	expect(t, c, closed(1000))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// sendMode is how a case's bytes go on the wire.
type sendMode int

const (
	oneWrite sendMode = iota // everything in one write
	perFrame                 // one write per element, 10 ms apart (0.5 ms past 20 elements)
	perByte                  // one byte per write (Autobahn "octet-wise"); small random pieces past 2 KiB
)

func (m sendMode) String() string {
	return [...]string{"one_write", "per_frame", "per_byte"}[m]
}

var allModes = []sendMode{oneWrite, perFrame, perByte}

// wireCase sends some frames and expects some events back. Without a close
// among the wants, the case ends with a normal closing handshake.
type wireCase struct {
	name string
	send [][]byte
	want []want
}

// sender writes in the background so that reading and writing overlap, as
// they do on a real connection (and big echoes cannot deadlock).
type sender struct {
	done chan struct{}
	err  error
}

func sendAsync(c *Client, parts [][]byte, m sendMode) *sender {
	s := &sender{done: make(chan struct{})}
	go func() {
		defer close(s.done)
		s.err = writeParts(c, parts, m)
	}()
	return s
}

func writeParts(c *Client, parts [][]byte, m sendMode) error {
	switch m {
	case oneWrite:
		return c.Write(bytes.Join(parts, nil))
	case perFrame:
		pause := 10 * time.Millisecond
		if len(parts) > 20 {
			pause = 500 * time.Microsecond
		}
		for i, p := range parts {
			if i > 0 {
				time.Sleep(pause)
			}
			if err := c.Write(p); err != nil {
				return err
			}
		}
		return nil
	default:
		all := bytes.Join(parts, nil)
		switch {
		case len(all) <= 2048:
			return c.WriteChunks(all, func() int { return 1 }, 200*time.Microsecond)
		case len(all) <= 64<<10:
			return c.WriteChunks(all, func() int { return 1 + rand.IntN(64) }, 200*time.Microsecond)
		default:
			return c.WriteChunks(all, func() int { return 1 + rand.IntN(8192) }, 0)
		}
	}
}

// wait waits for the writes to end and returns their error.
func (s *sender) wait() error {
	select {
	case <-s.done:
		return s.err
	case <-time.After(60 * time.Second):
		return errors.New("writes did not finish in 60 s")
	}
}

// runCases runs every case in every mode as parallel subtests.
func runCases(t *testing.T, d *daemon, o Options, cases []wireCase, modes ...sendMode) {
	t.Helper()
	if len(modes) == 0 {
		modes = allModes
	}
	for _, tc := range cases {
		for _, m := range modes {
			name := tc.name
			if len(modes) > 1 {
				name += "/" + m.String()
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				runCase(t, d, o, tc, m)
			})
		}
	}
}

func runCase(t *testing.T, d *daemon, o Options, tc wireCase, m sendMode) {
	t.Helper()
	c := dial(t, d, o)
	if o.Extensions != "" && c.Deflate == nil {
		c.Close()
		t.Fatalf("offered %q, the server accepted no extension (response %q)", o.Extensions, c.Resp.Header)
	}
	s := sendAsync(c, tc.send, m)
	defer func() { c.Close(); s.wait() }()
	expect(t, c, tc.want...)
	endsWithClose := len(tc.want) > 0 && tc.want[len(tc.want)-1].op == opClose
	if err := s.wait(); err != nil && !endsWithClose {
		t.Fatalf("write: %v", err)
	}
	if !endsWithClose {
		closeNormally(t, c)
	}
}

// cat concatenates byte slices.
func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// fr builds a whole unfragmented frame.
func fr(op codec.OpCode, payload []byte) []byte { return Frame(op, true, 0, payload) }

// frs builds a whole frame from a string payload.
func frs(op codec.OpCode, s string) []byte { return Frame(op, true, 0, []byte(s)) }

// fragments splits payload into frames of at most size bytes (at least one frame).
func fragments(op codec.OpCode, payload []byte, size int) [][]byte {
	var out [][]byte
	for first := true; first || len(payload) > 0; first = false {
		k := min(size, len(payload))
		o := opCont
		if first {
			o = op
		}
		out = append(out, Frame(o, k == len(payload), 0, payload[:k]))
		payload = payload[k:]
	}
	return out
}

// seeded random source so that failures reproduce.
func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x5eed)) }

// textPayload is n bytes of valid UTF-8 mixing 1- to 4-byte code points.
func textPayload(n int) []byte {
	const pattern = "Hello, κόσμε! 日本語 ∑ €uro — 😀🎉 𝄞 ascii-tail 0123456789 "
	out := make([]byte, 0, n)
	for len(out)+len(pattern) <= n {
		out = append(out, pattern...)
	}
	rest := pattern[:n-len(out)]
	for len(rest) > 0 && !utf8.ValidString(rest) {
		rest = rest[:len(rest)-1]
	}
	out = append(out, rest...)
	for len(out) < n {
		out = append(out, 'x')
	}
	return out
}

// binPayload is n pseudo-random bytes.
func binPayload(n int, seed uint64) []byte {
	r := newRand(seed)
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
