package server

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

func TestPlainHTTPOnSamePort(t *testing.T) {
	srv := New[struct{}](Options{})
	srv.Handle("/ws", echo[struct{}]())
	srv.HandleHTTP("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	srv.HandleHTTP("POST /api/echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Evil", "a\r\nInjected: yes")
		w.WriteHeader(201)
		w.Write(b)
	}))
	srv.HandleHTTP("GET /panic", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	addr := start(t, srv)

	get := func(raw string) (*http.Response, string) {
		t.Helper()
		c, err := dialRaw(addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Written in two pieces: the body arrives after the head.
		head, body, _ := strings.Cut(raw, "\r\n\r\n")
		c.Write([]byte(head + "\r\n\r\n"))
		c.Write([]byte(body))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if r, b := get("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); r.StatusCode != 200 || b != "ok" {
		t.Fatalf("healthz: %d %q", r.StatusCode, b)
	}
	r, b := get("POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n{\"a\":\"bcd\"}")
	if r.StatusCode != 201 || b != `{"a":"bcd"}` || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Injected") != "" {
		t.Fatalf("post: %d %q %v", r.StatusCode, b, r.Header)
	}
	if r, _ := get("GET /ws HTTP/1.1\r\nHost: x\r\n\r\n"); r.StatusCode != 426 || r.Header.Get("Upgrade") != "websocket" {
		t.Fatalf("WebSocket route without Upgrade: %d", r.StatusCode)
	}
	if r, _ := get("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"); r.StatusCode != 404 {
		t.Fatalf("unknown: %d", r.StatusCode)
	}
	if r, _ := get("GET /panic HTTP/1.1\r\nHost: x\r\n\r\n"); r.StatusCode != 500 {
		t.Fatalf("panic: %d", r.StatusCode)
	}
	if r, _ := get("POST /api/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n"); r.StatusCode != 413 {
		t.Fatalf("huge body: %d", r.StatusCode)
	}
	// The WebSocket route still upgrades.
	c, err := wstest.Dial(addr, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(codec.OpText, []byte("hi"))
	if f, err := c.ReadData(); err != nil || string(f.Payload) != "hi" {
		t.Fatal(err)
	}
}
