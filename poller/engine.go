package poller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"
	"github.com/panjf2000/gnet/v2/pkg/logging"

	"github.com/wsdhq/wsd/codec"
)

// Handler decides on upgrades. It runs on the loop and must not block.
type Handler interface {
	// Upgrade is called once the request passed the RFC 6455 checks and the
	// negotiation (a says what was agreed; the handler may clear a.Protocol
	// or set it to another offered one; a is valid only during the call). It
	// returns the connection's Session, or an HTTP answer that refuses the
	// upgrade (404, 401, ...).
	Upgrade(c *Conn, req *codec.Request, a *codec.Accept) (Session, *codec.HTTPError)
}

// HTTPHandler is implemented by Handlers that also answer plain HTTP
// requests (no Upgrade header) on the same port: health checks, metrics, an
// API. ServeHTTP runs on the loop and must not block: it hands the request
// off and answers later with c.ReplyHTTP, after which a kept-alive conn may
// bring the next request. body is the request body (a copy).
type HTTPHandler interface {
	ServeHTTP(c *Conn, req *codec.Request, body []byte)
}

// Session receives one connection's events, on its loop, in order.
type Session interface {
	// OnMessage gets each complete message. m.Payload is valid only during
	// the call unless m.Buf is set, in which case the Session owns m.Buf
	// and returns it with Engine.Buffers().Put. Returning true pauses reads
	// on this conn until Conn.Resume.
	OnMessage(c *Conn, m Message) (pause bool)
	// OnClose is the last call for the conn, exactly once.
	OnClose(c *Conn, code uint16, reason string, cause Cause)
}

// Offloader is implemented by Sessions that finish big compressed messages
// off the event loop. When Offload reports true, a compressed message whose
// compressed size, or inflated size, passes Config.OffloadBytes is
// delivered raw (Message.Compressed, the loop inflated at most OffloadBytes
// of it) and the Session must pass it to Conn.Inflate, which a worker
// calls. Conns with context takeover are always inflated on the loop.
type Offloader interface {
	Offload() bool
}

// Message is one complete, validated (and inflated) message, or a raw
// compressed one for Conn.Inflate when Compressed is set (see Offloader).
type Message struct {
	Op         codec.OpCode
	Compressed bool // Payload is still compressed and unvalidated: Conn.Inflate it
	Payload    []byte
	Buf        *Buf // owner of Payload's bytes when they outlive the call
}

// Stats are the engine's counters. Safe to read from any goroutine.
type Stats struct {
	Conns         atomic.Int64
	Accepted      atomic.Uint64
	Upgraded      atomic.Uint64
	Rejected      atomic.Uint64 // HTTP answers instead of 101
	MessagesIn    atomic.Uint64
	MessagesOut   atomic.Uint64
	BytesIn       atomic.Uint64
	BytesOut      atomic.Uint64
	SlowConsumers atomic.Uint64
	Streams       atomic.Uint64 // streaming responses started (StartStream)
	Offloaded     atomic.Uint64 // compressed messages handed raw to a worker (Offloader)
	Closes        [NumCauses]atomic.Uint64
}

func (s *Stats) count(c Cause) { s.Closes[c].Add(1) }

// Engine runs the event loops. Create with New, run with Serve.
type Engine struct {
	cfg      Config
	h        Handler
	bufs     Buffers
	stats    Stats
	start    time.Time
	log      *slog.Logger
	nextID   atomic.Uint64
	draining atomic.Bool
	overCap  []byte // the 503 answer, built once
	overIP   []byte // the 429 answer, built once
	memFull  *codec.HTTPError
	mem      memBudget
	pacer    *acceptPacer // nil without MaxAcceptRate
	pending  atomic.Int64 // conns in their first handshake (MaxPendingHandshakes)

	ipMu  sync.Mutex
	perIP map[netip.Addr]int32 // live conns per remote address (MaxConnsPerIP > 0 only)

	mu     sync.Mutex
	loops  map[gnet.EventLoop]*loop
	gnet   gnet.Engine
	booted chan struct{}
}

// New returns an engine; cfg's zero fields take their defaults.
func New(cfg Config, h Handler) *Engine {
	cfg.setDefaults()
	e := &Engine{cfg: cfg, h: h, start: time.Now(), log: cfg.Logger,
		loops: map[gnet.EventLoop]*loop{}, booted: make(chan struct{})}
	e.overCap = codec.AppendHTTPError(nil, &codec.HTTPError{Status: 503, Reason: "server at connection capacity",
		Header: []codec.HeaderField{{Name: "Retry-After", Value: "1"}}})
	e.overIP = codec.AppendHTTPError(nil, &codec.HTTPError{Status: 429, Reason: "too many connections from this address",
		Header: []codec.HeaderField{{Name: "Retry-After", Value: "5"}}})
	e.memFull = &codec.HTTPError{Status: 503, Reason: "server memory budget near full",
		Header: []codec.HeaderField{{Name: "Retry-After", Value: "5"}}}
	e.mem.init(cfg.MaxMemory)
	if cfg.MaxConnsPerIP > 0 {
		e.perIP = map[netip.Addr]int32{}
	}
	if cfg.MaxAcceptRate > 0 {
		e.pacer = newAcceptPacer(cfg.MaxAcceptRate)
	}
	return e
}

// Config returns the effective configuration (defaults filled in).
func (e *Engine) Config() *Config { return &e.cfg }

// Stats returns the live counters. Safe from any goroutine.
func (e *Engine) Stats() *Stats { return &e.stats }

// Buffers is the pool Session code returns Message.Buf to.
func (e *Engine) Buffers() *Buffers { return &e.bufs }

func (e *Engine) clock() uint32 { return uint32(time.Since(e.start) / time.Second) }

// nanotime is monotonic nanoseconds since New.
func (e *Engine) nanotime() int64 { return int64(time.Since(e.start)) }

// Serve listens on addr ("host:port") and runs until Shutdown. It blocks.
func (e *Engine) Serve(addr string) error {
	if err := portFree(addr); err != nil {
		return err
	}
	// Every connection is a descriptor: take all the kernel allows.
	limit, err := RaiseFileLimit()
	if err != nil {
		e.log.Warn("could not raise RLIMIT_NOFILE to its hard limit", "err", err)
	}
	loops := e.cfg.Loops
	if loops <= 0 {
		loops = runtime.GOMAXPROCS(0)
	}
	e.fitMaxConns(limit, loops)
	e.log.Info("connection capacity", "file_limit", limit, "loops", loops, "max_conns", e.cfg.MaxConns)
	opts := []gnet.Option{
		gnet.WithMulticore(true),
		gnet.WithNumEventLoop(loops),
		// One listener per loop and one accept per readiness event: the
		// over-capacity check in OnOpen then runs between two accepts, so
		// descriptors never run out under an accept burst (EMFILE would
		// stop the whole gnet engine; see DefaultMaxConns).
		gnet.WithReusePort(true),
		// A restarted wsd must bind while the old one's sockets sit in
		// TIME_WAIT.
		gnet.WithReuseAddr(true),
		gnet.WithTicker(true),
		gnet.WithTCPNoDelay(gnet.TCPNoDelay),
		gnet.WithLogger(slogAdapter{e.log}),
		gnet.WithLogLevel(logging.ErrorLevel),
	}
	if e.cfg.ReadBufferCap > 0 {
		opts = append(opts, gnet.WithReadBufferCap(e.cfg.ReadBufferCap))
	}
	if e.cfg.TCPKeepAlive > 0 {
		opts = append(opts, gnet.WithTCPKeepAlive(e.cfg.TCPKeepAlive))
	}
	// gnet sets these on the listeners only; accepted sockets inherit
	// them (and the lock that stops autotuning) from their listener.
	if e.cfg.SocketSendBuffer > 0 {
		opts = append(opts, gnet.WithSocketSendBuffer(e.cfg.SocketSendBuffer))
	}
	if e.cfg.SocketRecvBuffer > 0 {
		opts = append(opts, gnet.WithSocketRecvBuffer(e.cfg.SocketRecvBuffer))
	}
	return gnet.Run(e, "tcp://"+addr, opts...)
}

// portFree fails when addr is taken. gnet binds with SO_REUSEPORT (one
// listener per loop), and the kernel lets sockets of one user that all
// set it share a port: a second wsd started on a busy port would get part
// of the first one's connections instead of an error. A plain bind (no
// SO_REUSEPORT; Go sets SO_REUSEADDR, so TIME_WAIT leftovers of a
// restarted wsd do not count) conflicts with any listener.
func portFree(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ln.Close()
}

// fitMaxConns sets MaxConns to what limit descriptors hold when it is unset
// or above that: an accept that fails for lack of descriptors would stop
// the engine, not just refuse one conn.
func (e *Engine) fitMaxConns(limit uint64, loops int) {
	fit := DefaultMaxConns(limit, loops)
	switch {
	case e.cfg.MaxConns <= 0:
		e.cfg.MaxConns = fit
	case e.cfg.MaxConns > fit:
		e.log.Warn("MaxConns lowered to what the file limit allows",
			"asked", e.cfg.MaxConns, "max_conns", fit, "file_limit", limit, "loops", loops)
		e.cfg.MaxConns = fit
	}
}

// Ready is closed once the listeners are up.
func (e *Engine) Ready() <-chan struct{} { return e.booted }

// OnBoot implements gnet.EventHandler.
func (e *Engine) OnBoot(eng gnet.Engine) gnet.Action {
	e.mu.Lock()
	e.gnet = eng
	e.mu.Unlock()
	close(e.booted)
	return gnet.None
}

// OnShutdown implements gnet.EventHandler.
func (e *Engine) OnShutdown(gnet.Engine) {}

// StopAccepting makes every new connection get 503 from now on. Safe from
// any goroutine.
func (e *Engine) StopAccepting() { e.draining.Store(true) }

// CloseAll starts the closing handshake on every open conn, after what is
// queued for it, and drops conns still in the handshake or idle between
// HTTP requests (one being answered closes after its answer). Safe from any
// goroutine.
func (e *Engine) CloseAll(code uint16, reason string) {
	e.CloseEach(code, func(*Conn) string { return reason })
}

// CloseEach is CloseAll with a reason chosen per conn (a retry hint of its
// own, say): reason runs on the conn's loop, once per open conn, and must
// not block. Safe from any goroutine.
func (e *Engine) CloseEach(code uint16, reason func(*Conn) string) {
	for _, l := range e.loopList() {
		_ = l.gl.Execute(context.Background(), runFunc(func() {
			for i := len(l.conns) - 1; i >= 0; i-- {
				c := l.conns[i]
				switch c.state {
				case stateHandshake, stateHTTPIdle:
					c.closeCause, c.state = CauseShutdown, stateClosed
					_ = c.gc.Close()
				case stateOpen, stateStream:
					text := reason(c)
					c.mu.Lock()
					c.closeLocked(code, text, CauseShutdown)
					c.mu.Unlock()
				}
			}
		}))
	}
}

// Stop stops the loops, closing whatever is still open. Once booted, the
// stop always begins, even with ctx already ended; ctx only bounds the wait
// for it to finish. Safe from any goroutine; Serve returns afterwards.
func (e *Engine) Stop(ctx context.Context) error {
	select {
	case <-e.booted:
	default:
		// Booted takes precedence over an ended ctx: a stop asked with no
		// time left must still begin.
		select {
		case <-e.booted:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	e.mu.Lock()
	g := e.gnet
	e.mu.Unlock()
	err := g.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

func (e *Engine) loopList() []*loop {
	e.mu.Lock()
	defer e.mu.Unlock()
	ls := make([]*loop, 0, len(e.loops))
	for _, l := range e.loops {
		ls = append(ls, l)
	}
	return ls
}

func (e *Engine) loopOf(gc gnet.Conn) *loop {
	gl := gc.EventLoop()
	e.mu.Lock()
	defer e.mu.Unlock()
	l := e.loops[gl]
	if l == nil {
		l = &loop{eng: e, gl: gl}
		e.loops[gl] = l
	}
	return l
}

// OnOpen implements gnet.EventHandler: a TCP connection was accepted.
func (e *Engine) OnOpen(gc gnet.Conn) ([]byte, gnet.Action) {
	e.stats.Accepted.Add(1)
	if e.draining.Load() || !e.admit() {
		e.stats.count(CauseOverCapacity)
		return e.overCap, gnet.Close
	}
	if !e.admitPending() {
		e.stats.Conns.Add(-1)
		e.stats.count(CauseHandshakeCap)
		return e.overCap, gnet.Close
	}
	remote, _ := gc.RemoteAddr().(*net.TCPAddr)
	adm := admPending
	if remote != nil && len(e.cfg.TrustedProxies) > 0 && e.trustedPeer(remote.AddrPort().Addr()) {
		// Its clients are counted once its request names them.
		adm |= admViaProxy
	} else if e.perIP != nil && remote != nil {
		if !e.admitIP(remote) {
			e.pending.Add(-1)
			e.stats.Conns.Add(-1)
			e.stats.count(CausePerIPLimit)
			return e.overIP, gnet.Close
		}
		adm |= admIPCounted
	}
	c := &Conn{gc: gc, id: e.nextID.Add(1), since: e.clock(), remote: remote, adm: adm}
	c.rd.Limits = &e.cfg.Limits
	c.loop = e.loopOf(gc)
	c.loop.add(c)
	gc.SetContext(c)
	return nil, gnet.None
}

// admit counts a conn against MaxConns if there is room, in one step:
// loops run OnOpen in parallel, and with a separate check and increment
// each of them could take the last free place, overshooting the cap (and
// the descriptors reserved under it) by up to loops−1. The CAS retries only
// when another loop changed the count in between.
func (e *Engine) admit() bool {
	limit := int64(e.cfg.MaxConns)
	for {
		n := e.stats.Conns.Load()
		if n >= limit {
			return false
		}
		if e.stats.Conns.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// admitPending counts a conn against MaxPendingHandshakes, in one step for
// the reason admit gives.
func (e *Engine) admitPending() bool {
	limit := int64(e.cfg.MaxPendingHandshakes)
	if limit <= 0 {
		e.pending.Add(1)
		return true
	}
	for {
		n := e.pending.Load()
		if n >= limit {
			return false
		}
		if e.pending.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// PendingHandshakes is the number of conns accepted whose first request is
// not complete yet. Safe from any goroutine.
func (e *Engine) PendingHandshakes() int64 { return e.pending.Load() }

// admitIP counts a conn against its address's limit.
func (e *Engine) admitIP(a *net.TCPAddr) bool {
	ip, _ := netip.AddrFromSlice(a.IP)
	ip = ip.Unmap()
	e.ipMu.Lock()
	defer e.ipMu.Unlock()
	if int(e.perIP[ip]) >= e.cfg.MaxConnsPerIP {
		return false
	}
	e.perIP[ip]++
	return true
}

func (e *Engine) releaseIP(a *net.TCPAddr) {
	ip, _ := netip.AddrFromSlice(a.IP)
	ip = ip.Unmap()
	e.ipMu.Lock()
	if n := e.perIP[ip] - 1; n > 0 {
		e.perIP[ip] = n
	} else {
		delete(e.perIP, ip)
	}
	e.ipMu.Unlock()
}

// OnClose implements gnet.EventHandler.
func (e *Engine) OnClose(gc gnet.Conn, _ error) gnet.Action {
	c, _ := gc.Context().(*Conn)
	if c == nil {
		return gnet.None
	}
	gc.SetContext(nil)
	e.stats.Conns.Add(-1)
	e.leaveHandshake(c)
	if c.adm&admIPCounted != 0 {
		e.releaseIP(c.remote)
	}
	c.loop.remove(c)
	wasOpen := c.session != nil
	c.state = stateClosed
	c.mu.Lock()
	c.closeOut = true
	out := c.out
	c.out = nil
	c.mu.Unlock()
	e.bufs.Put(out)
	e.bufs.Put(c.msg)
	c.msg = nil
	e.unaccount(c)
	if c.flate != nil {
		c.flate.Release()
	}
	code, cause := c.closeCode, c.closeCause
	if code == 0 {
		code = codec.CloseAbnormal
	}
	e.stats.count(cause)
	if wasOpen {
		func() {
			defer e.recoverPanic(c, "OnClose")
			c.session.OnClose(c, code, c.closeReason(), cause)
		}()
	}
	return gnet.None
}

// OnTick implements gnet.EventHandler: the once-a-second sweep on each loop.
func (e *Engine) OnTick() (time.Duration, gnet.Action) {
	e.pollExtra()
	for _, l := range e.loopList() {
		_ = l.gl.Execute(context.Background(), runFunc(l.sweep))
	}
	return time.Second, gnet.None
}

func (e *Engine) recoverPanic(c *Conn, where string) {
	if r := recover(); r != nil {
		buf := make([]byte, 4096)
		buf = buf[:runtime.Stack(buf, false)]
		e.log.Error("handler panic", "where", where, "conn", c.id, "panic", fmt.Sprint(r), "stack", string(buf))
		if c.state != stateClosed {
			c.loop.fail(c, codec.CloseInternalError, "internal error", CausePanic)
		}
	}
}

type runFunc func()

func (f runFunc) Run(context.Context) error { f(); return nil }

// slogAdapter routes gnet's logs to slog.
type slogAdapter struct{ l *slog.Logger }

func (a slogAdapter) Debugf(f string, v ...any) { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Infof(f string, v ...any)  { a.l.Debug(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Warnf(f string, v ...any)  { a.l.Warn(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Errorf(f string, v ...any) { a.l.Error(fmt.Sprintf(f, v...)) }
func (a slogAdapter) Fatalf(f string, v ...any) { a.l.Error(fmt.Sprintf(f, v...)) }
