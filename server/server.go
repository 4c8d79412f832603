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
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"

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
	stream []byte // a streaming route's response head (HandleStream); nil for WebSocket routes
}

// Server is a WebSocket server. Configure it (Handle, HandleHTTP) before
// ListenAndServe; all other methods are safe from any goroutine.
type Server[T any] struct {
	opts   Options
	eng    *poller.Engine
	routes map[string]*route[T]
	log    *slog.Logger

	work     workQueue[T]
	live     atomic.Int64   // conns whose OnClose is not yet delivered
	started  atomic.Bool    // ListenAndServe ran, or Shutdown came first
	served   chan struct{}  // closed when ListenAndServe's engine returned
	stopping atomic.Bool    // the first Shutdown runs the sequence
	stopped  chan struct{}  // closed when that sequence ended
	stopErr  error          // its result, written before stopped closes
	inboxes  sync.Pool      // *inbox
	mux      *http.ServeMux // plain HTTP routes (HandleHTTP)
	httpSem  chan struct{}  // one token per HTTP request in flight
	httpBusy atomic.Int64   // HTTP requests past the shutdown check (http.go)
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
		served: make(chan struct{}), stopped: make(chan struct{})}
	s.work.init(opts.QueueSize)
	s.inboxes.New = func() any { return new(inbox) }
	s.eng = poller.New(engineConfig(opts), (*loopHandler[T])(s))
	return s
}

func engineConfig(opts Options) poller.Config {
	return poller.Config{
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
		MaxAcceptRate:    opts.MaxAcceptRate,
		HandshakeTimeout: opts.HandshakeTimeout,

		MaxPendingHandshakes: opts.MaxPendingHandshakes,
		MessageTimeout:       opts.MessageTimeout,
		TrustedProxies:       opts.TrustedProxies,
		IdleTimeout:          opts.IdleTimeout,
		PingInterval:         opts.PingInterval,
		StreamPing:           opts.StreamPing,

		StreamPingInterval: opts.StreamPingInterval,
		CloseTimeout:       opts.CloseTimeout,
		MaxOutboundBytes:   opts.MaxOutboundBytes,
		SocketSendBuffer:   opts.SocketSendBuffer,
		SocketRecvBuffer:   opts.SocketRecvBuffer,
		MaxMemory:          opts.MaxMemory,
		OffloadBytes:       opts.OffloadBytes,
		ExtraMemory:        opts.ExtraMemory,
		SlowPolicy:         opts.SlowConsumer,
		Loops:              opts.Loops,
		TCPKeepAlive:       opts.TCPKeepAlive,
		Logger:             opts.Logger,
	}
}

// Handle routes upgrade requests for path (exact match) to h. Call before
// ListenAndServe.
func (s *Server[T]) Handle(path string, h Handler[T], opts ...RouteOption) {
	var o routeOpts
	for _, f := range opts {
		f(&o)
	}
	r := &route[T]{srv: s, path: path, h: h, inline: o.inline}
	r.accept, _ = h.(Acceptor[T])
	s.routes[path] = r
}

// Prepare encodes a message once for SendPrepared to many conns. Safe from
// any goroutine.
func (s *Server[T]) Prepare(t MessageType, data []byte) *Prepared { return s.eng.Prepare(t, data) }

// Ready is closed once the server listens. Safe from any goroutine.
func (s *Server[T]) Ready() <-chan struct{} { return s.eng.Ready() }

// MaxConns is the connection cap in force: Options.MaxConns, or the one
// derived from the file limit when that was 0. Read it once Ready is
// closed; then it is safe from any goroutine.
func (s *Server[T]) MaxConns() int { return s.eng.Config().MaxConns }
