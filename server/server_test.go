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

// A saturated pool pauses reads instead of growing: every conn's reads are
// paused with at most Inbox messages taken in, goroutines stay at the pool
// size, and every message arrives once the handler unblocks.
func TestBackpressurePausesReads(t *testing.T) {
	const conns, perConn, inboxCap = 10, 50, 2
	gate := make(chan struct{})
	var openGate sync.Once
	defer openGate.Do(func() { close(gate) })
	var got atomic.Int64
	type count struct{ n int }
	var mu sync.Mutex
	var opened []*Conn[count]
	srv := New[count](Options{Workers: 2, QueueSize: 1, Inbox: inboxCap})
	srv.Handle("/slow", Funcs[count]{
		Open: func(c *Conn[count]) {
			mu.Lock()
			opened = append(opened, c)
			mu.Unlock()
		},
		Message: func(c *Conn[count], m Message) {
			<-gate
			got.Add(1)
			if c.Value.n++; c.Value.n == perConn {
				_ = c.Send(Text, []byte("ok"))
			}
		},
	})
	addr := start(t, srv)
	var clients []*wstest.Client
	for range conns {
		c, err := wstest.Dial(addr, "/slow")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	waitFor(t, 10*time.Second, "every OnOpen", func() bool { mu.Lock(); defer mu.Unlock(); return len(opened) == conns })
	waitFor(t, 5*time.Second, "the pool idle", func() bool { return srv.Stats().QueueDepth == 0 })
	before := runtime.NumGoroutine()
	// Each conn's 50 messages go out in one write, so they reach the loop
	// together: without a pause it would parse them all in one go.
	frame := codec.AppendMaskedFrame(nil, codec.OpBinary, true, false, [4]byte{1, 2, 3, 4}, make([]byte, 100))
	burst := bytes.Repeat(frame, perConn)
	for _, c := range clients {
		if err := c.WriteRaw(burst); err != nil {
			t.Fatal(err)
		}
	}
	paused := func(c *Conn[count]) bool { c.mu.Lock(); defer c.mu.Unlock(); return c.paused }
	waitFor(t, 10*time.Second, "every conn's reads paused", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range opened {
			if !paused(c) {
				return false
			}
		}
		return true
	})
	// Per conn: at most Inbox queued plus the one a worker holds.
	if in, most := srv.Stats().MessagesIn, uint64(conns*(inboxCap+1)); in > most {
		t.Fatalf("parsed %d messages with every conn paused; pausing allows at most %d", in, most)
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines grew from %d to %d under backpressure:\n%s", before, g, buf[:runtime.Stack(buf, true)])
	}
	if got.Load() != 0 {
		t.Fatal("handler ran through the gate")
	}
	openGate.Do(func() { close(gate) })
	for _, c := range clients {
		if f, err := c.ReadData(); err != nil || string(f.Payload) != "ok" {
			t.Fatalf("after resuming: %q %v", f.Payload, err)
		}
	}
	if n := got.Load(); n != conns*perConn {
		t.Fatalf("delivered %d of %d", n, conns*perConn)
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
			waitFor(t, 5*time.Second, "the panic close counted", func() bool { return srv.Stats().Closes["panic"] > 0 })
			if n := srv.Stats().Closes["panic"]; n != 1 {
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
	if srv.Stats().SlowConsumers == 0 {
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
	waitFor(t, 5*time.Second, "the server to see the close", func() bool { return srv.Stats().Conns == 1 })
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

// Shutdown sends 1001 only after everything already queued for the conn:
// the client, which reads nothing until Shutdown began, gets every message
// in order and then the close.
func TestShutdownSends1001AndDrains(t *testing.T) {
	const n, size = 200, 10 << 10 // 2 MiB: more than the socket buffers hold
	srv := New[bool](Options{})   // Value: this conn got the output
	closed := make(chan *CloseError, 4)
	queued := make(chan struct{})
	srv.Handle("/e", Funcs[bool]{
		Message: func(c *Conn[bool], m Message) {
			c.Value = true
			for i := range n {
				msg := bytes.Repeat([]byte{byte(i)}, size)
				if err := c.Send(Binary, msg); err != nil {
					t.Errorf("Send #%d: %v", i, err)
				}
			}
			close(queued)
		},
		Closed: func(c *Conn[bool], err *CloseError) {
			if c.Value {
				closed <- err
			}
		},
	})
	addr, done := serve(t, srv)
	c, err := wstest.Dial(addr, "/e")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(codec.OpText, []byte("send"))
	recv(t, queued, 10*time.Second, "the handler to queue its output")
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	// New conns are refused while draining.
	waitFor(t, 10*time.Second, "a refused dial while draining", func() bool {
		d, err := wstest.Dial(addr, "/e")
		if err == nil {
			d.Close()
		}
		return err != nil
	})
	for i := range n {
		f, err := c.Read()
		if err != nil || f.Op != codec.OpBinary || len(f.Payload) != size || f.Payload[0] != byte(i) {
			t.Fatalf("message #%d before the close: op=%v len=%d err=%v", i, f.Op, len(f.Payload), err)
		}
	}
	f, err := c.Read()
	if err != nil || f.Op != codec.OpClose {
		t.Fatalf("after the queued output: %v %v, want the close", f.Op, err)
	}
	if code, _, _ := codec.ParseClose(f.Payload); code != codec.CloseGoingAway {
		t.Fatalf("close code %d", code)
	}
	c.WriteRaw(codec.AppendMaskedFrame(nil, codec.OpClose, true, false, [4]byte{}, []byte{0x03, 0xe9}))
	if err := recv(t, shut, 15*time.Second, "Shutdown"); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := recv(t, done, 5*time.Second, "ListenAndServe"); err != nil {
		t.Fatalf("ListenAndServe: %v", err)
	}
	ce := recv(t, closed, time.Second, "OnClose")
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
	waitFor(t, 5*time.Second, "the server to see the close", func() bool { return srv.Stats().Conns == 1 })
	c, err := wstest.Dial(addr, "/e")
	if err != nil {
		t.Fatalf("room not released: %v", err)
	}
	c.Close()
	if srv.Stats().Closes["per_ip_limit"] == 0 {
		t.Fatal("per-IP refusals not counted")
	}
}
