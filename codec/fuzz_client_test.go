package codec

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReadResponse feeds a response in two reads split at a fuzz-chosen
// point and checks ReadResponse's contract: no panic; n within the input and
// at the end of the head; a prefix never refused unless the whole is; the
// same verdict whichever way the bytes arrive; an accepted response is a
// 101 that carries the right accept key and only what was offered.
func FuzzReadResponse(f *testing.F) {
	h := ClientHandshake{
		Host:           "h",
		Protocols:      []string{"chat", "v1.wsd"},
		Extensions:     "permessage-deflate; server_max_window_bits=10; client_max_window_bits, permessage-deflate",
		MaxHeaderBytes: 1024,
	}
	for _, seed := range []string{
		rfcResponse,
		rfcResponse + "\x81\x02hi",
		"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + rfcAccept +
			"\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=9; client_max_window_bits=12\r\n\r\n",
		"HTTP/1.1 101\r\nupgrade: WebSocket\r\nconnection: keep-alive, upgrade\r\nsec-websocket-accept: " + rfcAccept + "\r\n\r\n",
		string(AppendHTTPError(nil, errWSVersion)),
		"HTTP/1.0 503 Busy\r\n\r\n",
		"HTTP/1.1 101 OK\nUpgrade: websocket\n\n",
		"\x16\x03\x01\x02\x00",
	} {
		f.Add([]byte(seed), uint16(len(seed)/2))
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint16) {
		k := int(split) % (len(data) + 1)
		resp1, n1, err1 := h.ReadResponse(bytes.Clone(data[:k]), rfcKey)
		resp, n, err := h.ReadResponse(data, rfcKey)

		var re *ResponseError
		refused := errors.As(err, &re) && re.Status != 0
		switch {
		case err == nil, refused:
			if resp == nil || n < 4 || n > len(data) || n > h.MaxHeaderBytes || string(data[n-4:n]) != "\r\n\r\n" {
				t.Fatalf("n=%d of %d, resp %v, err %v", n, len(data), resp, err)
			}
			if bytes.Contains(data[:n-2], []byte("\r\n\r\n")) {
				t.Fatalf("head ends at %d, past its first CRLFCRLF", n)
			}
		default:
			if resp != nil || n != 0 {
				t.Fatalf("error %v with n=%d resp %v", err, n, resp)
			}
		}
		if err == nil {
			if resp.Status != 101 || resp.Get("Sec-WebSocket-Accept") != rfcAccept {
				t.Fatalf("accepted %+v", resp)
			}
			if resp.Protocol != "" && !offered(h.Protocols, resp.Protocol) {
				t.Fatalf("accepted protocol %q", resp.Protocol)
			}
			p := resp.Params
			if resp.Deflate && (p.ClientMaxWindowBits != 0 && (p.ClientMaxWindowBits < 8 || p.ClientMaxWindowBits > 15) ||
				p.ServerMaxWindowBits != 0 && (p.ServerMaxWindowBits < 8 || p.ServerMaxWindowBits > 15)) {
				t.Fatalf("accepted deflate params %+v", p)
			}
			if !resp.Deflate && p != (DeflateParams{}) {
				t.Fatalf("params %+v without deflate", p)
			}
		}

		// What the first read said must agree with the whole.
		switch {
		case errors.Is(err1, ErrNeedMore):
			if n > 0 && n <= k {
				t.Fatalf("prefix of %d bytes needs more, but the head ends at %d", k, n)
			}
		case err1 == nil || (errors.As(err1, &re) && re.Status != 0):
			if n1 != n || (err1 == nil) != (err == nil) || resp1.Status != resp.Status {
				t.Fatalf("prefix: n=%d err=%v; whole: n=%d err=%v", n1, err1, n, err)
			}
		default:
			if err == nil || refused {
				t.Fatalf("prefix of %d bytes refused (%v) but the whole passes (n=%d, %v)", k, err1, n, err)
			}
		}
	})
}
