// Package server is wsd's embeddable WebSocket server: routes, handlers,
// a bounded worker pool that keeps each connection's messages in order, and
// graceful shutdown, on top of the poller's event loops.
//
//	srv := server.New[struct{}](server.Options{})
//	srv.Handle("/echo", server.Funcs[struct{}]{
//		Message: func(c *server.Conn[struct{}], m server.Message) { c.Send(m.Type, m.Data) },
//	})
//	log.Fatal(srv.ListenAndServe("127.0.0.1:8080"))
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/poller"
)

// Handler handles the connections of a route. OnOpen, OnMessage and OnClose
// for one conn are called in that order and never concurrently; different
// conns run in parallel on the worker pool (or on the event loop, for
// routes registered with Inline).
type Handler[T any] interface {
	OnOpen(c *Conn[T])
	OnMessage(c *Conn[T], m Message)
	OnClose(c *Conn[T], err *CloseError)
}

// Acceptor is implemented by handlers that vet the upgrade request before
// the 101 answer (auth, rate limits). It runs on the event loop: it must
// not block. A non-nil error refuses the upgrade: a *HTTPError with its
// status, any other error with 403.
type Acceptor[T any] interface {
	Accept(c *Conn[T], r *Request) error
}

// Funcs adapts functions to a Handler; nil fields do nothing.
type Funcs[T any] struct {
	Open    func(c *Conn[T])
	Message func(c *Conn[T], m Message)
	Closed  func(c *Conn[T], err *CloseError)
}

// OnOpen implements Handler.
func (f Funcs[T]) OnOpen(c *Conn[T]) {
	if f.Open != nil {
		f.Open(c)
	}
}

// OnMessage implements Handler.
func (f Funcs[T]) OnMessage(c *Conn[T], m Message) {
	if f.Message != nil {
		f.Message(c, m)
	}
}

// OnClose implements Handler.
func (f Funcs[T]) OnClose(c *Conn[T], err *CloseError) {
	if f.Closed != nil {
		f.Closed(c, err)
	}
}

// RouteOption changes how a route runs its handler.
type RouteOption func(*routeOpts)

type routeOpts struct{ inline bool }

// Inline runs the route's handler on the event loop itself: no copy, no
// hand-off, lowest latency — for handlers that never block (echo,
// in-memory fan-out). A blocking inline handler stalls every conn of its
// loop.
func Inline() RouteOption { return func(o *routeOpts) { o.inline = true } }

type route[T any] struct {
	srv    *Server[T]
	path   string
	h      Handler[T]
	accept Acceptor[T]
	inline bool
}

// Server is a WebSocket server. Configure it (Handle) before Serve; all
// other methods are safe from any goroutine.
type Server[T any] struct {
	opts   Options
	eng    *poller.Engine
	routes map[string]*route[T]
	log    *slog.Logger

	ready    chan *Conn[T]
	ovMu     sync.Mutex
	overflow []*Conn[T]
	workers  sync.WaitGroup
	live     atomic.Int64 // conns whose OnClose is not yet delivered
	started  atomic.Bool
	stopOnce sync.Once
	served   chan struct{}
	inboxes  sync.Pool      // *inbox
	mux      *http.ServeMux // plain HTTP routes (HandleHTTP)
	httpSem  chan struct{}
	httpWG   sync.WaitGroup
}

// New returns a server with opts (zero values take their defaults).
func New[T any](opts Options) *Server[T] {
	if opts.Workers <= 0 {
		opts.Workers = 4 * runtime.GOMAXPROCS(0)
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = 1024
	}
	if opts.Inbox <= 0 {
		opts.Inbox = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server[T]{opts: opts, routes: map[string]*route[T]{}, log: opts.Logger,
		ready: make(chan *Conn[T], opts.QueueSize), served: make(chan struct{})}
	s.inboxes.New = func() any { return new(inbox) }
	cfg := poller.Config{
		Upgrader: codec.Upgrader{
			MaxHeaderBytes: opts.MaxHandshakeBytes,
			Protocols:      opts.Subprotocols,
			CheckOrigin:    opts.CheckOrigin,
			Deflate: codec.DeflateConfig{Enabled: opts.Compression, ContextTakeover: opts.ContextTakeover,
				Level: opts.CompressionLevel, Threshold: opts.CompressThreshold},
		},
		Limits:           codec.Limits{MaxFrame: opts.MaxFrameBytes, MaxMessage: opts.MaxMessageBytes},
		MaxConns:         opts.MaxConns,
		MaxConnsPerIP:    opts.MaxConnsPerIP,
		HandshakeTimeout: opts.HandshakeTimeout,
		IdleTimeout:      opts.IdleTimeout,
		PingInterval:     opts.PingInterval,
		CloseTimeout:     opts.CloseTimeout,
		MaxOutboundBytes: opts.MaxOutboundBytes,
		SlowPolicy:       opts.SlowConsumer,
		Loops:            opts.Loops,
		TCPKeepAlive:     opts.TCPKeepAlive,
		Logger:           opts.Logger,
	}
	s.eng = poller.New(cfg, s)
	return s
}

// Handle routes upgrade requests for path (exact match) to h.
func (s *Server[T]) Handle(path string, h Handler[T], opts ...RouteOption) {
	var o routeOpts
	for _, f := range opts {
		f(&o)
	}
	r := &route[T]{srv: s, path: path, h: h, inline: o.inline}
	r.accept, _ = h.(Acceptor[T])
	s.routes[path] = r
}

// Engine exposes the event loops' counters and configuration.
func (s *Server[T]) Engine() *poller.Engine { return s.eng }

// QueueDepth is how many conns wait for a worker (queue plus overflow).
// Safe from any goroutine.
func (s *Server[T]) QueueDepth() int {
	s.ovMu.Lock()
	n := len(s.overflow)
	s.ovMu.Unlock()
	return len(s.ready) + n
}

// Prepare encodes a message once for SendPrepared to many conns.
func (s *Server[T]) Prepare(t MessageType, data []byte) *Prepared { return s.eng.Prepare(t, data) }

// ListenAndServe listens on addr and serves until Shutdown. It returns nil
// after a Shutdown.
func (s *Server[T]) ListenAndServe(addr string) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("server: already started")
	}
	for range s.opts.Workers {
		s.workers.Add(1)
		go s.worker()
	}
	defer close(s.served)
	err := s.eng.Serve(addr)
	if err != nil {
		s.stopWorkers()
	}
	return err
}

// Ready is closed once the server listens.
func (s *Server[T]) Ready() <-chan struct{} { return s.eng.Ready() }

// Shutdown stops accepting (new conns get 503), lets queued messages reach
// their handlers, sends 1001 to every conn after its queued output, waits
// for the peers' close replies, and stops. When ctx ends first, whatever is
// still open is closed at once. Safe from any goroutine.
func (s *Server[T]) Shutdown(ctx context.Context) error {
	var err error
	s.stopOnce.Do(func() {
		s.eng.StopAccepting()
		s.eng.CloseAll(codec.CloseGoingAway, "server shutting down")
		for s.eng.Stats().Conns.Load() > 0 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		stopCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = s.eng.Stop(stopCtx)
		cancel()
		if s.started.Load() {
			<-s.served
		}
		for s.live.Load() > 0 && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		if ctx.Err() != nil {
			// Handlers still running past the deadline cannot be stopped;
			// let the workers exit when they return.
			close(s.ready)
			err = ctx.Err()
			return
		}
		s.httpWG.Wait()
		s.stopWorkers()
	})
	return err
}

func (s *Server[T]) stopWorkers() {
	close(s.ready)
	s.workers.Wait()
}

// Upgrade implements poller.Handler: routing and the Acceptor hook.
func (s *Server[T]) Upgrade(pc *poller.Conn, req *codec.Request, a *codec.Accept) (poller.Session, *codec.HTTPError) {
	r := s.routes[req.Path]
	if r == nil {
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
	if r.inline {
		s.safe(c, func() { r.h.OnOpen(c) })
		c.opened = true
		c.dropHeaders()
	} else {
		c.mu.Lock()
		c.scheduled = true
		c.mu.Unlock()
		s.submit(c)
	}
	return c, nil
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

// OnMessage implements poller.Session, on the loop.
func (c *Conn[T]) OnMessage(_ *poller.Conn, m poller.Message) bool {
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
	if submit && !s.submit(c) {
		// The pool is saturated: stop reading this conn, unless a worker
		// already took it from the overflow list and finished.
		c.mu.Lock()
		if c.scheduled {
			c.paused, full = true, true
		}
		c.mu.Unlock()
	}
	return full
}

// OnClose implements poller.Session, on the loop.
func (c *Conn[T]) OnClose(_ *poller.Conn, code uint16, reason string, cause poller.Cause) {
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
		s.submit(c)
	}
}

// submit hands c to the pool. It reports false when the queue was full and
// c went to the overflow list (the caller then pauses c's reads).
func (s *Server[T]) submit(c *Conn[T]) bool {
	select {
	case s.ready <- c:
		return true
	default:
		s.ovMu.Lock()
		s.overflow = append(s.overflow, c)
		s.ovMu.Unlock()
		return false
	}
}

func (s *Server[T]) popOverflow() *Conn[T] {
	s.ovMu.Lock()
	defer s.ovMu.Unlock()
	if len(s.overflow) == 0 {
		return nil
	}
	c := s.overflow[0]
	s.overflow[0] = nil
	s.overflow = s.overflow[1:]
	return c
}

func (s *Server[T]) worker() {
	defer s.workers.Done()
	for c := range s.ready {
		s.run(c)
		for oc := s.popOverflow(); oc != nil; oc = s.popOverflow() {
			s.run(oc)
		}
	}
}

// maxBurst bounds how many messages of one conn a worker handles before it
// lets other conns have a turn.
const maxBurst = 32

// run delivers c's pending events in order: open, messages, close.
func (s *Server[T]) run(c *Conn[T]) {
	h := c.route.h
	if !c.opened {
		s.safe(c, func() { h.OnOpen(c) })
		c.opened = true
		c.dropHeaders()
	}
	for i := 0; ; i++ {
		c.mu.Lock()
		if q := c.inbox; q == nil || q.head == len(q.msgs) {
			var ce *CloseError
			if q != nil {
				ce = q.closeErr
			}
			if ce == nil || c.done {
				if q != nil {
					// Idle conns hold no queue: it goes back to the pool.
					q.msgs, q.head, q.closeErr = q.msgs[:0], 0, nil
					if cap(q.msgs) <= 64 {
						s.inboxes.Put(q)
					}
					c.inbox = nil
				}
				c.scheduled = false
				resume := c.paused
				c.paused = false
				c.mu.Unlock()
				if resume {
					c.pc.Resume()
				}
				return
			}
			c.done = true
			c.mu.Unlock()
			s.safe(c, func() { h.OnClose(c, ce) })
			s.live.Add(-1)
			continue
		}
		if i == maxBurst {
			c.mu.Unlock()
			s.submit(c) // queue or overflow list: a worker picks it up again
			return
		}
		q := c.inbox
		m := q.msgs[q.head]
		q.msgs[q.head] = poller.Message{}
		q.head++
		c.mu.Unlock()
		s.safe(c, func() { h.OnMessage(c, Message{Type: m.Op, Data: m.Payload}) })
		s.eng.Buffers().Put(m.Buf)
	}
}

// safe runs f, turning a panic into a log line and a 1011 close of this
// conn only.
func (s *Server[T]) safe(c *Conn[T], f func()) {
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			s.log.Error("handler panicked", "path", c.route.path, "conn", c.ID(), "panic", fmt.Sprint(p), "stack", string(buf))
			c.pc.CloseWith(codec.CloseInternalError, "internal error", poller.CausePanic)
		}
	}()
	f()
}
