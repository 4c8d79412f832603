package server

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/poller"
)

// loopHandler is the Server as the poller sees it: the same memory with the
// callbacks the event loops make, kept out of Server's API. The conversion
// (*loopHandler[T])(s) costs nothing.
type loopHandler[T any] Server[T]

func (h *loopHandler[T]) server() *Server[T] { return (*Server[T])(h) }

// session is a Conn as the poller sees it, for the same reason; converting
// costs nothing and keeps the per-conn footprint one struct.
type session[T any] Conn[T]

func (ss *session[T]) conn() *Conn[T] { return (*Conn[T])(ss) }

// Upgrade implements poller.Handler, on the loop: routing and the Acceptor
// hook.
func (h *loopHandler[T]) Upgrade(pc *poller.Conn, req *codec.Request, a *codec.Accept) (poller.Session, *codec.HTTPError) {
	s := h.server()
	r := s.routes[req.Path]
	if r == nil || r.stream != nil {
		return nil, &codec.HTTPError{Status: 404, Reason: "no WebSocket endpoint at " + req.Path}
	}
	c := &Conn[T]{pc: pc, route: r, req: req}
	if req.RawQuery != "" || a.Protocol != "" {
		c.info = &connInfo{query: strings.Clone(req.RawQuery), proto: a.Protocol}
	}
	if r.accept != nil {
		if err := s.safeAccept(r, c, req); err != nil {
			var he *codec.HTTPError
			if !errors.As(err, &he) {
				he = &codec.HTTPError{Status: 403, Reason: err.Error()}
			}
			return nil, he
		}
	}
	s.live.Add(1)
	s.open(c, r)
	return (*session[T])(c), nil
}

// open delivers OnOpen: now on the loop for an inline route, else on a
// worker.
func (s *Server[T]) open(c *Conn[T], r *route[T]) {
	if r.inline {
		s.safe(c, func() { r.h.OnOpen(c) })
		c.opened = true
		c.dropHeaders()
		return
	}
	c.mu.Lock()
	c.scheduled = true
	c.mu.Unlock()
	s.work.push(c)
}

func (s *Server[T]) safeAccept(r *route[T], c *Conn[T], req *Request) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("Accept panicked", "path", r.path, "panic", fmt.Sprint(p))
			err = &codec.HTTPError{Status: 500, Reason: "internal error"}
		}
	}()
	return r.accept.Accept(c, req)
}

func (c *Conn[T]) dropHeaders() {
	if !c.route.srv.opts.KeepHeaders && c.req != nil {
		c.req = nil
	}
}

// Offload implements poller.Offloader: a worker route's big compressed
// messages are inflated and validated by the worker (run), so that they
// never stall the loop; an inline route runs on the loop anyway.
func (ss *session[T]) Offload() bool { return !ss.route.inline }

// OnMessage implements poller.Session, on the loop.
func (ss *session[T]) OnMessage(_ *poller.Conn, m poller.Message) bool {
	c := ss.conn()
	s := c.route.srv
	if c.route.inline {
		s.safe(c, func() { c.route.h.OnMessage(c, Message{Type: m.Op, Data: m.Payload}) })
		s.eng.Buffers().Put(m.Buf)
		return false
	}
	if m.Buf == nil {
		// The payload lives in the loop's read buffer: one copy to cross
		// to the worker pool.
		b := s.eng.Buffers().Get(len(m.Payload))
		b.B = append(b.B, m.Payload...)
		m.Buf, m.Payload = b, b.B
	}
	c.mu.Lock()
	if c.inbox == nil {
		c.inbox = s.inboxes.Get().(*inbox)
	}
	c.inbox.msgs = append(c.inbox.msgs, m)
	// paused is decided under mu together with scheduled: the worker that
	// drains c reads both under mu, so it cannot miss a pause and leave the
	// conn unread forever.
	full := len(c.inbox.msgs)-c.inbox.head >= s.opts.Inbox
	if full {
		c.paused = true
	}
	submit := !c.scheduled
	c.scheduled = true
	c.mu.Unlock()
	if submit && !s.work.push(c) {
		// The pool is saturated: stop reading this conn, unless a worker
		// already took it and finished.
		c.mu.Lock()
		if c.scheduled {
			c.paused, full = true, true
		}
		c.mu.Unlock()
	}
	return full
}

// OnClose implements poller.Session, on the loop.
func (ss *session[T]) OnClose(_ *poller.Conn, code uint16, reason string, cause poller.Cause) {
	c := ss.conn()
	ce := &CloseError{Code: int(code), Reason: reason, Cause: cause.String()}
	s := c.route.srv
	if c.route.inline {
		s.safe(c, func() { c.route.h.OnClose(c, ce) })
		c.done = true
		s.live.Add(-1)
		return
	}
	c.mu.Lock()
	if c.inbox == nil {
		c.inbox = s.inboxes.Get().(*inbox)
	}
	c.inbox.closeErr = ce // delivered after the queued messages
	submit := !c.scheduled
	c.scheduled = true
	c.mu.Unlock()
	if submit {
		s.work.push(c)
	}
}
