package wstest

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
)

// peer is the server end of one test connection, driven by the test.
type peer struct {
	t   *testing.T
	nc  net.Conn
	rd  codec.Reader
	buf []byte
}

// send writes one unmasked server frame.
func (p *peer) send(op codec.OpCode, payload []byte) {
	p.t.Helper()
	if _, err := p.nc.Write(codec.AppendFrame(nil, op, true, payload)); err != nil {
		p.t.Errorf("server write: %v", err)
	}
}

// next reads the client's next frame, or fails.
func (p *peer) next() (codec.Frame, error) {
	_ = p.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, n, err := p.rd.Next(p.buf)
		if err != nil {
			return codec.Frame{}, err
		}
		if f.Op != 0 {
			f.Payload = append([]byte(nil), f.Payload...)
			p.buf = p.buf[n:]
			return f, nil
		}
		var tmp [4096]byte
		k, err := p.nc.Read(tmp[:])
		p.buf = append(p.buf, tmp[:k]...)
		if err != nil && k == 0 {
			return codec.Frame{}, err
		}
	}
}

// serve starts a one-connection server on loopback that answers the
// upgrade with resp (nil: a valid 101) and then runs script. It returns
// the address and a channel closed once script has returned.
func serve(t *testing.T, resp func(req *codec.Request) []byte, script func(p *peer)) (string, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { ln.Close(); <-done })
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		defer nc.Close()
		p := &peer{t: t, nc: nc}
		var u codec.Upgrader
		var req *codec.Request
		for req == nil {
			var tmp [4096]byte
			k, err := nc.Read(tmp[:])
			if err != nil {
				t.Errorf("server reading the request: %v", err)
				return
			}
			p.buf = append(p.buf, tmp[:k]...)
			r, n, err := u.ReadRequest(p.buf)
			if errors.Is(err, codec.ErrNeedMore) {
				continue
			}
			if err != nil {
				t.Errorf("server: %v", err)
				return
			}
			req, p.buf = r, p.buf[n:]
		}
		var out []byte
		if resp != nil {
			out = resp(req)
		} else {
			a, err := u.Negotiate(req)
			if err != nil {
				t.Errorf("negotiate: %v", err)
				return
			}
			out = codec.AppendAccept(nil, req, a)
		}
		if _, err := nc.Write(out); err != nil {
			t.Errorf("server write: %v", err)
			return
		}
		if script != nil {
			script(p)
		}
	}()
	return ln.Addr().String(), done
}

func dialT(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(addr, "/x")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.Timeout = 2 * time.Second
	return c
}

// A server that closes properly: data first, then its close frame; it
// waits for the client's echo and then closes TCP.
func TestExpectCloseCompletesHandshake(t *testing.T) {
	echoed := make(chan codec.Frame, 1)
	addr, done := serve(t, nil, func(p *peer) {
		p.send(codec.OpText, []byte("queued before the close"))
		p.send(codec.OpPing, nil)
		p.send(codec.OpClose, closeBody(codec.ClosePolicyViolation, "slow consumer"))
		f, err := p.next()
		if err != nil {
			t.Errorf("server: no close from the client: %v", err)
			return
		}
		echoed <- f
	})
	c := dialT(t, addr)
	code, reason, err := c.ExpectClose()
	if err != nil || code != codec.ClosePolicyViolation || reason != "slow consumer" {
		t.Fatalf("ExpectClose = %d %q %v", code, reason, err)
	}
	c.Close()
	<-done
	var f codec.Frame
	select {
	case f = <-echoed:
	default:
		t.Fatal("the client did not answer the server's close")
	}
	if got, _, _ := codec.ParseClose(f.Payload); f.Op != codec.OpClose || got != codec.ClosePolicyViolation {
		t.Fatalf("client answered %v %q, want an echoed close 1008", f.Op, f.Payload)
	}
}

// Its doc promises a check that the server closes the TCP connection: a
// server that keeps it open after the closing handshake must fail it.
func TestExpectCloseRequiresTCPClose(t *testing.T) {
	release := make(chan struct{})
	addr, _ := serve(t, nil, func(p *peer) {
		p.send(codec.OpClose, closeBody(codec.CloseNormal, ""))
		_, _ = p.next() // the client's answer
		<-release       // then hold the connection open
	})
	defer close(release)
	c := dialT(t, addr)
	c.Timeout = 300 * time.Millisecond
	code, _, err := c.ExpectClose()
	if err == nil {
		t.Fatalf("ExpectClose = %d, nil with the TCP connection still open", code)
	}
	if !strings.Contains(err.Error(), "did not close") {
		t.Fatalf("ExpectClose error %q does not say the server did not close", err)
	}
}

func TestExpectCloseFailures(t *testing.T) {
	tests := []struct {
		name   string
		script func(p *peer)
		want   string
	}{
		{"TCP close without a close frame", func(p *peer) {
			p.send(codec.OpText, []byte("bye"))
		}, "no close frame"},
		{"invalid close payload", func(p *peer) {
			p.send(codec.OpClose, []byte{0x03})
			_, _ = p.next()
		}, "close"},
		{"invalid close code", func(p *peer) {
			p.send(codec.OpClose, closeBody(999, ""))
			_, _ = p.next()
		}, "close"},
		{"data after the close frame", func(p *peer) {
			p.send(codec.OpClose, closeBody(codec.CloseNormal, ""))
			p.send(codec.OpText, []byte("too late"))
			_, _ = p.next()
		}, "after its close frame"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := serve(t, nil, tt.script)
			c := dialT(t, addr)
			code, reason, err := c.ExpectClose()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ExpectClose = %d %q %v, want an error about %q", code, reason, err, tt.want)
			}
		})
	}
}

// When the client started the closing handshake, ExpectClose waits for the
// server's answer and does not send a second close.
func TestExpectCloseAfterClientClose(t *testing.T) {
	extra := make(chan error, 1)
	addr, _ := serve(t, nil, func(p *peer) {
		f, err := p.next()
		if err != nil || f.Op != codec.OpClose {
			t.Errorf("server: want the client's close, got %v %v", f.Op, err)
			return
		}
		p.send(codec.OpClose, f.Payload)
		_ = p.nc.(*net.TCPConn).CloseWrite()
		_, err = p.next()
		extra <- err
	})
	c := dialT(t, addr)
	if err := c.WriteFrame(codec.OpClose, true, closeBody(codec.CloseNormal, "")); err != nil {
		t.Fatal(err)
	}
	code, _, err := c.ExpectClose()
	if err != nil || code != codec.CloseNormal {
		t.Fatalf("ExpectClose = %d %v", code, err)
	}
	c.Close()
	if err := <-extra; err == nil {
		t.Fatal("the client sent a frame after its own close")
	}
}

func TestUpgradeChecksResponse(t *testing.T) {
	// A wrong accept key is refused.
	addr, _ := serve(t, func(req *codec.Request) []byte {
		return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n")
	}, nil)
	if _, err := Dial(addr, "/x"); !errors.Is(err, codec.ErrResponseAccept) {
		t.Fatalf("bad accept: %v", err)
	}
	// A refusal keeps its status, head and body.
	addr, _ = serve(t, func(req *codec.Request) []byte {
		return codec.AppendHTTPError(nil, &codec.HTTPError{Status: 403, Reason: "no"})
	}, nil)
	_, err := Dial(addr, "/x")
	var se *HTTPStatusError
	if !errors.As(err, &se) || se.Status != 403 || se.Body != "no\n" || !strings.HasPrefix(se.Head, "HTTP/1.1 403") {
		t.Fatalf("refusal: %#v", err)
	}
	// Subprotocols offered as header lines are offered, and chosen.
	u := codec.Upgrader{Protocols: []string{"b"}}
	addr, _ = serve(t, func(req *codec.Request) []byte {
		a, err := u.Negotiate(req)
		if err != nil {
			t.Errorf("negotiate: %v", err)
		}
		return codec.AppendAccept(nil, req, a)
	}, nil)
	c, err := Dial(addr, "/x", "Sec-WebSocket-Protocol: a, b", "Origin: http://o")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if !strings.Contains(c.Response, "Sec-WebSocket-Protocol: b\r\n") {
		t.Fatalf("response %q", c.Response)
	}
}

// closeBody is a close frame payload.
func closeBody(code uint16, reason string) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}
