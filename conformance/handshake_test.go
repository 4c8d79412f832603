package conformance

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// request builds an upgrade request from base headers; set replaces or
// (with an empty value) removes a header, keyed by its canonical name.
func request(method, path, proto, host string, set map[string]string, extra ...string) []byte {
	h := [][2]string{
		{"Host", host},
		{"Upgrade", "websocket"},
		{"Connection", "Upgrade"},
		{"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
		{"Sec-WebSocket-Version", "13"},
	}
	var b strings.Builder
	b.WriteString(method + " " + path + " " + proto + "\r\n")
	for _, kv := range h {
		v := kv[1]
		if s, ok := set[kv[0]]; ok {
			v = s
		}
		if v != "" {
			b.WriteString(kv[0] + ": " + v + "\r\n")
		}
	}
	for _, e := range extra {
		b.WriteString(e + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// RFC 6455 §4.2: the opening handshake, good and bad.
func TestHandshake(t *testing.T) {
	addr := srvDefault.need(t)
	big := make([]string, 0, 100)
	for len(strings.Join(big, "\r\n")) <= 9<<10 {
		big = append(big, "X-Padding-"+strings.Repeat("p", 8)+": "+strings.Repeat("v", 90))
	}
	cases := []struct {
		name   string
		req    []byte
		status []int
		check  func(*http.Response) string
	}{
		{"valid request", request("GET", "/echo", "HTTP/1.1", addr, nil), []int{101}, func(r *http.Response) string {
			if got := r.Header.Get("Sec-WebSocket-Accept"); got != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
				return "Sec-WebSocket-Accept " + got + ", want s3pPLMBiTxaQ9kYGzzhZRbK+xOo= (RFC 6455 §1.3 example)"
			}
			return ""
		}},
		{"mixed-case Upgrade, Connection list", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{
			"Upgrade": "WebSocket", "Connection": "keep-alive, Upgrade"}), []int{101}, nil},
		{"missing Sec-WebSocket-Key", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{"Sec-WebSocket-Key": ""}), []int{400}, nil},
		{"Sec-WebSocket-Key not base64", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{"Sec-WebSocket-Key": "not base64!!"}), []int{400}, nil},
		{"Sec-WebSocket-Key of 15 bytes", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25j"}), []int{400}, nil},
		{"Sec-WebSocket-Key of 17 bytes", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZXg="}), []int{400}, nil},
		{"Sec-WebSocket-Version 8", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{"Sec-WebSocket-Version": "8"}), []int{426}, needVersionHeader},
		{"Sec-WebSocket-Version missing", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{"Sec-WebSocket-Version": ""}), []int{400, 426}, func(r *http.Response) string {
			if r.StatusCode == 426 {
				return needVersionHeader(r)
			}
			return ""
		}},
		{"POST", request("POST", "/echo", "HTTP/1.1", addr, nil, "Content-Length: 0"), []int{405}, nil},
		{"missing Upgrade", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{"Upgrade": ""}), []int{400, 426}, nil},
		{"Upgrade: h2c", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{"Upgrade": "h2c"}), []int{400, 426}, nil},
		{"Connection without upgrade", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{"Connection": "keep-alive"}), []int{400, 426}, nil},
		{"missing Host", request("GET", "/echo", "HTTP/1.1", addr, map[string]string{"Host": ""}), []int{400}, nil},
		{"HTTP/1.0", request("GET", "/echo", "HTTP/1.0", addr, nil), []int{400, 505}, nil},
		{"headers over 8 KiB", request("GET", "/echo", "HTTP/1.1", addr, nil, big...), []int{431, 400}, nil},
		{"unknown path", request("GET", "/no-such-endpoint", "HTTP/1.1", addr, nil), []int{404}, nil},
		{"garbage request line", []byte("GARBAGE\r\n\r\n"), []int{400}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := RawResponse(addr, tc.req, DefaultTimeout)
			if err != nil {
				srvDefault.checkAlive(t)
				t.Fatalf("want status %v, got error: %v", tc.status, err)
			}
			if !slices.Contains(tc.status, resp.StatusCode) {
				t.Fatalf("want status %v, got %q (headers %v)", tc.status, resp.Status, resp.Header)
			}
			if tc.check != nil {
				if msg := tc.check(resp); msg != "" {
					t.Fatal(msg)
				}
			}
		})
	}

	t.Run("request written one byte at a time", func(t *testing.T) {
		t.Parallel()
		c := dial(t, srvDefault, Options{SplitDelay: time.Millisecond})
		defer c.Close()
		if err := c.Write(frs(opText, "hi")); err != nil {
			t.Fatal(err)
		}
		expect(t, c, text("hi"))
		closeNormally(t, c)
	})
	t.Run("frames pipelined with the request", func(t *testing.T) {
		t.Parallel()
		c := dial(t, srvDefault, Options{Pipelined: cat(frs(opText, "first"), fr(opBinary, []byte{1, 2, 3}), frs(opPing, "p"))})
		defer c.Close()
		expect(t, c, text("first"), bin([]byte{1, 2, 3}), pong([]byte("p")))
		closeNormally(t, c)
	})
	t.Run("close pipelined with the request", func(t *testing.T) {
		t.Parallel()
		c := dial(t, srvDefault, Options{Pipelined: cat(frs(opText, "only"), fr(opClose, CloseBody(1000, "")))})
		defer c.Close()
		expect(t, c, text("only"), closed(1000))
	})
	t.Run("deflate frame pipelined with the request", func(t *testing.T) {
		t.Parallel()
		p := []byte("compressed and pipelined, compressed and pipelined")
		c := dial(t, srvDefault, Options{Extensions: offer, Pipelined: Frame(opText, true, 4, compress(p))})
		defer c.Close()
		if c.Deflate == nil {
			t.Fatal("permessage-deflate not accepted")
		}
		expect(t, c, textB(p))
		closeNormally(t, c)
	})
}

func needVersionHeader(r *http.Response) string {
	for _, v := range r.Header.Values("Sec-WebSocket-Version") {
		for _, s := range strings.Split(v, ",") {
			if strings.TrimSpace(s) == "13" {
				return ""
			}
		}
	}
	return "426 without Sec-WebSocket-Version: 13 (got " + strings.Join(r.Header.Values("Sec-WebSocket-Version"), ", ") + ")"
}
