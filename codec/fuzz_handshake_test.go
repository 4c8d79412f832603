package codec

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzHandshake feeds a request in two reads split at a fuzz-chosen point,
// as a socket would, and checks the parser's contract: no panic, n within
// the input, a prefix never refused unless the whole is, the same head found
// whichever way the bytes arrive, and a well-formed response either way.
func FuzzHandshake(f *testing.F) {
	for _, seed := range []string{
		curlRequest,
		chromeRequest,
		firefoxRequest,
		curlRequest + string(maskedText),
		"GET ws://h/x?y HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + rfcKey + "\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=15; client_max_window_bits=\"9\", x\r\n\r\n",
		"POST /api/publish HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n{}",
		"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\nHost: h\n\n",
		"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
	} {
		f.Add([]byte(seed), uint16(len(seed)/2))
	}
	u := Upgrader{
		MaxHeaderBytes: 1024,
		Protocols:      []string{"chat", "v1.wsd"},
		CheckOrigin:    func(r *Request) bool { return r.Origin != "https://evil.example" },
		Deflate:        DeflateConfig{Enabled: true, ContextTakeover: true},
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		k := int(split) % (len(data) + 1)
		first := bytes.Clone(data[:k])
		req1, n1, err1 := u.ReadRequest(first)
		req, n, err := u.ReadRequest(data)

		for _, r := range []struct {
			req *Request
			n   int
			err error
			in  []byte
		}{{req1, n1, err1, first}, {req, n, err, data}} {
			if r.n < 0 || r.n > len(r.in) {
				t.Fatalf("n = %d for %d bytes", r.n, len(r.in))
			}
			if (r.err == nil) != (r.req != nil) || (r.err == nil) != (r.n > 0) {
				t.Fatalf("inconsistent result: req %v n %d err %v", r.req != nil, r.n, r.err)
			}
			if r.err == ErrNeedMore && len(r.in) > u.MaxHeaderBytes {
				t.Fatalf("ErrNeedMore past the limit: %d bytes", len(r.in))
			}
			var he *HTTPError
			if r.err != nil && r.err != ErrNeedMore && !errors.As(r.err, &he) {
				t.Fatalf("error of type %T: %v", r.err, r.err)
			}
			if he != nil && !bytes.HasPrefix(AppendHTTPError(nil, he), []byte("HTTP/1.1 4")) {
				t.Fatalf("refusal response %q", AppendHTTPError(nil, he))
			}
		}

		// Bytes arriving later cannot change what came before.
		switch {
		case err1 == nil:
			if err != nil || n != n1 {
				t.Fatalf("prefix gave a head of %d bytes, whole input n=%d err=%v", n1, n, err)
			}
		case err1 != ErrNeedMore:
			if err == nil {
				t.Fatalf("prefix refused (%v) but the whole input was accepted", err1)
			}
		}
		if err != nil {
			return
		}
		if !bytes.HasSuffix(data[:n], []byte("\r\n\r\n")) {
			t.Fatalf("head of %d bytes does not end with CRLFCRLF", n)
		}
		a, err := u.Negotiate(req)
		if err != nil {
			var he *HTTPError
			if !errors.As(err, &he) {
				t.Fatalf("Negotiate error of type %T", err)
			}
			return
		}
		resp := AppendAccept(nil, req, a)
		if !bytes.HasPrefix(resp, []byte("HTTP/1.1 101 ")) || !bytes.HasSuffix(resp, []byte("\r\n\r\n")) {
			t.Fatalf("accept response %q", resp)
		}
		if RequestEnd(resp) != len(resp) {
			t.Fatalf("accept response has an early blank line: %q", resp)
		}
	})
}
