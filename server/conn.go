package server

import (
	"math"
	"net/netip"
	"sync"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/poller"
)

// MessageType is a data message's type.
type MessageType = codec.OpCode

// Message types.
const (
	Text   = codec.OpText
	Binary = codec.OpBinary
)

// Message is a received message. Data is valid only during OnMessage: copy
// it to keep it.
type Message struct {
	Type MessageType
	Data []byte
}

// Request is the upgrade request: method, path, query, headers.
type Request = codec.Request

// Prepared is a message encoded once to be sent to many connections.
type Prepared = poller.Prepared

// Conn is one WebSocket connection. Value is the application's state for
// it; the handler's callbacks for one conn never run concurrently, so they
// may use Value without locking (other goroutines must synchronise).
//
// An idle Conn is 56 bytes plus Value: what only some conns need (a query
// string, a subprotocol, queued messages) hangs off pointers that stay nil.
type Conn[T any] struct {
	pc    *poller.Conn
	route *route[T]
	req   *Request
	info  *connInfo // nil when there is no query and no subprotocol
	Value T

	mu        sync.Mutex
	inbox     *inbox // nil when no message is waiting
	scheduled bool   // on the ready queue or being run by a worker
	paused    bool   // we asked the loop to stop reading
	opened    bool   // OnOpen delivered
	done      bool   // OnClose delivered
	failed    bool   // worker-owned: a message failed Inflate; later ones are dropped
}

type connInfo struct{ query, proto string }

// inbox holds a conn's messages waiting for a worker, and its close once
// it closed: both only exist while there is something to deliver.
type inbox struct {
	msgs     []poller.Message
	head     int
	closeErr *CloseError
}

// ID is unique within the server. Safe from any goroutine.
func (c *Conn[T]) ID() uint64 { return c.pc.ID() }

// RemoteAddr is the client's address: the TCP peer's, or for a peer in
// Options.TrustedProxies the client its X-Forwarded-For / X-Real-IP names
// (port 0). Safe from any goroutine.
func (c *Conn[T]) RemoteAddr() netip.AddrPort { return c.pc.RemoteAddr() }

// Path is the request path the conn was routed by. Safe from any goroutine.
func (c *Conn[T]) Path() string { return c.route.path }

// RawQuery is the request's query string, without '?'. Safe from any
// goroutine.
func (c *Conn[T]) RawQuery() string {
	if c.info == nil {
		return ""
	}
	return c.info.query
}

// Request returns the upgrade request (method, path, query, headers)
// during Acceptor.Accept and OnOpen. Afterwards it is nil unless
// Options.KeepHeaders is set: an idle conn should not pay for its headers.
// Call it from the conn's callbacks (it changes after OnOpen).
func (c *Conn[T]) Request() *Request { return c.req }

// Subprotocol is the negotiated subprotocol ("" if none). Safe from any
// goroutine.
func (c *Conn[T]) Subprotocol() string {
	if c.info == nil {
		return ""
	}
	return c.info.proto
}

// Send queues a message; it is written by the event loop. Safe from any
// goroutine. It fails with ErrClosed after the conn started closing and
// with ErrSlowConsumer when the outbound cap was hit.
func (c *Conn[T]) Send(t MessageType, data []byte) error { return c.pc.Send(t, data) }

// SendPrepared queues a message prepared with Server.Prepare, sharing its
// bytes. Safe from any goroutine.
func (c *Conn[T]) SendPrepared(p *Prepared) error { return c.pc.SendPrepared(p) }

// Close sends a close frame with code and reason after what is queued and
// closes the connection when the peer answers (or after CloseTimeout).
// Safe from any goroutine; later calls do nothing.
//
// code must be one RFC 6455 §7.4 lets an endpoint send: 1000–1003,
// 1007–1014 or 3000–4999. Any other code (1004–1006, 1015, below 1000,
// 1016–2999, above 4999) is a programming error: the conn is closed with
// 1011 (internal error) instead and the server logs the bad code.
func (c *Conn[T]) Close(code int, reason string) {
	if code < 0 || code > math.MaxUint16 || !codec.ValidCloseCode(uint16(code)) {
		c.route.srv.log.Error("Conn.Close with an invalid close code: closing with 1011 instead",
			"code", code, "path", c.route.path, "conn", c.ID())
		c.pc.Close(codec.CloseInternalError, "internal error")
		return
	}
	c.pc.Close(uint16(code), reason)
}

// Errors returned by Send.
var (
	ErrClosed       = poller.ErrClosed
	ErrSlowConsumer = poller.ErrSlowConsumer
)
