package server

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// streamClient sends a GET for path and returns the conn and a reader
// positioned after the response head, with the head's status code.
func streamClient(t *testing.T, addr, req string) (net.Conn, *bufio.Reader, int) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading the head: %v", err)
	}
	if resp.StatusCode == 200 {
		if resp.ContentLength != -1 || !resp.Close {
			t.Fatalf("a stream must be close-delimited: %+v", resp.Header)
		}
	}
	return nc, br, resp.StatusCode
}

func getReq(path string) string {
	return "GET " + path + " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
}

// Units from one goroutine, own and shared bytes mixed, go out whole and
// in order; Close ends the body after them (EOF), OnClose reports it; input
// after the request is discarded, not parsed.
func TestStreamOrderAndClose(t *testing.T) {
	const n = 2000
	shared := []byte("shared|")
	closed := make(chan *CloseError, 1)
	srv := New[struct{}](Options{})
	srv.HandleStream("/s", "text/event-stream", Funcs[struct{}]{
		Open: func(c *Conn[struct{}]) {
			if !c.IsStream() {
				t.Error("IsStream false on a stream conn")
			}
			if err := c.Send(Text, []byte("frame")); !errors.Is(err, ErrStreamConn) {
				t.Errorf("Send on a stream: %v, want ErrStreamConn", err)
			}
			for i := range n {
				var sh []byte
				if i%3 == 0 {
					sh = shared
				}
				if err := c.WriteStream(fmt.Appendf(nil, "%d;", i), sh); err != nil {
					t.Errorf("WriteStream %d: %v", i, err)
					return
				}
			}
			c.Close(1000, "")
		},
		Closed: func(_ *Conn[struct{}], err *CloseError) { closed <- err },
	})
	addr := start(t, srv)
	nc, br, status := streamClient(t, addr, getReq("/s"))
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	_, _ = io.WriteString(nc, "GET /other HTTP/1.1\r\nHost: x\r\n\r\ngarbage\x00\xff") // ignored
	body, err := io.ReadAll(br)
	if err != nil {
		t.Fatalf("body: %v (after %d bytes)", err, len(body))
	}
	var want bytes.Buffer
	for i := range n {
		fmt.Fprintf(&want, "%d;", i)
		if i%3 == 0 {
			want.Write(shared)
		}
	}
	if !bytes.Equal(body, want.Bytes()) {
		t.Fatalf("body differs: got %d bytes, want %d; first 80: %q", len(body), want.Len(), body[:min(80, len(body))])
	}
	ce := recv(t, closed, 10*time.Second, "OnClose")
	if ce.Cause != "server_close" {
		t.Fatalf("close cause %q, want server_close", ce.Cause)
	}
}

// A stream whose reader stops is a slow consumer: WriteStream fails once the
// cap is passed, the conn closes under slow_consumer and OnClose says so.
func TestStreamSlowConsumer(t *testing.T) {
	closed := make(chan *CloseError, 1)
	refused := make(chan error, 1)
	srv := New[struct{}](Options{MaxOutboundBytes: 64 << 10})
	srv.HandleStream("/s", "text/plain", Funcs[struct{}]{
		Open: func(c *Conn[struct{}]) {
			chunk := bytes.Repeat([]byte("x"), 16<<10)
			deadline := time.Now().Add(15 * time.Second)
			for i := 0; time.Now().Before(deadline) && i < 1_000_000; i++ {
				if err := c.WriteStream(nil, chunk); err != nil {
					refused <- err
					return
				}
			}
			refused <- nil
		},
		Closed: func(_ *Conn[struct{}], err *CloseError) { closed <- err },
	})
	addr := start(t, srv)
	_, _, status := streamClient(t, addr, getReq("/s")) // and never read again
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	if err := recv(t, refused, 20*time.Second, "a refused write"); !errors.Is(err, ErrSlowConsumer) && !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteStream to a stalled reader: %v, want ErrSlowConsumer", err)
	}
	ce := recv(t, closed, 20*time.Second, "OnClose")
	if ce.Cause != "slow_consumer" {
		t.Fatalf("close cause %q, want slow_consumer", ce.Cause)
	}
}

// A silent stream gets the keep-alive bytes.
func TestStreamPing(t *testing.T) {
	srv := New[struct{}](Options{StreamPing: []byte(": ping\n\n"), StreamPingInterval: time.Second})
	srv.HandleStream("/s", "text/event-stream", Funcs[struct{}]{
		Open: func(c *Conn[struct{}]) { _ = c.WriteStream([]byte("retry: 1000\n\n"), nil) },
	})
	addr := start(t, srv)
	_, br, _ := streamClient(t, addr, getReq("/s"))
	want := "retry: 1000\n\n: ping\n\n: ping\n\n"
	got := make([]byte, len(want))
	if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
		t.Fatalf("read %q (%v), want %q", got, err, want)
	}
}

// Refusals: the Acceptor's error, a method other than GET, an upgrade to a
// stream path; raw bytes on a WebSocket conn.
func TestStreamRefusals(t *testing.T) {
	srv := New[struct{}](Options{})
	srv.HandleStream("/s", "text/event-stream", acceptFuncs{accept: func(r *Request) error {
		if !strings.Contains(r.RawQuery, "ok") {
			return &HTTPError{Status: 401, Reason: "no"}
		}
		return nil
	}})
	wsErr := make(chan error, 1)
	srv.Handle("/ws", Funcs[struct{}]{Open: func(c *Conn[struct{}]) { wsErr <- c.WriteStream([]byte("x"), nil) }})
	addr := start(t, srv)
	for _, tc := range []struct {
		req    string
		status int
	}{
		{getReq("/s"), 401},
		{getReq("/s?ok"), 200},
		{"POST /s?ok HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405},
		{"GET /s?ok HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 404},
	} {
		if _, _, status := streamClient(t, addr, tc.req); status != tc.status {
			t.Errorf("%q: status %d, want %d", tc.req, status, tc.status)
		}
	}
	_, _, status := streamClient(t, addr, "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	if status != 101 {
		t.Fatalf("ws upgrade: %d", status)
	}
	if err := recv(t, wsErr, 10*time.Second, "WriteStream on a ws conn"); !errors.Is(err, ErrNotStream) {
		t.Fatalf("WriteStream on a ws conn: %v, want ErrNotStream", err)
	}
}

type acceptFuncs struct {
	Funcs[struct{}]
	accept func(r *Request) error
}

func (a acceptFuncs) Accept(_ *Conn[struct{}], r *Request) error { return a.accept(r) }
