package poller

import (
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// Streaming responses: a plain HTTP request answered with a head and then a
// body that never ends (Server-Sent Events). The conn stays on its loop like
// a WebSocket one: no goroutine, one sweep for keep-alives. What is queued
// is raw bytes, not frames; input after the request is discarded; the body
// ends when the conn closes (the head must say Connection: close and carry
// no Content-Length).

// ErrNotStream is returned by WriteStream on a WebSocket conn, and
// ErrStreamConn by Send and SendPrepared on a streaming one: frames and raw
// bytes never mix on one conn.
var (
	ErrNotStream  = errors.New("poller: not a streaming response")
	ErrStreamConn = errors.New("poller: a streaming response takes raw bytes (WriteStream), not frames")
)

// AdmitStream takes a MaxAcceptRate token for a streaming response about
// to start: a stream is held like a WebSocket conn, so it is paced like an
// upgrade, from the same bucket. Without a token it answers 503 with the
// Retry-After of the client's slot (counted under CauseAcceptRate), closes
// and returns false. Call it on the loop from HTTPHandler.ServeHTTP, once
// the request is known valid and before vetting it (tokens) or
// StartStream; without MaxAcceptRate it returns true.
func (c *Conn) AdmitStream() bool {
	e := c.loop.eng
	if e.pacer == nil || c.state != stateHTTP {
		return true
	}
	if ok, wait := e.pacer.admit(time.Since(e.start)); !ok {
		e.refuseRate(c, wait)
		return false
	}
	return true
}

// StartStream answers the plain request being served with head (the whole
// response head, ending in an empty line) and turns the conn into a
// streaming response whose events go to s (only OnClose is called: input
// is discarded). It must be called on the loop from HTTPHandler.ServeHTTP,
// instead of ReplyHTTP; the cap, slow-consumer policy and Close apply to
// the stream as to a WebSocket conn.
func (c *Conn) StartStream(head []byte, s Session) {
	if c.state != stateHTTP {
		return
	}
	e := c.loop.eng
	c.mu.Lock()
	c.stream = true
	c.mu.Unlock()
	c.session = s
	c.state = stateStream
	c.since = e.clock()
	_, _ = c.gc.Write(head)
	e.stats.Streams.Add(1)
}

// WriteStream queues own (copied) followed by shared (not copied: it must
// never change, like a Prepared frame) as one unit on a streaming response:
// the cap admits or refuses both. Safe from any goroutine; units from one
// goroutine go out in order. Errors as for Send, and ErrNotStream.
func (c *Conn) WriteStream(own, shared []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.stream {
		return ErrNotStream
	}
	if err := c.admitLocked(); err != nil {
		return err
	}
	e := c.loop.eng
	n := len(own)
	if len(shared) <= copyShared {
		n += len(shared)
	}
	if c.out == nil {
		c.out = e.bufs.Get(n)
	} else if n > 0 {
		c.out = e.bufs.Grow(c.out, n)
	}
	c.out.B = append(c.out.B, own...)
	if len(shared) <= copyShared {
		// A queue entry costs about as much as these bytes, and a copy
		// keeps the batch one write: the event was still built once.
		c.out.B = append(c.out.B, shared...)
	} else {
		c.out.segs = append(c.out.segs, seg{b: shared, ownEnd: len(c.out.B)})
		c.out.segBytes += len(shared)
	}
	c.queuedLocked(len(own) + len(shared))
	return nil
}

// copyShared is the size up to which WriteStream copies shared bytes into
// the queue instead of referencing them.
const copyShared = 256

// endStream closes a streaming response once what was queued is written:
// the body of a close-delimited response ends with the connection. Closing
// while gnet still holds bytes, or while unread input sits in the kernel,
// would reset the connection and the peer could lose the end of the body:
// the sweep waits (up to CloseTimeout) for gnet to drain, then shutStream.
// A slow consumer is cut at once. On the loop.
func (l *loop) endStream(c *Conn, why Cause) {
	if c.state != stateStream {
		return
	}
	c.closeCause = why
	c.since = l.eng.clock()
	if why == CauseSlowConsumer {
		c.state = stateClosed
		_ = c.gc.Close()
		return
	}
	if c.gc.OutboundBuffered() > 0 {
		c.state = stateStreamEnd
		return
	}
	l.shutStream(c)
}

// shutStream shuts the write side so that the peer reads EOF after the
// body, and discards its input until it closes (the sweep gives up after a
// second). On the loop.
func (l *loop) shutStream(c *Conn) {
	if unix.Shutdown(c.gc.Fd(), unix.SHUT_WR) == nil {
		c.state = stateDraining
		c.since = l.eng.clock()
		return
	}
	c.state = stateClosed
	_ = c.gc.Close()
}

// sweepStream sends the keep-alive bytes on a stream silent for
// StreamPingInterval, so that proxies do not cut it. On the loop.
func (l *loop) sweepStream(c *Conn, now uint32) {
	if c.stalled {
		l.flush(c)
		if c.state != stateStream {
			return
		}
	}
	ping := secs(l.eng.cfg.StreamPingInterval)
	if ping == 0 || len(l.eng.cfg.StreamPing) == 0 || now-c.since < ping {
		return
	}
	c.since = now
	if c.gc.OutboundBuffered() == 0 {
		_, _ = c.gc.Write(l.eng.cfg.StreamPing)
	}
}
