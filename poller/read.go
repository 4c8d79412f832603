package poller

import (
	"bytes"
	"errors"
	"strconv"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsdhq/wsd/codec"
)

// OnTraffic implements gnet.EventHandler: bytes arrived, or a Wake.
func (e *Engine) OnTraffic(gc gnet.Conn) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.Close
	}
	defer e.recoverPanic(c, "OnTraffic")
	e.traffic(c)
	e.account(c)
	return gnet.None
}

// traffic is OnTraffic's work; the memory accounting follows whatever it did.
func (e *Engine) traffic(c *Conn) {
	gc := c.gc
	l := c.loop
	// The handshake deadline runs from accept: only an open conn's idle
	// clock restarts on traffic (else one byte every few seconds would
	// hold a half-sent request forever).
	if c.state == stateOpen && gc.InboundBuffered() > 0 {
		c.since = e.clock()
		c.pingOut = false
	}
	if c.resume.Swap(false) {
		c.paused = false
	}
	if c.state == stateDraining || c.state == stateStream || c.state == stateStreamEnd {
		_, _ = gc.Discard(-1) // nothing more is read from these
		return
	}
	if c.state == stateHTTP {
		// Pipelined requests wait in gnet's buffer until the answer to
		// this one is written, so that answers go out in order; the wait
		// is bounded to one more whole request.
		if gc.InboundBuffered() > maxHTTPPipelined {
			e.stats.Rejected.Add(1)
			c.closeCause = CauseHTTPDone
			c.state = stateClosed
			_ = gc.Close()
		}
		return
	}
	if c.state == stateHandshake || c.state == stateHTTPIdle {
		e.handshake(c)
	}
	progressed := false
	if (c.state == stateOpen || c.state == stateClosing) && !c.paused {
		before := gc.InboundBuffered()
		e.readFrames(c)
		progressed = c.state != stateClosed && gc.InboundBuffered() < before
	}
	if c.state == stateClosed {
		return
	}
	if c.state == stateOpen {
		e.trackPartial(c, progressed)
	}
	if c.paused && gc.InboundBuffered() > e.cfg.MaxInboundBytes {
		l.fail(c, codec.ClosePolicyViolation, "unread input over limit", CauseInboundOverflow)
	}
}

// handshake parses the upgrade request once it is whole and answers it.
// Bytes pipelined behind the request stay in the buffer for readFrames.
func (e *Engine) handshake(c *Conn) {
	gc := c.gc
	buf, _ := gc.Peek(-1)
	req, n, err := e.cfg.Upgrader.ReadRequest(buf)
	if errors.Is(err, codec.ErrNeedMore) {
		return
	}
	if err == nil && c.adm&admViaProxy != 0 {
		e.forwardedFor(c, req)
	}
	if err == nil && req.Get("Upgrade") == "" {
		if hh, ok := e.h.(HTTPHandler); ok {
			e.plainHTTP(c, hh, req, buf, n)
			return
		}
	}
	if err == nil && hasBody(req) {
		// Whatever follows the head of an upgrade is frames: a body would
		// be read as frames (or smuggle a request past the handshake).
		err = &codec.HTTPError{Status: 400, Reason: "an upgrade request has no body"}
	}
	if err == nil && c.adm&admViaProxy != 0 && !e.admitForwarded(c) {
		return
	}
	// The negotiation lives in the loop, not here: Upgrade takes a pointer
	// to it, and a local would be allocated for every upgrade.
	acc := &c.loop.accept
	if err == nil {
		*acc, err = e.cfg.Upgrader.Negotiate(req)
	}
	if err == nil && e.mem.pressure() {
		// Before any per-conn state: a conn admitted now would only add
		// to the memory the budget is shedding.
		e.answerAndClose(c, e.memFull, CauseMemoryRefused)
		return
	}
	if err == nil && e.pacer != nil {
		// After the request proved valid (garbage takes no token), before
		// the application's Upgrade, which is the costly part (tokens).
		if ok, wait := e.pacer.admit(time.Since(e.start)); !ok {
			e.refuseRate(c, wait)
			return
		}
	}
	var s Session
	var herr *codec.HTTPError
	if err == nil {
		if acc.Deflate && e.cfg.Flate == nil {
			acc.Deflate = false
		}
		// Set before Upgrade: a worker may Send as soon as it returns.
		c.deflate = acc.Deflate
		c.rd.Deflate = acc.Deflate
		if acc.Deflate {
			c.flate = e.cfg.Flate.NewContext(acc.Params)
		}
		s, herr = e.h.Upgrade(c, req, acc)
		if herr == nil && s == nil {
			herr = &codec.HTTPError{Status: 404, Reason: "not found"}
		}
	} else {
		herr = httpErrorOf(err)
	}
	if herr != nil {
		e.refuse(c, herr)
		return
	}
	_, _ = gc.Discard(n)
	c.session = s
	c.loop.scratch = codec.AppendAccept(c.loop.scratch[:0], req, *acc)
	_, _ = gc.Write(c.loop.scratch)
	c.state = stateOpen
	e.leaveHandshake(c)
	e.stats.Upgraded.Add(1)
}

// httpErrorOf is the answer to a request the handshake refused: the
// codec's own *HTTPError, else 400 with the error's text. (A function of
// its own so that errors.As's target escapes only on this path.)
func httpErrorOf(err error) *codec.HTTPError {
	var herr *codec.HTTPError
	if !errors.As(err, &herr) {
		herr = &codec.HTTPError{Status: 400, Reason: err.Error()}
	}
	return herr
}

// readFrames parses every complete frame in the inbound buffer, in place,
// and discards what it consumed.
func (e *Engine) readFrames(c *Conn) {
	gc := c.gc
	buf, _ := gc.Peek(-1)
	off := 0
	defer func() {
		if off > 0 && c.state != stateClosed {
			_, _ = gc.Discard(off)
		}
	}()
	c.mu.Lock()
	c.inLoop = true
	c.mu.Unlock()
	defer e.endCallbacks(c)
	for off < len(buf) && !c.paused && c.state < stateDraining {
		f, n, err := c.rd.Next(buf[off:])
		if err != nil {
			var pe *codec.ProtocolError
			if errors.As(err, &pe) {
				c.loop.fail(c, pe.Code, pe.Reason, causeOf(pe))
			}
			return
		}
		if f.Op == 0 {
			return
		}
		off += n
		if c.state == stateClosing && f.Op != codec.OpClose {
			continue // after our close frame, only the peer's close matters
		}
		switch f.Op {
		case codec.OpPing:
			if gc.OutboundBuffered() > e.cfg.MaxOutboundBytes {
				// Our pongs pile up unread: answering on would buffer
				// without bound. The close goes out behind them and no
				// ping is answered after it; CloseTimeout bounds the wait
				// for a peer that never reads.
				e.flushNow(c)
				c.mu.Lock()
				c.closeOut = true
				c.mu.Unlock()
				c.loop.sendClose(c, codec.ClosePolicyViolation, "ping flood", CausePingFlood)
				continue
			}
			c.mu.Lock()
			closed := c.closeOut
			c.mu.Unlock()
			if !closed {
				e.flushNow(c)
				c.loop.scratch = codec.AppendFrame(c.loop.scratch[:0], codec.OpPong, true, f.Payload)
				_, _ = gc.Write(c.loop.scratch)
			}
		case codec.OpPong:
			c.pingOut = false
		case codec.OpClose:
			e.onClose(c, f.Payload)
		default:
			e.onData(c, f)
		}
	}
}

// endCallbacks flushes what the Session sent from inside its callbacks.
func (e *Engine) endCallbacks(c *Conn) {
	c.mu.Lock()
	c.inLoop = false
	pending := c.out != nil
	c.mu.Unlock()
	if pending && c.state < stateDraining {
		c.loop.flush(c)
	}
}

// flushNow writes what is queued so that a pong does not overtake it.
func (e *Engine) flushNow(c *Conn) {
	c.mu.Lock()
	pending := c.out != nil
	c.mu.Unlock()
	if pending {
		c.loop.flush(c)
	}
}

// onClose answers the peer's close frame and closes the TCP connection.
func (e *Engine) onClose(c *Conn, payload []byte) {
	code, reason, err := codec.ParseClose(payload)
	if err != nil {
		var pe *codec.ProtocolError
		errors.As(err, &pe)
		c.loop.fail(c, pe.Code, pe.Reason, CauseProtocol)
		return
	}
	if c.state == stateClosing {
		// The peer answered ours: the handshake is complete. The code that
		// ended the conn stays ours.
		c.state = stateClosed
		_ = c.gc.Close()
		return
	}
	e.flushNow(c)
	if c.state == stateClosing {
		c.state = stateClosed
		_ = c.gc.Close()
		return
	}
	c.mu.Lock()
	c.closeOut = true
	c.mu.Unlock()
	echo := code
	if code == codec.CloseNoStatus {
		echo = 0 // empty body back
	}
	c.loop.scratch = codec.AppendClose(c.loop.scratch[:0], echo, string(reason))
	_, _ = c.gc.Write(c.loop.scratch)
	c.closeCode, c.closeCause = code, CausePeerClose
	c.setCloseText(string(reason))
	c.state = stateClosed
	_ = c.gc.Close()
}

// onData assembles a message and delivers it when whole.
func (e *Engine) onData(c *Conn, f codec.Frame) {
	if f.First && f.Fin && !f.Compressed {
		e.deliver(c, Message{Op: f.Op, Payload: f.Payload})
		return
	}
	if f.First {
		c.msg = e.bufs.Get(max(len(f.Payload), 512))
	}
	c.msg = e.bufs.Grow(c.msg, len(f.Payload))
	c.msg.B = append(c.msg.B, f.Payload...)
	if !f.Fin {
		return
	}
	m := c.msg
	c.msg = nil
	if !f.Compressed {
		e.deliver(c, Message{Op: f.Op, Payload: m.B, Buf: m})
		return
	}
	e.inflate(c, f.Op, m)
}

// inflate inflates and validates a whole compressed message on the loop,
// unless it is big and the Session takes it raw: then that costs the loop
// at most OffloadBytes of inflating, and a worker does the rest (see
// Conn.Inflate). Without context takeover only: with it, the inflate
// window is the conn's and must see every message in order, on the loop.
func (e *Engine) inflate(c *Conn, op codec.OpCode, m *Buf) {
	limit := int(e.cfg.Limits.MaxMessage)
	offload := e.cfg.OffloadBytes > 0 && c.flate == nil && e.offloads(c)
	if offload {
		if len(m.B) >= e.cfg.OffloadBytes {
			e.deliverRaw(c, op, m)
			return
		}
		limit = min(limit, e.cfg.OffloadBytes)
	}
	out := e.bufs.Get(min(len(m.B)*3, limit+1))
	var err error
	out.B, err = e.cfg.Flate.Inflate(out.B, m.B, limit, c.flate)
	if offload && err == codec.ErrMessageTooBig && limit < int(e.cfg.Limits.MaxMessage) {
		// Past what the loop inflates: a worker starts over.
		e.bufs.Put(out)
		e.deliverRaw(c, op, m)
		return
	}
	e.bufs.Put(m)
	if err == nil && op == codec.OpText && !codec.ValidUTF8(out.B) {
		err = codec.ErrInvalidUTF8
	}
	if err != nil {
		e.bufs.Put(out)
		pe := codec.ErrCorruptCompression
		errors.As(err, &pe)
		c.loop.fail(c, pe.Code, pe.Reason, causeOf(pe))
		return
	}
	e.deliver(c, Message{Op: op, Payload: out.B, Buf: out})
}

func causeOf(pe *codec.ProtocolError) Cause {
	if pe.Code == codec.CloseTooBig {
		return CauseTooBig
	}
	return CauseProtocol
}

// offloads reports whether c's Session takes compressed messages raw.
func (e *Engine) offloads(c *Conn) bool {
	o, ok := c.session.(Offloader)
	return ok && o.Offload()
}

// deliverRaw hands over a compressed message for Conn.Inflate.
func (e *Engine) deliverRaw(c *Conn, op codec.OpCode, m *Buf) {
	e.stats.MessagesIn.Add(1)
	e.stats.Offloaded.Add(1)
	if c.session.OnMessage(c, Message{Op: op, Payload: m.B, Buf: m, Compressed: true}) {
		c.paused = true
	}
}

func (e *Engine) deliver(c *Conn, m Message) {
	e.stats.MessagesIn.Add(1)
	e.stats.BytesIn.Add(uint64(len(m.Payload)))
	if c.session.OnMessage(c, m) {
		c.paused = true
	}
}

// Inflate finishes a message delivered with Compressed set, off the event
// loop: it inflates it and checks that a text message is valid UTF-8. It
// takes m.Buf; on success the returned message owns a new Buf. On failure
// the connection is closed with 1009 (too big after inflating) or 1007 /
// 1002 (invalid text, corrupt data), counted under CauseTooBig or
// CauseProtocol, and the error is that *codec.ProtocolError: the
// application must drop this conn's later messages. Safe from any
// goroutine; call it for one conn's messages one at a time, in order.
func (c *Conn) Inflate(m Message) (Message, error) {
	e := c.loop.eng
	if !m.Compressed {
		return m, nil
	}
	limit := int(e.cfg.Limits.MaxMessage)
	out := e.bufs.Get(min(len(m.Payload)*3, limit+1))
	var err error
	out.B, err = e.cfg.Flate.Inflate(out.B, m.Payload, limit, nil)
	e.bufs.Put(m.Buf)
	if err == nil && m.Op == codec.OpText && !codec.ValidUTF8(out.B) {
		err = codec.ErrInvalidUTF8
	}
	if err != nil {
		e.bufs.Put(out)
		pe := codec.ErrCorruptCompression
		errors.As(err, &pe)
		c.CloseWith(pe.Code, pe.Reason, causeOf(pe))
		return Message{}, pe
	}
	e.stats.BytesIn.Add(uint64(len(out.B)))
	return Message{Op: m.Op, Payload: out.B, Buf: out}, nil
}

// maxHTTPBody bounds the body of a plain HTTP request (API calls).
const maxHTTPBody = 1 << 20

// maxHTTPPipelined bounds what a client may send ahead while its previous
// request is being answered: about one more whole request.
const maxHTTPPipelined = maxHTTPBody + 64<<10

// hasBody reports whether a request announces a body.
func hasBody(req *codec.Request) bool {
	cl := req.Get("Content-Length")
	return (cl != "" && cl != "0") || req.Get("Transfer-Encoding") != ""
}

// plainHTTP hands a non-upgrade request, once its body is in, to the
// HTTPHandler. Bytes behind the body (a pipelined request) stay in gnet's
// buffer until the answer is written (see ReplyHTTP).
func (e *Engine) plainHTTP(c *Conn, hh HTTPHandler, req *codec.Request, buf []byte, n int) {
	length := 0
	if cl := req.Get("Content-Length"); cl != "" {
		v, err := strconv.Atoi(cl)
		if err != nil || v < 0 {
			e.refuse(c, &codec.HTTPError{Status: 400, Reason: "bad Content-Length"})
			return
		}
		length = v
	} else if req.Get("Transfer-Encoding") != "" {
		e.refuse(c, &codec.HTTPError{Status: 411, Reason: "Content-Length required"})
		return
	}
	if length > maxHTTPBody {
		e.refuse(c, &codec.HTTPError{Status: 413, Reason: "body over 1 MiB"})
		return
	}
	if len(buf) < n+length {
		return // wait for the rest of the body
	}
	body := bytes.Clone(buf[n : n+length])
	_, _ = c.gc.Discard(n + length)
	c.state = stateHTTP
	c.since = e.clock()
	e.leaveHandshake(c)
	hh.ServeHTTP(c, req, body)
}

// refuse answers a request with an HTTP error and closes.
func (e *Engine) refuse(c *Conn, herr *codec.HTTPError) {
	e.stats.Rejected.Add(1)
	e.answerAndClose(c, herr, CauseHandshakeRejected)
}

// answerAndClose writes an HTTP error answer and closes, counting the close
// under cause.
func (e *Engine) answerAndClose(c *Conn, herr *codec.HTTPError, cause Cause) {
	c.loop.scratch = codec.AppendHTTPError(c.loop.scratch[:0], herr)
	_, _ = c.gc.Write(c.loop.scratch)
	c.closeCause = cause
	c.state = stateClosed
	_ = c.gc.Close()
}

// ReplyHTTP writes the complete HTTP response to the plain request handed
// to an HTTPHandler. With keepAlive (which the response must announce, and
// which the request must allow: codec.Request.KeepAlive) the connection
// then waits for the next request, pipelined or not; otherwise it closes.
// Safe from any goroutine; call it once per request.
func (c *Conn) ReplyHTTP(resp []byte, keepAlive bool) {
	_ = c.gc.AsyncWrite(resp, func(gc gnet.Conn, err error) error {
		cc, ok := gc.Context().(*Conn)
		if !ok || cc != c || c.state != stateHTTP {
			return nil // closed meanwhile (timeout, overflow)
		}
		e := c.loop.eng
		if err != nil || !keepAlive || e.draining.Load() {
			c.closeCause = CauseHTTPDone
			c.state = stateClosed
			return gc.Close()
		}
		c.state = stateHTTPIdle
		c.since = e.clock()
		if gc.InboundBuffered() > 0 {
			e.nextHTTP(c)
		}
		return nil
	})
}

// nextHTTP parses a request that was pipelined behind the one just
// answered. On the loop.
func (e *Engine) nextHTTP(c *Conn) {
	defer e.recoverPanic(c, "nextHTTP")
	e.handshake(c)
}

// trackPartial notes when the peer started a message or frame it has not
// finished, for the sweep's MessageTimeout: a frame cut short or fragments
// that never reach FIN would otherwise hold their bytes for as long as the
// peer trickles. A frame's clock starts with the read that began it (a
// read that consumed frames and left a partial one began a new one); a
// fragmented message's with its first fragment. A paused conn is not
// timed: the wait is ours. On the loop.
func (e *Engine) trackPartial(c *Conn, progressed bool) {
	switch {
	case c.paused || (c.msg == nil && c.gc.InboundBuffered() == 0):
		c.partial = 0
	case c.partial == 0 || (progressed && c.msg == nil):
		c.partial = e.clock() + 1 // 0 means none
	}
}
