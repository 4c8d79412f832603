package server

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/poller"
)

// HandleStream routes plain GET requests for path (exact match) to h as
// streaming responses (Server-Sent Events): the answer is a 200 head with
// contentType, then a body that lasts as long as the connection, written
// with Conn.WriteStream. Such a conn is held by the event loop like a
// WebSocket one (no goroutine each) and obeys the same outbound cap,
// slow-consumer policy, Close and shutdown; input after the request is
// discarded. h's Acceptor (if any) vets the request on the loop, as for an
// upgrade; OnOpen and OnClose are called as for a WebSocket conn, OnMessage
// never. Streams take a MaxAcceptRate token as upgrades do (past it: 503
// with Retry-After, before the Acceptor). Silent streams get
// Options.StreamPing every Options.StreamPingInterval. Call before
// ListenAndServe.
func (s *Server[T]) HandleStream(path, contentType string, h Handler[T], opts ...RouteOption) {
	var o routeOpts
	for _, f := range opts {
		f(&o)
	}
	head := fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Type: %s\r\nCache-Control: no-cache\r\n"+
		"Connection: close\r\nX-Accel-Buffering: no\r\n\r\n", headerSafe.Replace(contentType))
	r := &route[T]{srv: s, path: path, h: h, inline: o.inline, stream: []byte(head)}
	r.accept, _ = h.(Acceptor[T])
	s.routes[path] = r
}

// WriteStream queues own (copied) then shared (not copied, never to be
// modified: a Prepared's Alt encoding, say) on a streaming response, as one
// unit that the outbound cap admits or refuses whole. Safe from any
// goroutine. It fails with ErrNotStream on a WebSocket conn, and as Send
// does otherwise.
func (c *Conn[T]) WriteStream(own, shared []byte) error { return c.pc.WriteStream(own, shared) }

// IsStream reports whether the conn is a streaming response (HandleStream).
// Safe from any goroutine.
func (c *Conn[T]) IsStream() bool { return c.route.stream != nil }

// Errors about the kind of conn: frames on a stream, raw bytes on a
// WebSocket conn.
var (
	ErrNotStream  = poller.ErrNotStream
	ErrStreamConn = poller.ErrStreamConn
)

// serveStream answers a plain request for a stream route, on the loop.
func (h *loopHandler[T]) serveStream(pc *poller.Conn, r *route[T], req *codec.Request) {
	s := h.server()
	if req.Method != "GET" {
		pc.ReplyHTTP(codec.AppendHTTPError(nil, &codec.HTTPError{Status: 405, Reason: "a stream is read with GET",
			Header: []codec.HeaderField{{Name: "Allow", Value: "GET"}}}), false)
		return
	}
	if !pc.AdmitStream() { // MaxAcceptRate: 503 with Retry-After, before the Acceptor's work
		return
	}
	c := &Conn[T]{pc: pc, route: r, req: req}
	if req.RawQuery != "" {
		c.info = &connInfo{query: strings.Clone(req.RawQuery)}
	}
	if r.accept != nil {
		if err := s.safeAccept(r, c, req); err != nil {
			var he *codec.HTTPError
			if !errors.As(err, &he) {
				he = &codec.HTTPError{Status: 403, Reason: err.Error()}
			}
			pc.ReplyHTTP(codec.AppendHTTPError(nil, he), false)
			return
		}
	}
	s.live.Add(1)
	pc.StartStream(r.stream, (*session[T])(c))
	s.open(c, r)
}
