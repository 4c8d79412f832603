package server

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// gated is a route whose handler blocks on gate for every message; entered
// gets a value when the first message reaches the handler.
type gated struct {
	gate    chan struct{}
	entered chan struct{}
	handled atomic.Int64
	closed  chan *CloseError
}

func newGated() *gated {
	return &gated{gate: make(chan struct{}), entered: make(chan struct{}, 1), closed: make(chan *CloseError, 16)}
}

func (g *gated) funcs() Funcs[struct{}] {
	return Funcs[struct{}]{
		Message: func(*Conn[struct{}], Message) {
			select {
			case g.entered <- struct{}{}:
			default:
			}
			<-g.gate
			g.handled.Add(1)
		},
		Closed: func(_ *Conn[struct{}], err *CloseError) { g.closed <- err },
	}
}

// serve runs srv on a free port; the caller shuts it down.
func serve[T any](t *testing.T, srv *Server[T]) (addr string, done <-chan error) {
	t.Helper()
	addr = freeAddr(t)
	ch := make(chan error, 1)
	go func() { ch <- srv.ListenAndServe(addr) }()
	select {
	case <-srv.Ready():
	case err := <-ch:
		t.Fatalf("ListenAndServe: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	return addr, ch
}

// Bug: a Shutdown whose deadline passed while a handler ran crashed the
// process ("send on closed channel") when the handler returned and its conn
// still had more than a burst of messages queued.
func TestShutdownDeadlineWhileHandlerRuns(t *testing.T) {
	g := newGated()
	srv := New[struct{}](Options{Workers: 1})
	srv.Handle("/busy", g.funcs())
	addr, done := serve(t, srv)
	c, err := wstest.Dial(addr, "/busy")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = maxBurst + 8
	for i := range n {
		if err := c.WriteMessage(codec.OpBinary, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	recv(t, g.entered, 10*time.Second, "the first message in the handler")
	waitFor(t, 10*time.Second, "every message queued", func() bool { return srv.Stats().MessagesIn == n })

	// The client never answers the 1001: the deadline passes mid-drain.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want the deadline", err)
	}
	close(g.gate)
	// The worker finishes the conn: every queued message, then its close.
	ce := recv(t, g.closed, 10*time.Second, "OnClose after the forced shutdown")
	if got := g.handled.Load(); got != n {
		t.Fatalf("handled %d of %d queued messages before OnClose", got, n)
	}
	if ce.Cause != "shutdown" {
		t.Fatalf("OnClose got %+v", ce)
	}
	if err := recv(t, done, 10*time.Second, "ListenAndServe to return"); err != nil {
		t.Fatalf("ListenAndServe: %v", err)
	}
	waitWorkersExited(t, srv)
}

// Bug: Shutdown after a failed ListenAndServe waited a hard-coded 5 s and
// then crashed ("close of closed channel").
func TestShutdownAfterFailedListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := New[struct{}](Options{})
	srv.Handle("/e", echo[struct{}]())
	if err := srv.ListenAndServe(ln.Addr().String()); err == nil {
		t.Fatal("ListenAndServe on a taken address succeeded")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	begin := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after a failed listen: %v", err)
	}
	if d := time.Since(begin); d > time.Second {
		t.Fatalf("Shutdown with nothing to drain took %v", d)
	}
	waitWorkersExited(t, srv)
}

// Bug: a second concurrent Shutdown returned nil while the first one's
// drain ended in its deadline. Both wait for the same end and return the
// same result.
func TestConcurrentShutdownsShareTheResult(t *testing.T) {
	g := newGated()
	srv := New[struct{}](Options{Workers: 1})
	srv.Handle("/busy", g.funcs())
	addr, done := serve(t, srv)
	c, err := wstest.Dial(addr, "/busy")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(codec.OpText, []byte("block"))
	recv(t, g.entered, 10*time.Second, "the handler")

	short, cancelA := context.WithTimeout(context.Background(), time.Second)
	defer cancelA()
	long, cancelB := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelB()
	a, b := make(chan error, 1), make(chan error, 1)
	go func() { a <- srv.Shutdown(short) }()
	// The first call runs the shutdown with its ctx; once it is draining
	// (the 1001 arrived), a second call with more time waits for that end.
	if code, _, err := c.ExpectClose(); err != nil || code != codec.CloseGoingAway {
		t.Fatalf("close %d %v", code, err)
	}
	go func() { b <- srv.Shutdown(long) }()
	errA := recv(t, a, 10*time.Second, "the first Shutdown")
	errB := recv(t, b, 10*time.Second, "the second Shutdown")
	if !errors.Is(errA, context.DeadlineExceeded) || !errors.Is(errB, context.DeadlineExceeded) {
		t.Fatalf("Shutdown results %v and %v; both must be the drain's deadline", errA, errB)
	}
	close(g.gate)
	recv(t, g.closed, 10*time.Second, "OnClose")
	recv(t, done, 10*time.Second, "ListenAndServe to return")
	waitWorkersExited(t, srv)
}

// Two Shutdowns with time to spare both return only once the drain ended:
// the handler's OnClose ran before either returns.
func TestConcurrentShutdownsWaitForTheDrain(t *testing.T) {
	g := newGated()
	var drained atomic.Bool // OnClose ran: the last event of the drain
	f := g.funcs()
	f.Closed = func(_ *Conn[struct{}], err *CloseError) { drained.Store(true); g.closed <- err }
	srv := New[struct{}](Options{Workers: 1})
	srv.Handle("/busy", f)
	addr, done := serve(t, srv)
	c, err := wstest.Dial(addr, "/busy")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(codec.OpText, []byte("block"))
	recv(t, g.entered, 10*time.Second, "the handler")

	type result struct {
		err     error
		drained bool
	}
	shut := func(ctx context.Context, out chan<- result) {
		err := srv.Shutdown(ctx)
		out <- result{err, drained.Load()}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	watchB := &watchedCtx{Context: ctx, used: make(chan struct{})}
	a, b := make(chan result, 1), make(chan result, 1)
	go shut(ctx, a)
	code, _, err := c.ExpectClose() // the first Shutdown is draining
	if err != nil || code != codec.CloseGoingAway {
		t.Fatalf("close %d %v", code, err)
	}
	go shut(watchB, b)
	select { // the second one is waiting too (it watches its ctx)
	case <-watchB.used:
	case r := <-b:
		t.Fatalf("second Shutdown returned %v while a handler still ran", r.err)
	case <-time.After(10 * time.Second):
		t.Fatal("second Shutdown never looked at its ctx")
	}
	c.WriteRaw(codec.AppendMaskedFrame(nil, codec.OpClose, true, false, [4]byte{}, []byte{0x03, 0xe9}))
	close(g.gate)
	ra := recv(t, a, 10*time.Second, "the first Shutdown")
	rb := recv(t, b, 10*time.Second, "the second Shutdown")
	if ra.err != nil || rb.err != nil || !ra.drained || !rb.drained {
		t.Fatalf("first %+v, second %+v: both must return nil after the drain", ra, rb)
	}
	if ce := recv(t, g.closed, time.Second, "OnClose"); ce.Code != 1001 {
		t.Fatalf("OnClose got %+v", ce)
	}
	recv(t, done, 10*time.Second, "ListenAndServe to return")
}

// watchedCtx reports the first time Shutdown consults it.
type watchedCtx struct {
	context.Context
	used chan struct{}
	once atomic.Bool
}

func (w *watchedCtx) Done() <-chan struct{} {
	if w.once.CompareAndSwap(false, true) {
		close(w.used)
	}
	return w.Context.Done()
}
