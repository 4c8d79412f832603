package server

// The outbound path as /ws uses it: prepared pushes and replies on one conn,
// the slow-consumer policies, context takeover and Prepare's ownership of
// its payload. Every message carries its source and sequence number and a
// body derived from both, and the client checks every byte with its own
// inflater (compress/flate, not the codec under test).

import (
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

const offerDeflate = "Sec-WebSocket-Extensions: permessage-deflate"

// outHeaderLen is the "S000000:" prefix of every test message.
const outHeaderLen = 8

// outMsg is message seq of source src, size bytes of text: a parseable
// header and a body derived from both, so a lost, reordered or mangled
// byte shows.
func outMsg(src byte, seq, size int) []byte {
	b := fmt.Appendf(make([]byte, 0, size), "%c%06d:", src, seq)
	for j := len(b); j < size; j++ {
		b = append(b, 'a'+byte((seq*7+j*3+int(src))%26))
	}
	return b
}

// noisyMsg is like outMsg but binary: random bytes that do not compress on
// their own, then a block shared by every message, which a compressor with
// context takeover encodes as a reference into the previous message. A
// client whose history differs from the server's decodes it to garbage.
func noisyMsg(src byte, seq int) []byte {
	b := fmt.Appendf(make([]byte, 0, 10<<10), "%c%06d:", src, seq)
	r := rand.New(rand.NewPCG(uint64(seq), uint64(src)))
	for range 8 << 10 {
		b = append(b, byte(r.Uint32()))
	}
	return append(b, sharedBlock...)
}

var sharedBlock = func() []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, 1<<10)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

func parseOutHeader(p []byte) (src byte, seq int, ok bool) {
	if len(p) < outHeaderLen || p[outHeaderLen-1] != ':' {
		return 0, 0, false
	}
	n, err := strconv.Atoi(string(p[1 : outHeaderLen-1]))
	return p[0], n, err == nil
}

var syncTail = []byte{0, 0, 0xff, 0xff}

// closeFrame is what msgReader.next returns when a close frame arrives.
type closeFrame struct {
	code   uint16
	reason string
}

func (c *closeFrame) Error() string { return fmt.Sprintf("close frame %d %q", c.code, c.reason) }

// msgReader reads and inflates data messages the way an RFC 7692 client
// does. With context takeover one flate reader is reset for each message
// with the last 32 KiB it produced: that window is the whole state a
// decompressor carries across sync-flushed messages.
type msgReader struct {
	c        *wstest.Client
	takeover bool
	fr       io.ReadCloser
	window   []byte
}

type inMsg struct {
	op         codec.OpCode
	data       []byte
	wire       int // payload bytes on the wire
	compressed bool
}

func newMsgReader(c *wstest.Client) *msgReader {
	resp := strings.ToLower(c.Response)
	return &msgReader{c: c,
		takeover: strings.Contains(resp, "permessage-deflate") && !strings.Contains(resp, "server_no_context_takeover")}
}

// next returns the next data message, inflated, or a *closeFrame error.
func (r *msgReader) next() (inMsg, error) {
	f, err := r.c.ReadData()
	if err != nil {
		return inMsg{}, err
	}
	if f.Op == codec.OpClose {
		code, reason, err := codec.ParseClose(f.Payload)
		if err != nil {
			return inMsg{}, err
		}
		return inMsg{}, &closeFrame{code, string(reason)}
	}
	m := inMsg{op: f.Op, data: f.Payload, wire: len(f.Payload), compressed: f.Compressed}
	if f.Compressed {
		m.data, err = r.inflate(f.Payload)
	}
	return m, err
}

func (r *msgReader) inflate(p []byte) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(p), bytes.NewReader(syncTail))
	var dict []byte
	if r.takeover {
		dict = r.window
	}
	if r.fr == nil {
		r.fr = flate.NewReaderDict(src, dict)
	} else if err := r.fr.(flate.Resetter).Reset(src, dict); err != nil {
		return nil, err
	}
	out, err := io.ReadAll(r.fr)
	// A sync-flushed message has no final block: the reader runs out of
	// input right after the empty stored block.
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, fmt.Errorf("inflate: %w", err)
	}
	if r.takeover {
		r.window = append(r.window, out...)
		if over := len(r.window) - 32<<10; over > 0 {
			r.window = append(r.window[:0:0], r.window[over:]...)
		}
	}
	return out, nil
}

func dialOut(t *testing.T, addr, path string, headers ...string) (*wstest.Client, *msgReader) {
	t.Helper()
	c, err := wstest.Dial(addr, path, headers...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, newMsgReader(c)
}

// interleave is what a /ws conn sees: publications pushed with
// SendPrepared and replies sent with Send, in one goroutine, with sizes
// that make the outbound batch change size class.
func interleave[T any](srv *Server[T], c *Conn[T], src byte, n int) error {
	for i := range n {
		p := outMsg(src, i, interleaveSize(i))
		var err error
		if i%3 != 1 {
			err = c.SendPrepared(srv.Prepare(Text, p))
		} else {
			err = c.Send(Text, p)
		}
		if err != nil {
			return fmt.Errorf("%c message %d: %w", src, i, err)
		}
	}
	return nil
}

var interleaveSizes = []int{600, 5 << 10, 20, 5<<10 + 3, 600, 100, 20, 3000}

func interleaveSize(i int) int { return interleaveSizes[i%len(interleaveSizes)] }

// checkSeq verifies m is the next message of its source, byte for byte.
func checkSeq(m inMsg, next map[byte]int, size func(int) int) error {
	src, seq, ok := parseOutHeader(m.data)
	if !ok {
		return fmt.Errorf("unparseable message of %d bytes: %.40q", len(m.data), m.data)
	}
	if seq != next[src] {
		return fmt.Errorf("source %c: got message %d, want %d (the ones between were lost)", src, seq, next[src])
	}
	if want := outMsg(src, seq, size(seq)); !bytes.Equal(m.data, want) {
		return fmt.Errorf("source %c message %d: %d bytes differ from the %d sent", src, seq, len(m.data), len(want))
	}
	next[src]++
	return nil
}

// A prepared push followed by a reply before the loop flushed: the reply
// grows the outbound batch and the push must survive it.
func TestSendAfterSendPreparedKeepsBoth(t *testing.T) {
	srv := New[struct{}](Options{})
	srv.Handle("/ws", Funcs[struct{}]{Message: func(c *Conn[struct{}], m Message) {
		_ = c.SendPrepared(srv.Prepare(Text, outMsg('P', 0, 20)))
		_ = c.Send(Text, outMsg('R', 0, 600))
	}}, Inline())
	addr := start(t, srv)
	c, r := dialOut(t, addr, "/ws")
	if err := c.WriteMessage(codec.OpText, []byte("go")); err != nil {
		t.Fatal(err)
	}
	for _, want := range [][]byte{outMsg('P', 0, 20), outMsg('R', 0, 600)} {
		m, err := r.next()
		if err != nil || !bytes.Equal(m.data, want) {
			t.Fatalf("got %.20q (%d bytes, err %v), want %.20q (%d bytes)", m.data, len(m.data), err, want, len(want))
		}
	}
}

// Many pushes and replies interleaved on one conn, from the handler and
// from another goroutine at once: every message arrives, intact, in the
// order its goroutine sent it.
func TestPushesAndRepliesInterleaved(t *testing.T) {
	cases := []struct {
		name   string
		opts   Options
		hdr    []string
		inline bool
	}{
		{"plain/inline", Options{}, nil, true},
		{"plain/worker", Options{}, nil, false},
		{"deflate/inline", Options{Compression: true}, []string{offerDeflate}, true},
		{"deflate/worker", Options{Compression: true}, []string{offerDeflate}, false},
		{"takeover/worker", Options{Compression: true, ContextTakeover: true}, []string{offerDeflate}, false},
	}
	const n = 300 // messages per goroutine
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := New[struct{}](tc.opts)
			errs := make(chan error, 2)
			var wg sync.WaitGroup
			t.Cleanup(wg.Wait)
			h := Funcs[struct{}]{Message: func(c *Conn[struct{}], m Message) {
				wg.Add(1)
				go func() { defer wg.Done(); errs <- interleave(srv, c, 'G', n) }()
				errs <- interleave(srv, c, 'H', n)
			}}
			var ro []RouteOption
			if tc.inline {
				ro = append(ro, Inline())
			}
			srv.Handle("/ws", h, ro...)
			addr := start(t, srv)
			c, r := dialOut(t, addr, "/ws", tc.hdr...)
			if tc.hdr != nil && !strings.Contains(c.Response, "permessage-deflate") {
				t.Fatal("deflate not negotiated")
			}
			if err := c.WriteMessage(codec.OpText, []byte("go")); err != nil {
				t.Fatal(err)
			}
			next := map[byte]int{}
			compressed := 0
			for i := range 2 * n {
				m, err := r.next()
				if err != nil {
					t.Fatalf("after %d messages (%v): %v", i, next, err)
				}
				if m.compressed {
					compressed++
				}
				if err := checkSeq(m, next, interleaveSize); err != nil {
					t.Fatalf("message %d on the wire: %v", i, err)
				}
			}
			for range 2 {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			if tc.hdr != nil && compressed == 0 {
				t.Fatal("no message was compressed")
			}
		})
	}
}

// slowFeed is a server whose handler, on the client's first message,
// floods the conn from a goroutine until Send has refused maxDrops
// messages (or a bound is hit), reports which were accepted, then sends
// one last message when told to.
type slowFeed struct {
	accepted chan []bool // index: sequence number; false: Send refused it
	final    chan error  // the last Send's result
	closed   chan *CloseError
	goOn     chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
}

const (
	slowMaxDrops = 20
	slowMaxMsgs  = 4000
	finalSeq     = 999999
)

func startSlowFeed(t *testing.T, opts Options, msg func(seq int) []byte) (*slowFeed, string) {
	f := &slowFeed{accepted: make(chan []bool, 1), final: make(chan error, 1),
		closed: make(chan *CloseError, 1), goOn: make(chan struct{}), done: make(chan struct{})}
	srv := New[struct{}](opts)
	srv.Handle("/feed", Funcs[struct{}]{
		Message: func(c *Conn[struct{}], _ Message) {
			f.wg.Add(1)
			go f.flood(t, c, msg)
		},
		Closed: func(_ *Conn[struct{}], err *CloseError) { f.closed <- err },
	})
	addr := start(t, srv)
	t.Cleanup(func() { close(f.done); f.wg.Wait() })
	return f, addr
}

func (f *slowFeed) flood(t *testing.T, c *Conn[struct{}], msg func(int) []byte) {
	defer f.wg.Done()
	var acc []bool
	drops := 0
	for i := 0; i < slowMaxMsgs && drops < slowMaxDrops; i++ {
		err := c.Send(Binary, msg(i))
		switch {
		case err == nil:
			acc = append(acc, true)
		case errors.Is(err, ErrSlowConsumer):
			acc = append(acc, false)
			drops++
		default:
			t.Errorf("Send %d: %v", i, err)
			close(f.accepted)
			return
		}
	}
	f.accepted <- acc
	select {
	case <-f.goOn:
		f.final <- c.Send(Binary, msg(finalSeq))
	case <-f.done:
	}
}

// readAccepted reads until the last accepted message and checks that
// exactly the accepted ones arrive, intact and in order.
func readAccepted(t *testing.T, r *msgReader, acc []bool, msg func(int) []byte) {
	t.Helper()
	last := -1
	for i, ok := range acc {
		if ok {
			last = i
		}
	}
	got := 0
	for want := 0; want <= last; want++ {
		if !acc[want] {
			continue
		}
		m, err := r.next()
		if err != nil {
			t.Fatalf("waiting for accepted message %d (after %d received): %v", want, got, err)
		}
		_, seq, ok := parseOutHeader(m.data)
		if !ok || seq >= len(acc) || !bytes.Equal(m.data, msg(seq)) {
			t.Fatalf("message received after %d intact ones (waiting for %d) inflates to garbage: %d bytes %.16q",
				got, want, len(m.data), m.data)
		}
		if seq != want {
			t.Fatalf("got message %d, want %d: an accepted message was lost or a refused one sent", seq, want)
		}
		got++
	}
}

func expectDrops(t *testing.T, f *slowFeed) []bool {
	t.Helper()
	var acc []bool
	select {
	case acc = <-f.accepted:
	case <-time.After(30 * time.Second):
		t.Fatal("flood did not finish")
	}
	drops := 0
	for _, ok := range acc {
		if !ok {
			drops++
		}
	}
	if drops == 0 {
		t.Fatalf("%d messages to a reader that does not read, and Send never returned ErrSlowConsumer", len(acc))
	}
	return acc
}

// shrinkReadBuffer makes the client's kernel buffer small, so that the
// server's queue fills after a few hundred KiB rather than megabytes.
func shrinkReadBuffer(t *testing.T, c *wstest.Client) {
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		if err := tc.SetReadBuffer(32 << 10); err != nil {
			t.Fatal(err)
		}
	}
}

// finishSlowFeed has the server send once more to the drained conn: it
// must still be open and the message must arrive intact.
func finishSlowFeed(t *testing.T, f *slowFeed, r *msgReader, msg func(int) []byte) {
	t.Helper()
	close(f.goOn)
	if err := <-f.final; err != nil {
		t.Fatalf("Send after the reader caught up: %v", err)
	}
	m, err := r.next()
	if err != nil || !bytes.Equal(m.data, msg(finalSeq)) {
		t.Fatalf("last message: %d bytes %.16q, err %v", len(m.data), m.data, err)
	}
	select {
	case ce := <-f.closed:
		t.Fatalf("DropSlow closed the conn: %v", ce)
	default:
	}
}

// DropSlow: a reader that stops reading loses messages, but Send says
// which (ErrSlowConsumer), every accepted one arrives intact and in order
// once it reads again, and the conn stays open.
func TestDropSlowLosesMessagesKeepsConn(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			// Incompressible, so the compressed variant fills the queue too.
			msg := func(seq int) []byte { return noisyMsg('F', seq) }
			opts := Options{MaxOutboundBytes: 64 << 10, SlowConsumer: DropSlow, Compression: deflate}
			f, addr := startSlowFeed(t, opts, msg)
			var hdr []string
			if deflate {
				hdr = append(hdr, offerDeflate)
			}
			c, r := dialOut(t, addr, "/feed", hdr...)
			shrinkReadBuffer(t, c)
			if err := c.WriteMessage(codec.OpText, []byte("go")); err != nil {
				t.Fatal(err)
			}
			acc := expectDrops(t, f)
			readAccepted(t, r, acc, msg)
			finishSlowFeed(t, f, r, msg)
		})
	}
}

// DropSlow with context takeover: what the server's compressor saw must be
// exactly what the client inflates, so every delivered message inflates
// to what was sent, drops or not.
func TestDropSlowWithContextTakeover(t *testing.T) {
	msg := func(seq int) []byte { return noisyMsg('T', seq) }
	opts := Options{MaxOutboundBytes: 64 << 10, SlowConsumer: DropSlow, Compression: true, ContextTakeover: true}
	f, addr := startSlowFeed(t, opts, msg)
	c, r := dialOut(t, addr, "/feed", offerDeflate)
	if !r.takeover {
		t.Fatalf("context takeover not negotiated: %q", c.Response)
	}
	shrinkReadBuffer(t, c)
	if err := c.WriteMessage(codec.OpText, []byte("go")); err != nil {
		t.Fatal(err)
	}
	acc := expectDrops(t, f)
	readAccepted(t, r, acc, msg)
	finishSlowFeed(t, f, r, msg)
}

// Server-side context takeover works: a message repeated compresses to a
// fraction of its first copy (a reference into the previous one), and both
// round-trip through an RFC 7692 inflater. Without takeover the repeat
// costs as much as the first: the ratio is takeover's doing.
func TestContextTakeoverCompressesAcrossMessages(t *testing.T) {
	for _, takeover := range []bool{true, false} {
		t.Run(fmt.Sprintf("takeover=%v", takeover), func(t *testing.T) {
			body := noisyMsg('C', 1)[:4<<10] // random: poor on its own
			srv := New[struct{}](Options{Compression: true, ContextTakeover: takeover})
			srv.Handle("/ws", Funcs[struct{}]{Message: func(c *Conn[struct{}], _ Message) {
				_ = c.Send(Binary, body)
				_ = c.Send(Binary, body)
				p := srv.Prepare(Binary, body)
				_ = c.SendPrepared(p)
				_ = c.SendPrepared(p)
			}})
			addr := start(t, srv)
			c, r := dialOut(t, addr, "/ws", offerDeflate)
			if r.takeover != takeover {
				t.Fatalf("takeover negotiated: %v, want %v (%q)", r.takeover, takeover, c.Response)
			}
			if err := c.WriteMessage(codec.OpText, []byte("go")); err != nil {
				t.Fatal(err)
			}
			var wire [4]int
			for i := range wire {
				m, err := r.next()
				if err != nil || !m.compressed || !bytes.Equal(m.data, body) {
					t.Fatalf("message %d: compressed %v, %d bytes, err %v", i, m.compressed, len(m.data), err)
				}
				wire[i] = m.wire
			}
			t.Logf("wire sizes of a %d-byte message sent 4 times: %v", len(body), wire)
			for i := 1; i < len(wire); i++ {
				small := wire[i] < wire[0]/10
				if small != takeover {
					t.Fatalf("copy %d is %d bytes on the wire against %d for the first (takeover %v)", i, wire[i], wire[0], takeover)
				}
			}
		})
	}
}

// Prepare owns what it was given: a caller that reuses its buffer (a
// pooled one, say) right after Prepare must not change what is sent, on
// plain, compressed and context-takeover conns alike.
func TestPrepareCopiesPayload(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		hdr  []string
	}{
		{"plain", Options{}, nil},
		{"deflate", Options{Compression: true}, []string{offerDeflate}},
		{"takeover", Options{Compression: true, ContextTakeover: true}, []string{offerDeflate}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := outMsg('O', 1, 1000)
			srv := New[struct{}](tc.opts)
			srv.Handle("/ws", Funcs[struct{}]{Message: func(c *Conn[struct{}], _ Message) {
				buf := bytes.Clone(want)
				p := srv.Prepare(Text, buf)
				copy(buf, bytes.Repeat([]byte{'X'}, len(buf))) // reused by its owner
				_ = c.SendPrepared(p)
			}})
			addr := start(t, srv)
			c, r := dialOut(t, addr, "/ws", tc.hdr...)
			if err := c.WriteMessage(codec.OpText, []byte("go")); err != nil {
				t.Fatal(err)
			}
			m, err := r.next()
			if err != nil || !bytes.Equal(m.data, want) {
				t.Fatalf("got %.24q (%d bytes, compressed %v, err %v), want %.24q", m.data, len(m.data), m.compressed, err, want)
			}
			if tc.hdr != nil && !m.compressed {
				t.Fatal("sent uncompressed: the test did not exercise deflate")
			}
		})
	}
}
