package conformance

import (
	"bytes"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
)

// 200 connections at once, each echoing 10 messages.
func TestManyConnections(t *testing.T) {
	const conns, msgs = 200, 10
	addr := srvDefault.need(t)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	start := make(chan struct{})
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs <- func() error {
				c, err := Dial(addr, Options{})
				if err != nil {
					return fmt.Errorf("conn %d: dial: %w", i, err)
				}
				defer c.Close()
				r := newRand(uint64(i))
				for j := range msgs {
					n := r.IntN(4096)
					op, p := opBinary, binPayload(n, uint64(i*msgs+j))
					if j%2 == 0 {
						op, p = opText, textPayload(n)
					}
					if err := c.Write(fr(op, p)); err != nil {
						return fmt.Errorf("conn %d msg %d: write: %w", i, j, err)
					}
					ev, err := c.Next()
					if err != nil {
						return fmt.Errorf("conn %d msg %d: %w", i, j, err)
					}
					if ev.Op != op || !bytes.Equal(ev.Payload, p) {
						return fmt.Errorf("conn %d msg %d: want %s (%d bytes), got %s", i, j, opName(op), n, ev)
					}
				}
				if err := c.Write(fr(opClose, CloseBody(1000, ""))); err != nil {
					return fmt.Errorf("conn %d: close: %w", i, err)
				}
				if ev, err := c.Next(); err != nil || ev.Op != opClose || ev.Code != 1000 {
					return fmt.Errorf("conn %d: want close 1000, got %s, %v", i, ev, err)
				}
				return nil
			}()
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if err != nil {
			n++
			if n <= 10 {
				t.Error(err)
			}
		}
	}
	if n > 0 {
		t.Errorf("%d of %d connections failed", n, conns)
	}
	srvDefault.healthy(t)
}

// Autobahn 9.7/9.8-style: many small messages pipelined, echoed in order.
func TestPipelinedMessages(t *testing.T) {
	var send [][]byte
	var wants []want
	for i := range 1000 {
		p := fmt.Appendf(nil, "message %d", i)
		if i%3 == 0 {
			send = append(send, fr(opBinary, p))
			wants = append(wants, bin(p))
		} else {
			send = append(send, fr(opText, p))
			wants = append(wants, textB(p))
		}
		if i%100 == 0 {
			q := fmt.Appendf(nil, "ping %d", i)
			send = append(send, fr(opPing, q))
			wants = append(wants, pong(q))
		}
	}
	runCases(t, srvDefault, Options{}, []wireCase{{"1000 messages and 10 pings in one write", send, wants}}, oneWrite)
}

// Connections that vanish at awkward moments leave the daemon healthy.
func TestAbruptClose(t *testing.T) {
	addr := srvDefault.need(t)
	big := Frame(opBinary, true, 0, binPayload(64<<10, 9))
	cases := []struct {
		name    string
		upgrade bool   // do the handshake first
		send    []byte // then write this
		reset   bool   // close with RST instead of FIN
		read    bool   // wait a little before closing, without reading
	}{
		{"mid-handshake", false, []byte("GET /echo HTTP/1.1\r\nHost: x\r\nUpgr"), false, false},
		{"after the handshake, no close frame", true, nil, false, false},
		{"mid frame header", true, big[:5], false, false},
		{"mid payload", true, big[:32<<10], false, false},
		{"mid payload, RST", true, big[:32<<10], true, false},
		{"right after a message, echo unread", true, frs(opText, "you will never read this"), false, false},
		{"1 MiB echo unread, RST", true, fr(opBinary, binPayload(1<<20, 1)), true, true},
		{"mid fragmented message", true, Frame(opText, false, 0, []byte("part one")), false, false},
		{"after sending a close, without waiting", true, fr(opClose, CloseBody(1000, "")), true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var conn net.Conn
			if tc.upgrade {
				c := dial(t, srvDefault, Options{})
				conn = c.Conn
				if len(tc.send) > 0 {
					if err := c.Write(tc.send); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				var err error
				if conn, err = net.Dial("tcp", addr); err != nil {
					t.Fatal(err)
				}
				conn.Write(tc.send)
			}
			if tc.read {
				time.Sleep(200 * time.Millisecond)
			}
			if tc.reset {
				conn.(*net.TCPConn).SetLinger(0)
			}
			conn.Close()
			srvDefault.healthy(t)
		})
	}
	// All of them at once, a few times over.
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Dial(addr, Options{})
			if err != nil {
				return
			}
			c.Write(big[:1+i*1000])
			c.Conn.(*net.TCPConn).SetLinger(0)
			c.Close()
		}()
	}
	wg.Wait()
	srvDefault.healthy(t)
}

// --idle-timeout closes silent connections and only those.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 2 * time.Second // srvPlain's --idle-timeout
	// Four connections opened 250 ms apart cover every phase of a
	// coarse (e.g. once-a-second) sweep, so early closing shows every run.
	for k := range 4 {
		t.Run(fmt.Sprintf("silent connection is closed/%d", k), func(t *testing.T) {
			t.Parallel()
			time.Sleep(time.Duration(k) * 250 * time.Millisecond)
			c := dial(t, srvPlain, Options{})
			defer c.Close()
			start := time.Now()
			c.Timeout = 4 * idle
			ev, err := c.Next()
			took := time.Since(start)
			switch {
			case err == nil && ev.Op == opClose:
				if ev.Code != codec.CloseGoingAway {
					t.Errorf("idle connection closed with %s, want 1001 (going away)", ev)
				}
				t.Logf("closed with %s after %v", ev, took.Round(time.Millisecond))
				finishClose(t, c, ev)
			case err == nil:
				t.Fatalf("idle connection: want a close, got %s", ev)
			case isClosed(err):
				t.Fatalf("TCP closed after %v without a close frame: an idle timeout must start the closing handshake (RFC 6455 §7.1.2)", took.Round(time.Millisecond))
			case isTimeout(err):
				t.Fatalf("idle connection still open after %v (--idle-timeout %v)", took.Round(time.Millisecond), idle)
			default:
				t.Fatalf("idle connection: %v", err)
			}
			if took < idle-50*time.Millisecond {
				t.Errorf("closed after %v of silence, before the %v idle timeout", took.Round(time.Millisecond), idle)
			}
		})
	}
	t.Run("active connection stays open", func(t *testing.T) {
		t.Parallel()
		c := dial(t, srvPlain, Options{})
		defer c.Close()
		for i := 0; i < 8; i++ { // 4 s, twice the idle timeout
			time.Sleep(idle / 4)
			p := fmt.Appendf(nil, "keepalive %d", i)
			if err := c.Write(fr(opText, p)); err != nil {
				t.Fatalf("after %d messages: %v", i, err)
			}
			expect(t, c, textB(p))
		}
		closeNormally(t, c)
	})
}
