package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// keepAliveServer answers GET /n/<x> with <x> and echoes POST /echo bodies.
func keepAliveServer(t *testing.T, opts Options) (*Server[struct{}], string) {
	t.Helper()
	srv := New[struct{}](opts)
	srv.Handle("/ws", echo[struct{}]())
	srv.HandleHTTP("GET /n/{x}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.PathValue("x"))
	}))
	srv.HandleHTTP("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Connection", "close") // the server's to decide, not the handler's
		w.Write(b)
	}))
	return srv, start(t, srv)
}

// httpConn is one client connection reading answers in order.
type httpConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialHTTP(t *testing.T, addr string) *httpConn {
	t.Helper()
	c, err := dialRaw(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	return &httpConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (h *httpConn) write(s string) {
	h.t.Helper()
	if _, err := h.c.Write([]byte(s)); err != nil {
		h.t.Fatal(err)
	}
}

// read reads one answer and checks its status and body.
func (h *httpConn) read(status int, body string) *http.Response {
	h.t.Helper()
	r, err := http.ReadResponse(h.br, nil)
	if err != nil {
		h.t.Fatalf("reading the answer (want %d, %d bytes): %v", status, len(body), err)
	}
	b, err := io.ReadAll(r.Body)
	if err != nil || r.StatusCode != status || string(b) != body {
		h.t.Fatalf("answer %d %q (%v), want %d %q", r.StatusCode, trim(string(b)), err, status, trim(body))
	}
	return r
}

// eof waits for the server to close the connection.
func (h *httpConn) eof() {
	h.t.Helper()
	b, err := h.br.ReadByte()
	if err == nil {
		h.t.Fatalf("byte %q where the server should have closed", b)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		h.t.Fatal("the server did not close the connection")
	}
}

func get(path string) string { return "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n" }

func post(path, body string) string {
	return "POST " + path + " HTTP/1.1\r\nHost: x\r\nContent-Length: " + itoa(len(body)) + "\r\n\r\n" + body
}

func TestKeepAliveSequentialRequests(t *testing.T) {
	_, addr := keepAliveServer(t, Options{})
	h := dialHTTP(t, addr)
	for i := range 5 {
		h.write(get("/n/" + itoa(i)))
		if r := h.read(200, itoa(i)); r.Close {
			t.Fatalf("answer %d closes the connection: %v", i, r.Header)
		}
	}
	h.write(post("/echo", `{"a":1}`))
	if r := h.read(200, `{"a":1}`); r.Header.Get("Connection") != "" {
		t.Fatalf("a handler's Connection header went out: %v", r.Header)
	}
}

func TestKeepAlivePipelinedInOneWrite(t *testing.T) {
	_, addr := keepAliveServer(t, Options{})
	h := dialHTTP(t, addr)
	// A body that looks like an upgrade request is a body, never a request.
	sneaky := "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n"
	h.write(get("/n/a") + post("/echo", sneaky) + get("/n/b") + post("/echo", "xyz") + get("/n/c"))
	h.read(200, "a")
	h.read(200, sneaky)
	h.read(200, "b")
	h.read(200, "xyz")
	h.read(200, "c")
}

func TestKeepAliveBodySplitAcrossReads(t *testing.T) {
	_, addr := keepAliveServer(t, Options{})
	h := dialHTTP(t, addr)
	for i := range 3 {
		body := strings.Repeat("b", 3000+i)
		full := post("/echo", body)
		cut := len(full) - len(body)/2
		h.write(full[:40])
		h.write(full[40:cut])
		h.write(full[cut:])
		h.read(200, body)
	}
}

func TestKeepAliveConnectionClose(t *testing.T) {
	_, addr := keepAliveServer(t, Options{})
	h := dialHTTP(t, addr)
	h.write("GET /n/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + get("/n/2"))
	if r := h.read(200, "1"); !r.Close {
		t.Fatalf("no Connection: close in the answer: %v", r.Header)
	}
	h.eof() // and the pipelined request behind it is not answered
}

func TestKeepAliveHTTP10(t *testing.T) {
	_, addr := keepAliveServer(t, Options{})
	h := dialHTTP(t, addr)
	h.write("GET /n/1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if r := h.read(200, "1"); r.Header.Get("Connection") != "keep-alive" {
		t.Fatalf("HTTP/1.0 keep-alive not confirmed: %v", r.Header)
	}
	h.write("GET /n/2 HTTP/1.0\r\n\r\n")
	if r := h.read(200, "2"); !r.Close {
		t.Fatalf("HTTP/1.0 without keep-alive kept open: %v", r.Header)
	}
	h.eof()
}

func TestKeepAliveTooBigBody(t *testing.T) {
	_, addr := keepAliveServer(t, Options{})
	h := dialHTTP(t, addr)
	h.write(get("/n/1"))
	h.read(200, "1")
	h.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\nxx")
	h.read(413, "body over 1 MiB\n")
	h.eof()
}

func TestKeepAliveIdleTimeout(t *testing.T) {
	srv, addr := keepAliveServer(t, Options{HandshakeTimeout: time.Second})
	h := dialHTTP(t, addr)
	h.write(get("/n/1"))
	h.read(200, "1")
	start := time.Now()
	h.eof()
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("idle keep-alive conn closed after %v, want 1–2 s", d)
	}
	waitFor(t, 5*time.Second, "the conn to be gone", func() bool { return srv.Stats().Conns == 0 })
}

func TestKeepAliveThenUpgrade(t *testing.T) {
	_, addr := keepAliveServer(t, Options{})
	h := dialHTTP(t, addr)
	h.write(get("/n/1"))
	h.read(200, "1")
	// An upgrade with a body is refused: its bytes would be read as frames.
	h.write("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 2\r\n\r\nab")
	h.read(400, "an upgrade request has no body\n")
	h.eof()

	// A proper upgrade request after plain requests upgrades.
	h = dialHTTP(t, addr)
	h.write(get("/n/1") + get("/n/2"))
	h.read(200, "1")
	h.read(200, "2")
	if h.br.Buffered() != 0 {
		t.Fatal("bytes after the answers")
	}
	c, err := wstest.Upgrade(h.c, addr, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	c.WriteMessage(codec.OpText, []byte("hi"))
	if f, err := c.ReadData(); err != nil || string(f.Payload) != "hi" {
		t.Fatalf("echo after the upgrade: %q %v", f.Payload, err)
	}
}

func trim(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

func TestKeepAliveIdleConnsHoldNoGoroutine(t *testing.T) {
	srv, addr := keepAliveServer(t, Options{})
	before := runtime.NumGoroutine()
	const n = 50
	for i := range n {
		h := dialHTTP(t, addr)
		h.write(get("/n/" + itoa(i)))
		h.read(200, itoa(i))
	}
	if got := srv.Stats().Conns; got != n {
		t.Fatalf("%d conns open, want the %d kept alive", got, n)
	}
	// The goroutine that answered each request ends once its answer is
	// queued; an idle kept-alive conn is only its poller state.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before+5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with %d idle kept-alive conns, %d before", runtime.NumGoroutine(), n, before)
		}
		runtime.Gosched()
	}
}

func TestKeepAlivePipelinedInputIsBounded(t *testing.T) {
	release := make(chan struct{})
	// The handshake timeout would end the conn too: make it too late to.
	srv := New[struct{}](Options{HandshakeTimeout: time.Minute})
	srv.HandleHTTP("GET /block", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "late")
	}))
	addr := start(t, srv)
	t.Cleanup(func() { close(release) }) // before the server's shutdown (cleanups run last first)
	h := dialHTTP(t, addr)
	h.write(get("/block"))
	// While /block is answered, the next requests wait in the buffer; past
	// about one more whole request the client is cut off.
	junk := []byte(strings.Repeat(get("/x"), 1000))
	for sent := 0; sent < 2<<20; sent += len(junk) {
		if _, err := h.c.Write(junk); err != nil {
			break // already cut off
		}
	}
	_ = h.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	h.eof()
}
