package poller

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsdhq/wsd/codec"
)

// ErrClosed is returned by Send after the connection started closing.
var ErrClosed = errors.New("poller: connection closed")

// ErrSlowConsumer is returned by Send when the outbound cap was hit and the
// policy dropped the message or closed the connection.
var ErrSlowConsumer = errors.New("poller: outbound queue full (slow consumer)")

type connState uint8

const (
	stateHandshake connState = iota
	stateOpen
	stateClosing   // our close frame is out; waiting for the peer's
	stateHTTP      // a plain HTTP request is being answered
	stateHTTPIdle  // answered and kept alive: waiting for the next request
	stateStream    // a streaming response (stream.go): raw bytes out, input discarded
	stateStreamEnd // a stream closing once gnet wrote what it holds
	stateDraining  // failed: close frame sent, write side shut, input discarded
	stateClosed
)

// Conn is one connection. Its loop-side fields are touched only on the
// connection's event loop; the outbound batch is guarded by mu so that any
// goroutine can Send.
type Conn struct {
	gc        gnet.Conn
	loop      *loop
	session   Session
	flate     *codec.FlateContext // non-nil only with context takeover
	msg       *Buf                // message being assembled (nil when none)
	remote    *net.TCPAddr        // gnet's, immutable; kept so it outlives the gnet conn
	id        uint64
	closeText *string // reason of the close frame that ended the conn, nil: none (loop-owned; a pointer: most conns never need one, and it keeps the struct at 176 bytes)
	rd        codec.Reader

	// Loop-owned. Fields are ordered so that the struct packs into 176
	// bytes: every byte here is paid once per connection.
	idx        int32  // position in loop.conns
	since      uint32 // loop clock (s) of the last read or of accept
	closeCode  uint16
	state      connState
	paused     bool
	pingOut    bool // a keepalive ping is unanswered
	deflate    bool
	closeCause Cause
	stalled    bool // out is held until gnet's buffer drains (PolicyDrop)

	// Guarded by mu (the outbound side, touched by any goroutine).
	dirty    bool // queued on the loop's dirty list
	inLoop   bool // the loop is in a callback for this conn and flushes after
	closeOut bool // a close frame is queued or sent: Send refuses more
	stream   bool // a streaming response: WriteStream only, no frames
	closeWhy Cause
	adm      uint8 // admPending, admIPCounted, admViaProxy (loop-owned; here it fills padding)
	closeReq uint16
	resume   atomic.Bool
	mu       sync.Mutex
	held     uint32 // loop-owned: inbound bytes accounted to the memory budget (here to fill mu's padding)
	partial  uint32 // loop clock (s) when an unfinished message or frame began, 0: none (loop-owned; fills padding)
	out      *Buf   // pending frames: own bytes in B, shared frames in segs
}

// setCloseText records the close reason; "" records none (no allocation).
func (c *Conn) setCloseText(reason string) {
	c.closeText = nil
	if reason != "" {
		c.closeText = &reason
	}
}

// closeReason is the recorded close reason, "" for none.
func (c *Conn) closeReason() string {
	if c.closeText == nil {
		return ""
	}
	return *c.closeText
}

// ID is unique per Engine. Safe from any goroutine.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr is the client's address: the TCP peer's as accepted, or, for
// a peer in Config.TrustedProxies, the client its request names in
// X-Forwarded-For or X-Real-IP (port 0), once that request was read. Safe
// from any goroutine once the conn was handed over (Upgrade, ServeHTTP); on
// a kept-alive HTTP conn from a proxy it may change with each request.
func (c *Conn) RemoteAddr() netip.AddrPort {
	if c.remote == nil {
		return netip.AddrPort{}
	}
	return c.remote.AddrPort()
}

// Compressed reports whether permessage-deflate was negotiated. Safe from
// any goroutine after the upgrade.
func (c *Conn) Compressed() bool { return c.deflate }

// seg is a shared frame placed after the first ownEnd bytes of out.
type seg struct {
	b      []byte
	ownEnd int
}

// Send queues a whole message. It is encoded (and compressed if negotiated)
// on the caller's goroutine and written by the loop. Safe from any
// goroutine; messages from one goroutine go out in order. It returns
// ErrClosed once the conn started closing, and ErrSlowConsumer when the
// outbound cap refused the message (see Policy). payload may be reused as
// soon as Send returns.
func (c *Conn) Send(op codec.OpCode, payload []byte) error {
	e := c.loop.eng
	compress := c.deflate && e.cfg.Flate.ShouldCompress(len(payload))
	var z *Buf
	body, rsv1 := payload, false
	if compress && c.flate == nil {
		// No shared state: compress outside the lock.
		z = e.bufs.Get(len(payload)/2 + 64)
		z.B = e.cfg.Flate.Deflate(z.B, payload, nil)
		body, rsv1 = z.B, true
	}
	c.mu.Lock()
	if err := c.admitFrameLocked(); err != nil {
		c.mu.Unlock()
		e.bufs.Put(z)
		return err
	}
	if compress && c.flate != nil {
		// Context takeover: the compressor is this conn's, used under mu
		// and only for a message already admitted, so that it remembers
		// exactly the frames the peer will inflate, in their order.
		z = e.bufs.Get(len(payload)/2 + 64)
		z.B = e.cfg.Flate.Deflate(z.B, payload, c.flate)
		body, rsv1 = z.B, true
	}
	if c.out == nil {
		c.out = e.bufs.Get(len(body) + codec.MaxHeaderLen)
	} else {
		c.out = e.bufs.Grow(c.out, len(body)+codec.MaxHeaderLen)
	}
	c.out.B = codec.AppendHeader(c.out.B, op, true, rsv1, len(body))
	c.out.B = append(c.out.B, body...)
	c.queuedLocked(len(body))
	c.mu.Unlock()
	e.bufs.Put(z)
	return nil
}

// Prepared is a message encoded once for many connections (broadcast). Its
// bytes are immutable and shared by every queue they are put on.
type Prepared struct {
	op    codec.OpCode
	plain []byte // the uncompressed frame
	raw   []byte // its payload (aliases plain)
	once  sync.Once
	flate []byte // the compressed frame, made on first use

	altOnce sync.Once
	alt     any // another encoding of the payload (an SSE event), made on first use
}

// Payload is the message's payload (not to be modified). Safe from any
// goroutine.
func (p *Prepared) Payload() []byte { return p.raw }

// Alt returns another encoding of the message, built once by the first
// caller's build from the payload and shared by every later caller: a
// Server-Sent Events form of a push, say, made once per publication for all
// its stream subscribers. Every caller must pass the same kind of build.
// Safe from any goroutine.
func (p *Prepared) Alt(build func(payload []byte) any) any {
	p.altOnce.Do(func() { p.alt = build(p.raw) })
	return p.alt
}

// Prepare encodes payload once. The Prepared owns a copy: the caller may
// reuse payload (a pooled or read buffer) as soon as Prepare returns. Safe
// from any goroutine.
func (e *Engine) Prepare(op codec.OpCode, payload []byte) *Prepared {
	plain := codec.AppendFrame(make([]byte, 0, len(payload)+codec.MaxHeaderLen), op, true, payload)
	return &Prepared{op: op, plain: plain, raw: plain[len(plain)-len(payload):]}
}

func (p *Prepared) deflated(e *Engine) []byte {
	p.once.Do(func() {
		body := e.cfg.Flate.Deflate(nil, p.raw, nil)
		f := codec.AppendHeader(make([]byte, 0, len(body)+codec.MaxHeaderLen), p.op, true, true, len(body))
		p.flate = append(f, body...)
	})
	return p.flate
}

// SendPrepared queues a prepared message without copying it (except on a
// context-takeover conn, whose compressor must see it). Safe from any
// goroutine; errors as for Send.
func (c *Conn) SendPrepared(p *Prepared) error {
	if c.deflate && c.flate != nil {
		return c.Send(p.op, p.raw) // takeover: this conn's own compressor
	}
	frame := p.plain
	if c.deflate && c.loop.eng.cfg.Flate.ShouldCompress(len(p.raw)) {
		frame = p.deflated(c.loop.eng)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.admitFrameLocked(); err != nil {
		return err
	}
	if c.out == nil {
		c.out = c.loop.eng.bufs.Get(0)
	}
	c.out.segs = append(c.out.segs, seg{b: frame, ownEnd: len(c.out.B)})
	c.out.segBytes += len(frame)
	c.queuedLocked(len(frame))
	return nil
}

// admitFrameLocked is admitLocked for a WebSocket frame.
func (c *Conn) admitFrameLocked() error {
	if c.stream {
		return ErrStreamConn
	}
	return c.admitLocked()
}

// admitLocked decides, before anything is encoded into the queue, whether
// one more message may be queued. The cap is on what is already queued:
// one message of any allowed size fits into a queue that is under the cap.
// Over it, the policy applies: PolicyDrop refuses this message and queues
// nothing (so a takeover compressor never sees it); PolicyClose closes.
func (c *Conn) admitLocked() error {
	if c.closeOut {
		return ErrClosed
	}
	e := c.loop.eng
	if c.queuedBytesLocked() <= e.cfg.MaxOutboundBytes {
		return nil
	}
	e.stats.SlowConsumers.Add(1)
	if e.cfg.SlowPolicy == PolicyDrop {
		// The held queue may be writable again: let the loop look.
		c.scheduleLocked()
		return ErrSlowConsumer
	}
	c.closeLocked(codec.ClosePolicyViolation, "slow consumer", CauseSlowConsumer)
	return ErrSlowConsumer
}

// queuedBytesLocked is what waits for the loop. O(1): a broadcast backlog
// can hold tens of thousands of shared frames.
func (c *Conn) queuedBytesLocked() int {
	if c.out == nil {
		return 0
	}
	return len(c.out.B) + c.out.segBytes
}

// queuedLocked counts a message just queued (n payload or frame bytes) and
// schedules a flush.
func (c *Conn) queuedLocked(n int) {
	e := c.loop.eng
	e.stats.MessagesOut.Add(1)
	e.stats.BytesOut.Add(uint64(n))
	c.scheduleLocked()
}

// Close starts the closing handshake with code and reason: the close frame
// goes out after what is already queued, later Sends fail, and the TCP
// connection is closed when the peer answers or after CloseTimeout. Safe
// from any goroutine; only the first call has an effect.
func (c *Conn) Close(code uint16, reason string) {
	c.CloseWith(code, reason, CauseServerClose)
}

// CloseWith is Close with the cause to count the close under (for
// example CausePanic). Safe from any goroutine.
func (c *Conn) CloseWith(code uint16, reason string, cause Cause) {
	c.mu.Lock()
	c.closeLocked(code, reason, cause)
	c.mu.Unlock()
}

func (c *Conn) closeLocked(code uint16, reason string, why Cause) {
	if c.closeOut {
		return
	}
	c.closeOut = true
	c.closeReq = code
	c.closeWhy = why
	if why == CauseSlowConsumer {
		// The queue is what is too big: do not make the peer read it first.
		if c.out != nil {
			c.out.B = c.out.B[:0]
			clear(c.out.segs)
			c.out.segs, c.out.segBytes = c.out.segs[:0], 0
		}
	}
	if c.out == nil {
		c.out = c.loop.eng.bufs.Get(codec.MaxControlPayload + 4)
	}
	if !c.stream { // a stream ends with the connection, after what is queued
		c.out.B = codec.AppendClose(c.out.B, code, reason)
	}
	c.scheduleLocked()
}

// scheduleLocked makes sure the loop will flush this conn.
func (c *Conn) scheduleLocked() {
	if c.dirty || c.inLoop {
		return
	}
	c.dirty = true
	c.loop.markDirty(c)
}

// Resume restarts reading after a Session paused it. Safe from any
// goroutine.
func (c *Conn) Resume() {
	if c.resume.CompareAndSwap(false, true) {
		_ = c.gc.Wake(nil)
	}
}
