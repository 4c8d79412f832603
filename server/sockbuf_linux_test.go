package server

import (
	"context"
	"errors"
	"net"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// The socket buffer options are set on gnet's listeners; they must reach
// the sockets accepted from them (the kernel reports twice the value set).
func TestSocketBuffersApplyToAcceptedConns(t *testing.T) {
	const snd, rcv = 48 << 10, 40 << 10
	srv := New[struct{}](Options{SocketSendBuffer: snd, SocketRecvBuffer: rcv})
	srv.Handle("/", Funcs[struct{}]{})
	addr := start(t, srv)
	c, err := wstest.Dial(addr, "/")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fd, err := wstest.ServerSideFD(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		name      string
		opt, want int
	}{{"SO_SNDBUF", unix.SO_SNDBUF, 2 * snd}, {"SO_RCVBUF", unix.SO_RCVBUF, 2 * rcv}} {
		got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, o.opt)
		if err != nil {
			t.Fatal(err)
		}
		if got != o.want {
			t.Errorf("accepted socket %s = %d, want %d (twice the option)", o.name, got, o.want)
		}
	}
}

// dialSmallWindow opens a WebSocket whose receive buffer is set before
// connect, so the window it advertises is small from the first segment.
func dialSmallWindow(t *testing.T, addr, path string, rcvbuf int) *wstest.Client {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	conn, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := wstest.Upgrade(conn, addr, path)
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sentUntilSlow feeds a conn whose peer never reads 4 KiB a millisecond
// and returns how many bytes Send accepted before refusing (the conn was
// found slow), or an error if it never refused within bound bytes. The
// pace lets the loop flush each message to the socket before the next:
// a flood faster than the loop would fill wsd's own queue first and never
// reach the kernel's buffer, which is what this measures.
func sentUntilSlow(c *Conn[struct{}], bound int) (int, error) {
	msg := make([]byte, 4<<10)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	sent := 0
	for sent < bound {
		if err := c.Send(Binary, msg); err != nil {
			if errors.Is(err, ErrSlowConsumer) || errors.Is(err, ErrClosed) {
				return sent, nil
			}
			return sent, err
		}
		sent += len(msg)
		<-tick.C
	}
	return sent, errors.New("never found slow")
}

// With a capped kernel send buffer, a peer that stops reading is closed
// as a slow consumer after about MaxOutboundBytes plus the (doubled) cap
// plus its own receive window, not after the kernel's autotuned send
// buffer (tcp_wmem's maximum, 4 MiB on common hosts) has filled too.
func TestSocketSendBufferBoundsSlowConsumerDetection(t *testing.T) {
	const (
		outbound = 64 << 10
		sndbuf   = 64 << 10
		rcvbuf   = 4 << 10
		// The kernel doubles both buffers; a quarter MiB of slack for
		// what the loopback holds in flight and gnet's write granularity.
		want  = outbound + 2*sndbuf + 2*rcvbuf + 256<<10
		bound = 32 << 20
	)
	type result struct {
		sent int
		err  error
	}
	done := make(chan result, 1)
	closed := make(chan *CloseError, 1)
	srv := New[struct{}](Options{MaxOutboundBytes: outbound, SocketSendBuffer: sndbuf, CloseTimeout: time.Second})
	srv.Handle("/feed", Funcs[struct{}]{
		Message: func(c *Conn[struct{}], _ Message) {
			n, err := sentUntilSlow(c, bound)
			done <- result{n, err}
		},
		Closed: func(_ *Conn[struct{}], err *CloseError) { closed <- err },
	})
	addr := start(t, srv)
	c := dialSmallWindow(t, addr, "/feed", rcvbuf)
	if err := c.WriteMessage(codec.OpText, []byte("go")); err != nil {
		t.Fatal(err)
	}
	r := recv(t, done, 30*time.Second, "the flood's end")
	if r.err != nil {
		t.Fatalf("after %d bytes: %v", r.sent, r.err)
	}
	ce := recv(t, closed, 10*time.Second, "the slow consumer's close")
	if ce == nil || ce.Code != 1008 || ce.Cause != "slow_consumer" {
		t.Fatalf("closed with %+v, want 1008 slow_consumer", ce)
	}
	t.Logf("found slow after %d KiB sent (bound %d KiB)", r.sent>>10, want>>10)
	if r.sent > want {
		t.Errorf("a peer that stopped reading was found slow after %d KiB, want ≤ %d KiB (max outbound %d KiB + 2 × send buffer %d KiB + 2 × its window %d KiB + slack)",
			r.sent>>10, want>>10, outbound>>10, sndbuf>>10, rcvbuf>>10)
	}
}
