package server

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
	"github.com/wsdhq/wsd/poller"
)

func echo[T any]() Funcs[T] {
	return Funcs[T]{Message: func(c *Conn[T], m Message) { _ = c.Send(m.Type, m.Data) }}
}

func TestEchoInlineAndWorker(t *testing.T) {
	srv := New[struct{}](Options{Compression: true})
	srv.Handle("/inline", echo[struct{}](), Inline())
	srv.Handle("/worker", echo[struct{}]())
	addr := start(t, srv)
	for _, path := range []string{"/inline", "/worker"} {
		t.Run(path, func(t *testing.T) {
			c, err := wstest.Dial(addr, path)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			big := bytes.Repeat([]byte("0123456789"), 100_000)
			msgs := []struct {
				op codec.OpCode
				p  []byte
			}{{codec.OpText, []byte("hello")}, {codec.OpBinary, []byte{0, 1, 2}}, {codec.OpText, nil}, {codec.OpBinary, big}}
			for _, m := range msgs {
				if err := c.WriteMessage(m.op, m.p); err != nil {
					t.Fatal(err)
				}
				f, err := c.ReadData()
				if err != nil || f.Op != m.op || !bytes.Equal(f.Payload, m.p) {
					t.Fatalf("echo of %d bytes: op=%v len=%d err=%v", len(m.p), f.Op, len(f.Payload), err)
				}
			}
			// Fragmented with a ping in the middle.
			c.WriteFrame(codec.OpText, false, []byte("frag"))
			c.WriteFrame(codec.OpPing, true, []byte("p1"))
			c.WriteFrame(codec.OpContinuation, true, []byte("ment"))
			f, _ := c.Read()
			if f.Op != codec.OpPong || string(f.Payload) != "p1" {
				t.Fatalf("pong: %+v", f)
			}
			f, _ = c.ReadData()
			if string(f.Payload) != "fragment" {
				t.Fatalf("fragmented echo: %q", f.Payload)
			}
		})
	}
}

// Each conn's messages reach the handler in order even though conns run
// in parallel on the pool.
func TestPerConnOrder(t *testing.T) {
	type state struct{ next int }
	var bad atomic.Int32
	srv := New[state](Options{Workers: 4})
	srv.Handle("/seq", Funcs[state]{Message: func(c *Conn[state], m Message) {
		var n int
		fmt.Sscan(string(m.Data), &n)
		if n != c.Value.next {
			bad.Add(1)
		}
		c.Value.next++
		if n%100 == 99 {
			_ = c.Send(Text, m.Data)
		}
	}})
	addr := start(t, srv)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := wstest.Dial(addr, "/seq")
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			for i := range 1000 {
				c.WriteMessage(codec.OpText, []byte(itoa(i)))
			}
			for i := 99; i < 1000; i += 100 {
				f, err := c.ReadData()
				if err != nil || string(f.Payload) != itoa(i) {
					t.Errorf("ack %d: %q %v", i, f.Payload, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d messages out of order", bad.Load())
	}
}

// A saturated pool pauses reads instead of growing: goroutines stay at the
// pool size, and every message arrives once the handler unblocks.
func TestBackpressurePausesReads(t *testing.T) {
	gate := make(chan struct{})
	var openGate sync.Once
	defer openGate.Do(func() { close(gate) })
	var got atomic.Int64
	type count struct{ n int }
	srv := New[count](Options{Workers: 2, QueueSize: 1, Inbox: 2})
	srv.Handle("/slow", Funcs[count]{Message: func(c *Conn[count], m Message) {
		<-gate
		got.Add(1)
		if c.Value.n++; c.Value.n == 50 {
			_ = c.Send(Text, []byte("ok"))
		}
	}})
	addr := start(t, srv)
	var clients []*wstest.Client
	for range 10 {
		c, err := wstest.Dial(addr, "/slow")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	time.Sleep(100 * time.Millisecond)
	before := runtime.NumGoroutine()
	for _, c := range clients {
		for range 50 {
			c.WriteMessage(codec.OpBinary, make([]byte, 100))
		}
	}
	time.Sleep(300 * time.Millisecond)
	if g := runtime.NumGoroutine(); g > before+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines grew from %d to %d under backpressure:\n%s", before, g, buf[:runtime.Stack(buf, true)])
	}
	if got.Load() != 0 {
		t.Fatal("handler ran through the gate")
	}
	openGate.Do(func() { close(gate) })
	for _, c := range clients {
		if _, err := c.ReadData(); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for got.Load() < 500 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got.Load() != 500 {
		t.Fatalf("delivered %d of 500", got.Load())
	}
}

func TestHandlerPanicClosesOnlyThatConn(t *testing.T) {
	for _, inline := range []bool{false, true} {
		t.Run(fmt.Sprint("inline=", inline), func(t *testing.T) {
			srv := New[struct{}](Options{})
			var ro []RouteOption
			if inline {
				ro = append(ro, Inline())
			}
			srv.Handle("/p", Funcs[struct{}]{Message: func(c *Conn[struct{}], m Message) {
				if string(m.Data) == "boom" {
					panic("boom")
				}
				_ = c.Send(m.Type, m.Data)
			}}, ro...)
			addr := start(t, srv)
			a, _ := wstest.Dial(addr, "/p")
			b, _ := wstest.Dial(addr, "/p")
			defer a.Close()
			defer b.Close()
			a.WriteMessage(codec.OpText, []byte("boom"))
			code, _, err := a.ExpectClose()
			if err != nil || code != codec.CloseInternalError {
				t.Fatalf("close: %d %v", code, err)
			}
			a.WriteFrame(codec.OpClose, true, []byte{0x03, 0xf3})
			b.WriteMessage(codec.OpText, []byte("still here"))
			if f, err := b.ReadData(); err != nil || string(f.Payload) != "still here" {
				t.Fatalf("other conn: %v", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for srv.Engine().Stats().Closes[poller.CausePanic].Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if n := srv.Engine().Stats().Closes[poller.CausePanic].Load(); n != 1 {
				t.Fatalf("panic closes = %d", n)
			}
		})
	}
}

func TestSlowConsumerClosed(t *testing.T) {
	srv := New[struct{}](Options{MaxOutboundBytes: 64 << 10})
	flood := make(chan error, 1)
	srv.Handle("/flood", Funcs[struct{}]{Open: func(c *Conn[struct{}]) {
		go func() {
			msg := make([]byte, 16<<10)
			for {
				if err := c.Send(Binary, msg); err != nil {
					flood <- err
					return
				}
			}
		}()
	}})
	addr := start(t, srv)
	c, err := wstest.Dial(addr, "/flood")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Do not read: the kernel buffers fill, then gnet's, then ours.
	select {
	case err := <-flood:
		if !errors.Is(err, ErrSlowConsumer) && !errors.Is(err, ErrClosed) {
			t.Fatalf("Send error %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no slow-consumer verdict")
	}
	if srv.Engine().Stats().SlowConsumers.Load() == 0 {
		t.Fatal("slow consumer not counted")
	}
	code, reason, err := c.ExpectClose()
	if err != nil || code != codec.ClosePolicyViolation || reason != "slow consumer" {
		t.Fatalf("close %d %q %v", code, reason, err)
	}
}

func TestMaxConns503(t *testing.T) {
	srv := New[struct{}](Options{MaxConns: 2})
	srv.Handle("/e", echo[struct{}]())
	addr := start(t, srv)
	a, err1 := wstest.Dial(addr, "/e")
	b, err2 := wstest.Dial(addr, "/e")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	defer a.Close()
	defer b.Close()
	_, err := wstest.Dial(addr, "/e")
	var se *wstest.HTTPStatusError
	if !errors.As(err, &se) || se.Status != 503 {
		t.Fatalf("third conn: %v", err)
	}
	a.Close()
	time.Sleep(100 * time.Millisecond)
	c, err := wstest.Dial(addr, "/e")
	if err != nil {
		t.Fatalf("after a close there is room again: %v", err)
	}
	c.Close()
}

func TestRoutingAcceptAndRequest(t *testing.T) {
	srv := New[user](Options{Subprotocols: []string{"chat.v2", "chat.v1"}})
	srv.Handle("/auth", acceptor{})
	addr := start(t, srv)
	if _, err := wstest.Dial(addr, "/nowhere"); !isStatus(err, 404) {
		t.Fatalf("unknown path: %v", err)
	}
	if _, err := wstest.Dial(addr, "/auth"); !isStatus(err, 401) {
		t.Fatalf("no token: %v", err)
	}
	c, err := wstest.Dial(addr, "/auth?room=7", "Authorization: Bearer alice", "Sec-WebSocket-Protocol: chat.v1, chat.v2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !strings.Contains(c.Response, "Sec-WebSocket-Protocol: chat.v2") {
		t.Fatalf("subprotocol not chosen by server preference:\n%s", c.Response)
	}
	c.WriteMessage(codec.OpText, []byte("who"))
	f, err := c.ReadData()
	if err != nil || string(f.Payload) != "alice /auth room=7 chat.v2" {
		t.Fatalf("got %q %v", f.Payload, err)
	}
}

type user struct{ name string }

type acceptor struct{}

func (acceptor) Accept(c *Conn[user], r *Request) error {
	tok, ok := strings.CutPrefix(r.Get("Authorization"), "Bearer ")
	if !ok {
		return &HTTPError{Status: 401, Reason: "token required"}
	}
	c.Value.name = tok
	return nil
}
func (acceptor) OnOpen(c *Conn[user]) {
	if c.Request() == nil || c.Request().Get("Authorization") == "" {
		panic("headers must be there during OnOpen")
	}
}
func (acceptor) OnMessage(c *Conn[user], m Message) {
	_ = c.Send(Text, []byte(c.Value.name+" "+c.Path()+" "+c.RawQuery()+" "+c.Subprotocol()))
}
func (acceptor) OnClose(*Conn[user], *CloseError) {}

func isStatus(err error, status int) bool {
	var se *wstest.HTTPStatusError
	return errors.As(err, &se) && se.Status == status
}

func TestShutdownSends1001AndDrains(t *testing.T) {
	srv := New[struct{}](Options{})
	closed := make(chan *CloseError, 4)
	srv.Handle("/e", Funcs[struct{}]{
		Message: func(c *Conn[struct{}], m Message) { _ = c.Send(m.Type, m.Data) },
		Closed:  func(c *Conn[struct{}], err *CloseError) { closed <- err },
	})
	addr := freeAddr(t)
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(addr) }()
	<-srv.Ready()
	c, err := wstest.Dial(addr, "/e")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(codec.OpText, []byte("before"))
	if f, _ := c.ReadData(); string(f.Payload) != "before" {
		t.Fatal("no echo")
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	code, _, err := c.ExpectClose()
	if err != nil || code != codec.CloseGoingAway {
		t.Fatalf("close %d %v", code, err)
	}
	// New conns are refused while draining.
	if _, err := wstest.Dial(addr, "/e"); err == nil {
		t.Fatal("accepted a conn while shutting down")
	}
	c.WriteRaw(codec.AppendMaskedFrame(nil, codec.OpClose, true, false, [4]byte{}, []byte{0x03, 0xe9}))
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("ListenAndServe: %v", err)
	}
	ce := <-closed
	if ce.Code != 1001 || ce.Cause != "shutdown" {
		t.Fatalf("OnClose got %+v", ce)
	}
}

func TestIdleTimeoutAndPing(t *testing.T) {
	srv := New[struct{}](Options{IdleTimeout: 2 * time.Second, PingInterval: time.Second})
	srv.Handle("/e", echo[struct{}]())
	addr := start(t, srv)
	c, err := wstest.Dial(addr, "/e")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A silent client is pinged; by not answering it is reaped as idle.
	f, err := c.Read()
	if err != nil || f.Op != codec.OpPing {
		t.Fatalf("expected a ping, got %+v %v", f, err)
	}
	code, reason, err := c.ExpectClose()
	if err != nil || code != codec.CloseGoingAway || reason != "idle timeout" {
		t.Fatalf("close %d %q %v", code, reason, err)
	}
	// A client that answers pings stays.
	d, _ := wstest.Dial(addr, "/e")
	defer d.Close()
	end := time.Now().Add(3500 * time.Millisecond)
	pongs := 0
	for {
		if d.Timeout = time.Until(end); d.Timeout <= 0 {
			break
		}
		f, err := d.Read()
		if time.Now().After(end) {
			break
		}
		if err != nil {
			t.Fatalf("live client dropped: %v", err)
		}
		if f.Op == codec.OpClose {
			t.Fatal("live client closed as idle")
		}
		d.WriteFrame(codec.OpPong, true, f.Payload)
		pongs++
	}
	if pongs == 0 {
		t.Fatal("never pinged")
	}
}

func TestHandshakeTimeout(t *testing.T) {
	srv := New[struct{}](Options{HandshakeTimeout: time.Second})
	srv.Handle("/e", echo[struct{}]())
	addr := start(t, srv)
	c, err := dialRaw(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	// A slowloris: one more header byte now and then, never the end.
	c.Write([]byte("GET /e HTTP/1.1\r\nHost: x\r\n"))
	go func() {
		for i := 0; i < 6; i++ {
			time.Sleep(400 * time.Millisecond)
			if _, err := c.Write([]byte("X")); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 100)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(buf); err == nil {
		t.Fatal("expected the server to close")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("closed after %v", d)
	}
}

func TestMaxConnsPerIP429(t *testing.T) {
	srv := New[struct{}](Options{MaxConnsPerIP: 2})
	srv.Handle("/e", echo[struct{}]())
	addr := start(t, srv)
	a, _ := wstest.Dial(addr, "/e")
	b, _ := wstest.Dial(addr, "/e")
	defer a.Close()
	defer b.Close()
	if _, err := wstest.Dial(addr, "/e"); !isStatus(err, 429) {
		t.Fatalf("third conn from one address: %v", err)
	}
	a.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := wstest.Dial(addr, "/e")
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("room not released: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if srv.Engine().Stats().Closes[poller.CausePerIPLimit].Load() == 0 {
		t.Fatal("per-IP refusals not counted")
	}
}
