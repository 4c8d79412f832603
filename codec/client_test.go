package codec

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// rfcResponse is RFC 6455 §1.3's example answer to rfcKey.
const rfcResponse = "HTTP/1.1 101 Switching Protocols\r\n" +
	"Upgrade: websocket\r\n" +
	"Connection: Upgrade\r\n" +
	"Sec-WebSocket-Accept: " + rfcAccept + "\r\n\r\n"

func TestAcceptKey(t *testing.T) {
	if got := AcceptKey(rfcKey); got != rfcAccept {
		t.Fatalf("AcceptKey = %q, want %q (RFC 6455 §1.3)", got, rfcAccept)
	}
	raw := [16]byte{'t', 'h', 'e', ' ', 's', 'a', 'm', 'p', 'l', 'e', ' ', 'n', 'o', 'n', 'c', 'e'}
	if got := string(AppendKey([]byte("x"), &raw)); got != "x"+rfcKey {
		t.Fatalf("AppendKey = %q", got)
	}
	a, b := NewKey(), NewKey()
	if !validKey(a) || !validKey(b) || a == b {
		t.Fatalf("NewKey gave %q and %q", a, b)
	}
}

// The request a client writes is one our server accepts, with everything
// offered visible to it, and the server's answer passes the client's check.
func TestClientRequestRoundTrip(t *testing.T) {
	h := ClientHandshake{
		Host:       "example.com:8080",
		Path:       "/ws?token=a b",
		Protocols:  []string{"v2.wsd", "v1.wsd"},
		Extensions: "permessage-deflate; server_max_window_bits=10; client_max_window_bits",
		Header:     []HeaderField{{"Origin", "https://example.com"}, {"X-Evil", "a\r\nHost: b"}},
	}
	key := NewKey()
	reqBytes := h.AppendRequest([]byte("junk"), key)
	if !bytes.HasPrefix(reqBytes, []byte("junkGET /ws?token=a%20b HTTP/1.1\r\n")) {
		t.Fatalf("request line: %q", reqBytes)
	}
	u := Upgrader{Protocols: []string{"v1.wsd"}, Deflate: DeflateConfig{Enabled: true}}
	req, n, err := u.ReadRequest(reqBytes[4:])
	if err != nil || n != len(reqBytes)-4 {
		t.Fatalf("ReadRequest: n=%d err=%v\n%s", n, err, reqBytes)
	}
	if req.Host != h.Host || req.Key != key || req.Get("Origin") != "https://example.com" || req.Get("X-Evil") != "a  Host: b" {
		t.Fatalf("server saw %+v", req)
	}
	a, err := u.Negotiate(req)
	if err != nil {
		t.Fatal(err)
	}
	resp := AppendAccept(nil, req, a)
	frame := AppendFrame(nil, OpText, true, []byte("hi"))
	got, n, err := h.ReadResponse(append(resp, frame...), key)
	if err != nil || n != len(resp) {
		t.Fatalf("ReadResponse: n=%d err=%v\n%s", n, err, resp)
	}
	if got.Status != 101 || got.Reason != "Switching Protocols" || got.Protocol != "v1.wsd" || !got.Deflate ||
		got.Params != (DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 10}) {
		t.Fatalf("response %+v", got)
	}
	if got.Get("upgrade") != "websocket" {
		t.Fatalf("Get: %q", got.Get("upgrade"))
	}
	// Minimal request: no protocol, no extension header.
	req2 := string((&ClientHandshake{Host: "h"}).AppendRequest(nil, rfcKey))
	want := "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + rfcKey + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if req2 != want {
		t.Fatalf("got %q\nwant %q", req2, want)
	}
}

func TestReadResponseChecks(t *testing.T) {
	base := ClientHandshake{Host: "h"}
	withProto := ClientHandshake{Host: "h", Protocols: []string{"chat"}}
	withDeflate := ClientHandshake{Host: "h", Extensions: "permessage-deflate; client_max_window_bits=10"}
	strict := ClientHandshake{Host: "h", Extensions: "permessage-deflate; server_no_context_takeover; server_max_window_bits=9"}
	ok := rfcResponse
	add := func(lines string) string { return strings.TrimSuffix(ok, "\r\n") + lines + "\r\n" }
	replace := func(old, new string) string { return strings.Replace(ok, old, new, 1) }
	tests := []struct {
		name string
		h    ClientHandshake
		resp string
		want error // nil: accepted
	}{
		{"rfc example", base, ok, nil},
		{"no reason phrase", base, replace("101 Switching Protocols", "101"), nil},
		{"header case and token lists", base, "HTTP/1.1 101 OK\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\nsec-websocket-accept: " + rfcAccept + "\r\n\r\n", nil},
		{"wrong accept", base, replace(rfcAccept, "x"+rfcAccept[1:]), ErrResponseAccept},
		{"no accept", base, replace("Sec-WebSocket-Accept: "+rfcAccept+"\r\n", ""), ErrResponseAccept},
		{"two accepts", base, add("Sec-WebSocket-Accept: " + rfcAccept + "\r\n"), ErrResponseAccept},
		{"no upgrade", base, replace("Upgrade: websocket\r\n", ""), ErrResponseUpgrade},
		{"upgrade h2c", base, replace("Upgrade: websocket", "Upgrade: h2c"), ErrResponseUpgrade},
		{"second upgrade wrong", base, add("Upgrade: h2c\r\n"), ErrResponseUpgrade},
		{"no connection upgrade", base, replace("Connection: Upgrade", "Connection: keep-alive"), ErrResponseConnection},
		{"HTTP/1.0 101", base, replace("HTTP/1.1", "HTTP/1.0"), ErrResponseVersion},
		{"HTTP/2 status line", base, replace("HTTP/1.1", "HTTP/2.0"), ErrResponseMalformed},
		{"bare LF", base, replace("Upgrade: websocket\r\n", "Upgrade: websocket\n"), ErrResponseMalformed},
		{"folded header", base, add(" folded\r\n"), ErrResponseMalformed},
		{"bad status digits", base, replace("101", "1x1"), ErrResponseMalformed},
		{"status 099", base, replace("101", "099"), ErrResponseMalformed},
		{"protocol chosen", withProto, add("Sec-WebSocket-Protocol: chat\r\n"), nil},
		{"protocol not offered", withProto, add("Sec-WebSocket-Protocol: other\r\n"), ErrResponseProtocol},
		{"protocol without offer", base, add("Sec-WebSocket-Protocol: chat\r\n"), ErrResponseProtocol},
		{"two protocols", withProto, add("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"), ErrResponseProtocol},
		{"no protocol chosen", withProto, ok, nil},
		{"deflate accepted", withDeflate, add("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=9\r\n"), nil},
		{"deflate without offer", base, add("Sec-WebSocket-Extensions: permessage-deflate\r\n"), ErrResponseExtension},
		{"deflate client window above offer", withDeflate, add("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=11\r\n"), ErrResponseExtension},
		{"deflate valueless client window", withDeflate, add("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"), ErrResponseExtension},
		{"deflate client window not offered", strict, add("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9\r\n"), ErrResponseExtension},
		{"deflate strict answered", strict, add("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=8\r\n"), nil},
		{"deflate drops server_no_context_takeover", strict, add("Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9\r\n"), ErrResponseExtension},
		{"deflate server window above offer", strict, add("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; server_max_window_bits=10\r\n"), ErrResponseExtension},
		{"deflate server window missing", strict, add("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"), ErrResponseExtension},
		{"deflate leading zero", withDeflate, add("Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits=09\r\n"), ErrResponseExtension},
		{"deflate unknown param", withDeflate, add("Sec-WebSocket-Extensions: permessage-deflate; foo\r\n"), ErrResponseExtension},
		{"deflate twice", withDeflate, add("Sec-WebSocket-Extensions: permessage-deflate\r\nSec-WebSocket-Extensions: permessage-deflate\r\n"), ErrResponseExtension},
		{"other extension", withDeflate, add("Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n"), ErrResponseExtension},
		{"empty extension header ignored", base, add("Sec-WebSocket-Extensions: \r\n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, n, err := tt.h.ReadResponse([]byte(tt.resp), rfcKey)
			if tt.want == nil {
				if err != nil || n != len(tt.resp) || resp == nil {
					t.Fatalf("n=%d err=%v, want accepted", n, err)
				}
				return
			}
			if !errors.Is(err, tt.want) || resp != nil || n != 0 {
				t.Fatalf("resp=%v n=%d err=%v, want %v", resp, n, err, tt.want)
			}
		})
	}
}

func TestReadResponseRefusal(t *testing.T) {
	body := "origin not allowed\n"
	raw := string(AppendHTTPError(nil, errOrigin))
	h := ClientHandshake{Host: "h"}
	resp, n, err := h.ReadResponse([]byte(raw), rfcKey)
	var re *ResponseError
	if !errors.As(err, &re) || re.Status != 403 || !strings.Contains(err.Error(), "403") {
		t.Fatalf("err %v", err)
	}
	if resp == nil || resp.Status != 403 || resp.Reason != "Forbidden" || resp.Get("Content-Length") != "19" || raw[n:] != body {
		t.Fatalf("resp %+v, body %q", resp, raw[n:])
	}
	// A refusal over HTTP/1.0 is still a refusal.
	resp, _, err = h.ReadResponse([]byte("HTTP/1.0 503 Busy\r\n\r\n"), rfcKey)
	if !errors.As(err, &re) || re.Status != 503 || resp == nil {
		t.Fatalf("HTTP/1.0 503: %v %+v", err, resp)
	}
}

// Bytes arrive in pieces: every prefix of a good response needs more, and
// a response that can never be valid is refused before it completes.
func TestReadResponsePartial(t *testing.T) {
	h := ClientHandshake{Host: "h"}
	for i := range len(rfcResponse) {
		if _, _, err := h.ReadResponse([]byte(rfcResponse[:i]), rfcKey); err != ErrNeedMore {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
	for _, p := range []string{
		"\x16\x03\x01",               // TLS
		"HTTP/2 ",                    // not HTTP/1.x
		"<html>",                     // not HTTP at all
		"HTTP/1.1 101 OK\nUpgrade: ", // bare LF
		"HTTP/1.1 1x1 OK\r\nUp",      // bad status line, head unfinished
	} {
		if _, _, err := h.ReadResponse([]byte(p), rfcKey); err != ErrResponseMalformed {
			t.Errorf("%q: %v, want ErrResponseMalformed at once", p, err)
		}
	}
	small := ClientHandshake{Host: "h", MaxHeaderBytes: 64}
	long := "HTTP/1.1 101 OK\r\nX: " + strings.Repeat("a", 100)
	if _, _, err := small.ReadResponse([]byte(long), rfcKey); err != ErrResponseTooLarge {
		t.Errorf("long head: %v", err)
	}
	if _, _, err := small.ReadResponse([]byte(long[:60]), rfcKey); err != ErrNeedMore {
		t.Errorf("under the limit: %v", err)
	}
	// A complete head beyond the limit is refused too, not parsed.
	if _, _, err := small.ReadResponse([]byte(long+"\r\n\r\n"), rfcKey); err != ErrResponseTooLarge {
		t.Errorf("complete long head: %v", err)
	}
}
