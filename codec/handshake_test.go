package codec

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const (
	rfcKey    = "dGhlIHNhbXBsZSBub25jZQ=="
	rfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
)

// Real-world shaped requests; every one must be accepted.
var (
	curlRequest = "GET /echo HTTP/1.1\r\n" +
		"Host: localhost:8080\r\n" +
		"User-Agent: curl/8.5.0\r\n" +
		"Accept: */*\r\n" +
		"Connection: Upgrade\r\n" +
		"Upgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Sec-WebSocket-Key: " + rfcKey + "\r\n\r\n"

	chromeRequest = "GET /ws?token=abc&x=%20y HTTP/1.1\r\n" +
		"Host: example.com\r\n" +
		"Connection: Upgrade\r\n" +
		"Pragma: no-cache\r\n" +
		"Cache-Control: no-cache\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36\r\n" +
		"Upgrade: websocket\r\n" +
		"Origin: https://example.com\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Accept-Encoding: gzip, deflate, br\r\n" +
		"Accept-Language: en-US,en;q=0.9\r\n" +
		"Cookie: session=0123456789abcdef; theme=dark\r\n" +
		"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" +
		"Sec-WebSocket-Protocol: chat, superchat\r\n\r\n"

	firefoxRequest = "GET /chat HTTP/1.1\r\n" +
		"Host: example.com:443\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0\r\n" +
		"Accept: */*\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Origin: https://example.com\r\n" +
		"Sec-WebSocket-Protocol: v2.wsd\r\n" +
		"Sec-WebSocket-Protocol: v1.wsd\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate\r\n" +
		"Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n" +
		"Connection: keep-alive, Upgrade\r\n" +
		"Sec-Fetch-Dest: empty\r\n" +
		"Sec-Fetch-Mode: websocket\r\n" +
		"Pragma: no-cache\r\n" +
		"Upgrade: websocket\r\n\r\n"
)

// maskedText is a client text frame "Hello" (RFC 6455 §5.7) pipelined behind
// the request.
var maskedText = []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}

func TestReadRequestValid(t *testing.T) {
	tests := []struct {
		name      string
		head      string
		trailer   []byte
		method    string
		uri       string
		path      string
		query     string
		host      string
		origin    string
		key       string
		protocols []string
		ext       string
		headers   int
	}{
		{
			name: "curl", head: curlRequest,
			method: "GET", uri: "/echo", path: "/echo", host: "localhost:8080", key: rfcKey, headers: 7,
		},
		{
			name: "chrome with pipelined frame", head: chromeRequest, trailer: maskedText,
			method: "GET", uri: "/ws?token=abc&x=%20y", path: "/ws", query: "token=abc&x=%20y",
			host: "example.com", origin: "https://example.com", key: "x3JJHMbDL1EzLkh9GBhXDw==",
			protocols: []string{"chat", "superchat"}, ext: "permessage-deflate; client_max_window_bits", headers: 14,
		},
		{
			name: "firefox, repeated protocol lines", head: firefoxRequest, trailer: []byte("GET / HTTP/1.1\r\n"),
			method: "GET", uri: "/chat", path: "/chat", host: "example.com:443", origin: "https://example.com",
			key: "AQIDBAUGBwgJCgsMDQ4PEA==", protocols: []string{"v2.wsd", "v1.wsd"}, ext: "permessage-deflate", headers: 14,
		},
		{
			name: "absolute-form target, odd spacing in values",
			head: "GET ws://example.com:8080/a/b?c=d HTTP/1.1\r\nhost:example.com\r\nUPGRADE: \tWebSocket \r\nconnection:upgrade\r\n" +
				"sec-websocket-version:13\r\nsec-websocket-key:" + rfcKey + "\r\nSec-WebSocket-Extensions: a\r\nSec-WebSocket-Extensions: b;x=1\r\nX-Empty:\r\n\r\n",
			method: "GET", uri: "ws://example.com:8080/a/b?c=d", path: "/a/b", query: "c=d", host: "example.com",
			key: rfcKey, ext: "a, b;x=1", headers: 8,
		},
		{
			name: "absolute-form without path", head: "GET http://h?q HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "GET", uri: "http://h?q", path: "/", query: "q", host: "h", headers: 1,
		},
		{
			name: "no headers at all", head: "GET / HTTP/1.0\r\n\r\n",
			method: "GET", uri: "/", path: "/", headers: 0,
		},
	}
	var u Upgrader
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]byte(tt.head), tt.trailer...)
			req, n, err := u.ReadRequest(in)
			if err != nil {
				t.Fatalf("ReadRequest: %v", err)
			}
			if n != len(tt.head) {
				t.Fatalf("n = %d, want %d (end of head)", n, len(tt.head))
			}
			got := []string{req.Method, req.URI, req.Path, req.RawQuery, req.Host, req.Origin, req.Key, req.Extensions}
			want := []string{tt.method, tt.uri, tt.path, tt.query, tt.host, tt.origin, tt.key, tt.ext}
			if !slices.Equal(got, want) {
				t.Errorf("fields\n got %q\nwant %q", got, want)
			}
			if !slices.Equal(req.Protocols, tt.protocols) {
				t.Errorf("Protocols = %q, want %q", req.Protocols, tt.protocols)
			}
			if len(req.Header) != tt.headers {
				t.Errorf("%d headers, want %d: %q", len(req.Header), tt.headers, req.Header)
			}
			// Strings must not alias the caller's buffer.
			for i := range in {
				in[i] = 'X'
			}
			if req.Method != tt.method || req.Host != tt.host {
				t.Errorf("request aliases the input buffer: %q %q", req.Method, req.Host)
			}
		})
	}
}

func TestReadRequestSplit(t *testing.T) {
	var u Upgrader
	for _, head := range []string{curlRequest, chromeRequest, firefoxRequest} {
		in := append([]byte(head), maskedText...)
		for k := 0; k < len(head); k++ {
			req, n, err := u.ReadRequest(in[:k])
			if err != ErrNeedMore || req != nil || n != 0 {
				t.Fatalf("prefix of %d/%d bytes: req=%v n=%d err=%v, want ErrNeedMore", k, len(head), req != nil, n, err)
			}
		}
		for k := len(head); k <= len(in); k++ {
			_, n, err := u.ReadRequest(in[:k])
			if err != nil || n != len(head) {
				t.Fatalf("%d bytes: n=%d err=%v, want n=%d", k, n, err, len(head))
			}
		}
	}
}

func wantHTTPError(t *testing.T, err error, status int) *HTTPError {
	t.Helper()
	var he *HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("err = %v, want *HTTPError %d", err, status)
	}
	if he.Status != status {
		t.Fatalf("status %d (%s), want %d", he.Status, he.Reason, status)
	}
	return he
}

func TestReadRequestMalformed(t *testing.T) {
	tests := []struct {
		name, in string
		partial  bool // rejected before the head is complete
	}{
		{"empty request line", "\r\nHost: a\r\n\r\n", true},
		{"leading space", " GET / HTTP/1.1\r\n\r\n", true},
		{"double space", "GET  / HTTP/1.1\r\n\r\n", true},
		{"no version", "GET /\r\n\r\n", true},
		{"lowercase version", "GET / http/1.1\r\n\r\n", true},
		{"long version", "GET / HTTP/1.11\r\n\r\n", true},
		{"version letters", "GET / HTTP/x.y\r\n\r\n", true},
		{"trailing space", "GET / HTTP/1.1 \r\n\r\n", true},
		{"method with slash", "G/ET / HTTP/1.1\r\n\r\n", true},
		{"control in target", "GET /a\x01b HTTP/1.1\r\n\r\n", true},
		{"fragment", "GET /a#b HTTP/1.1\r\n\r\n", true},
		{"asterisk target", "GET * HTTP/1.1\r\n\r\n", true},
		{"relative target", "GET a/b HTTP/1.1\r\n\r\n", true},
		{"bad scheme", "GET 1http://h/ HTTP/1.1\r\n\r\n", true},
		{"tls client hello", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", true},
		{"bare LF request line", "GET / HTTP/1.1\nHost: a\n\n", true},
		{"bare LF header", "GET / HTTP/1.1\r\nHost: a\n\r\n\r\n", true},
		{"LF first", "\n", true},
		{"no colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", false},
		{"empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", false},
		{"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", false},
		{"obs-fold", "GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n", false},
		{"obs-fold tab", "GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n", false},
		{"NUL in value", "GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n", false},
		{"bare CR in value", "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", false},
		{"DEL in value", "GET / HTTP/1.1\r\nX-A: a\x7f\r\n\r\n", false},
		{"non-token name", "GET / HTTP/1.1\r\nX(A): a\r\n\r\n", false},
		{"utf-8 name", "GET / HTTP/1.1\r\nnäme: a\r\n\r\n", false},
	}
	var u Upgrader
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, n, err := u.ReadRequest([]byte(tt.in))
			if req != nil || n != 0 {
				t.Fatalf("accepted: n=%d", n)
			}
			wantHTTPError(t, err, 400)
			if !tt.partial {
				return
			}
			// Without the final CRLFCRLF, the garbage is refused already.
			cut := tt.in
			switch {
			case strings.HasSuffix(cut, "\r\n\r\n"):
				cut = cut[:len(cut)-2]
			case len(cut) > 1:
				cut = cut[:len(cut)-1]
			}
			_, _, err = u.ReadRequest([]byte(cut))
			wantHTTPError(t, err, 400)
		})
	}
}

func TestReadRequestTooLarge(t *testing.T) {
	u := Upgrader{MaxHeaderBytes: len(curlRequest)}
	if _, n, err := u.ReadRequest([]byte(curlRequest)); err != nil || n != len(curlRequest) {
		t.Fatalf("head of exactly the limit: n=%d err=%v", n, err)
	}
	u.MaxHeaderBytes--
	in := []byte(curlRequest)
	for k := 0; k <= len(in); k++ {
		_, _, err := u.ReadRequest(in[:k])
		if k <= u.MaxHeaderBytes {
			if err != ErrNeedMore {
				t.Fatalf("%d bytes: %v, want ErrNeedMore", k, err)
			}
			continue
		}
		he := wantHTTPError(t, err, 431)
		if !strings.Contains(he.Error(), "431 Request Header Fields Too Large") {
			t.Errorf("Error() = %q", he.Error())
		}
	}

	// The default limit is 8 KiB.
	var d Upgrader
	big := "GET / HTTP/1.1\r\nX-Pad: " + strings.Repeat("a", 8192) + "\r\n\r\n"
	if _, _, err := d.ReadRequest([]byte(big[:8192])); err != ErrNeedMore {
		t.Fatalf("8192 bytes: %v", err)
	}
	_, _, err := d.ReadRequest([]byte(big[:8193]))
	wantHTTPError(t, err, 431)
	_, _, err = d.ReadRequest([]byte(big))
	wantHTTPError(t, err, 431)
}

// mutate rewrites curlRequest: it drops every line starting with
// drop and appends add (already CRLF-terminated).
func mutate(drop, add string) *Request {
	var b strings.Builder
	for _, line := range strings.SplitAfter(strings.TrimSuffix(curlRequest, "\r\n"), "\r\n") {
		if drop != "" && strings.HasPrefix(line, drop) {
			continue
		}
		b.WriteString(line)
	}
	b.WriteString(add + "\r\n")
	var u Upgrader
	req, _, err := u.ReadRequest([]byte(b.String()))
	if err != nil {
		panic(err)
	}
	return req
}

func TestNegotiateRejects(t *testing.T) {
	tests := []struct {
		name   string
		req    *Request
		status int
		header HeaderField
	}{
		{"POST", reqFrom("POST /echo HTTP/1.1\r\n", curlRequest), 405, HeaderField{"Allow", "GET"}},
		{"lowercase get", reqFrom("get /echo HTTP/1.1\r\n", curlRequest), 405, HeaderField{"Allow", "GET"}},
		{"HTTP/1.0", reqFrom("GET /echo HTTP/1.0\r\n", curlRequest), 400, HeaderField{}},
		{"HTTP/2.0", reqFrom("GET /echo HTTP/2.0\r\n", curlRequest), 400, HeaderField{}},
		{"HTTP/0.9", reqFrom("GET /echo HTTP/0.9\r\n", curlRequest), 400, HeaderField{}},
		{"no Host", mutate("Host:", ""), 400, HeaderField{}},
		{"empty Host", mutate("Host:", "Host: \r\n"), 400, HeaderField{}},
		{"two Hosts", mutate("", "Host: evil.example\r\n"), 400, HeaderField{}},
		{"no Upgrade", mutate("Upgrade:", ""), 426, HeaderField{"Upgrade", "websocket"}},
		{"Upgrade h2c", mutate("Upgrade:", "Upgrade: h2c\r\n"), 426, HeaderField{"Upgrade", "websocket"}},
		{"Upgrade websocketx", mutate("Upgrade:", "Upgrade: websocketx\r\n"), 426, HeaderField{"Upgrade", "websocket"}},
		{"no Connection", mutate("Connection:", ""), 400, HeaderField{}},
		{"Connection keep-alive", mutate("Connection:", "Connection: keep-alive\r\n"), 400, HeaderField{}},
		{"Connection upgraded", mutate("Connection:", "Connection: upgraded\r\n"), 400, HeaderField{}},
		{"no version", mutate("Sec-WebSocket-Version:", ""), 426, HeaderField{"Sec-WebSocket-Version", "13"}},
		{"version 8", mutate("Sec-WebSocket-Version:", "Sec-WebSocket-Version: 8\r\n"), 426, HeaderField{"Sec-WebSocket-Version", "13"}},
		{"version list", mutate("Sec-WebSocket-Version:", "Sec-WebSocket-Version: 13, 8\r\n"), 426, HeaderField{"Sec-WebSocket-Version", "13"}},
		{"two versions", mutate("", "Sec-WebSocket-Version: 13\r\n"), 426, HeaderField{"Sec-WebSocket-Version", "13"}},
		{"no key", mutate("Sec-WebSocket-Key:", ""), 400, HeaderField{}},
		{"empty key", mutate("Sec-WebSocket-Key:", "Sec-WebSocket-Key:\r\n"), 400, HeaderField{}},
		{"key 15 bytes", mutate("Sec-WebSocket-Key:", "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4P\r\n"), 400, HeaderField{}},
		{"key 17 bytes", mutate("Sec-WebSocket-Key:", "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEBE=\r\n"), 400, HeaderField{}},
		{"key not base64", mutate("Sec-WebSocket-Key:", "Sec-WebSocket-Key: !QIDBAUGBwgJCgsMDQ4PEA==\r\n"), 400, HeaderField{}},
		{"key url alphabet", mutate("Sec-WebSocket-Key:", "Sec-WebSocket-Key: -_IDBAUGBwgJCgsMDQ4PEA==\r\n"), 400, HeaderField{}},
		{"key unpadded", mutate("Sec-WebSocket-Key:", "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA\r\n"), 400, HeaderField{}},
		{"two keys", mutate("", "Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n"), 400, HeaderField{}},
	}
	var u Upgrader
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := u.Negotiate(tt.req)
			if a != (Accept{}) {
				t.Errorf("Accept = %+v on refusal", a)
			}
			he := wantHTTPError(t, err, tt.status)
			if tt.header.Name != "" && !slices.Contains(he.Header, tt.header) {
				t.Errorf("headers %q lack %q", he.Header, tt.header)
			}
			resp := string(AppendHTTPError(nil, he))
			if !strings.HasPrefix(resp, "HTTP/1.1 ") || !strings.Contains(resp, "\r\nConnection: close\r\n") {
				t.Errorf("response %q", resp)
			}
		})
	}
}

func reqFrom(requestLine, base string) *Request {
	_, rest, _ := strings.Cut(base, "\r\n")
	var u Upgrader
	req, _, err := u.ReadRequest([]byte(requestLine + rest))
	if err != nil {
		panic(err)
	}
	return req
}

func TestNegotiateAcceptsVariants(t *testing.T) {
	var u Upgrader
	for _, req := range []*Request{
		mutate("Upgrade:", "Upgrade: foo/1, WebSocket\r\n"),
		mutate("Connection:", "Connection: keep-alive, Upgrade\r\n"),
		mutate("Connection:", "Connection: keep-alive\r\nConnection: UPGRADE\r\n"),
		mutate("Connection:", "Connection: keep-alive,upgrade,\r\n"),
		reqFrom("GET /echo HTTP/1.2\r\n", curlRequest),
	} {
		if _, err := u.Negotiate(req); err != nil {
			t.Errorf("%q: %v", req.Header, err)
		}
	}
}

func TestAppendAcceptRFCExample(t *testing.T) {
	var u Upgrader
	req, _, err := u.ReadRequest([]byte(curlRequest))
	if err != nil {
		t.Fatal(err)
	}
	a, err := u.Negotiate(req)
	if err != nil {
		t.Fatal(err)
	}
	got := string(AppendAccept([]byte("prefix"), req, a))
	want := "prefixHTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + rfcAccept + "\r\n\r\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}

	got = string(AppendAccept(nil, req, Accept{Protocol: "chat", Deflate: true, Params: DeflateParams{ServerNoContextTakeover: true, ClientNoContextTakeover: true}}))
	want = "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + rfcAccept + "\r\n" +
		"Sec-WebSocket-Protocol: chat\r\n" +
		"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n\r\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

func TestSubprotocol(t *testing.T) {
	tests := []struct {
		server []string
		offer  string // header lines
		want   string
	}{
		{nil, "Sec-WebSocket-Protocol: chat\r\n", ""},
		{[]string{"chat"}, "", ""},
		{[]string{"chat"}, "Sec-WebSocket-Protocol: chat\r\n", "chat"},
		{[]string{"v2", "v1"}, "Sec-WebSocket-Protocol: v1, v2\r\n", "v2"},
		{[]string{"v2", "v1"}, "Sec-WebSocket-Protocol: v1\r\nSec-WebSocket-Protocol: v3,v2\r\n", "v2"},
		{[]string{"v3", "v1"}, "Sec-WebSocket-Protocol: v1 , v2\r\n", "v1"},
		{[]string{"Chat"}, "Sec-WebSocket-Protocol: chat\r\n", ""},
		{[]string{"a"}, "Sec-WebSocket-Protocol: ,, b,\r\n", ""},
	}
	for _, tt := range tests {
		u := Upgrader{Protocols: tt.server}
		req := mutate("", tt.offer)
		a, err := u.Negotiate(req)
		if err != nil {
			t.Fatal(err)
		}
		if a.Protocol != tt.want {
			t.Errorf("server %q, offer %q: chose %q, want %q", tt.server, tt.offer, a.Protocol, tt.want)
		}
		resp := string(AppendAccept(nil, req, a))
		if has := strings.Contains(resp, "Sec-WebSocket-Protocol:"); has != (tt.want != "") {
			t.Errorf("response %q", resp)
		}
	}
}

func TestCheckOrigin(t *testing.T) {
	var seen []string
	u := Upgrader{CheckOrigin: func(r *Request) bool {
		seen = append(seen, r.Origin)
		return r.Origin == "https://example.com"
	}}
	if _, err := u.Negotiate(mutate("", "Origin: https://example.com\r\n")); err != nil {
		t.Errorf("allowed origin: %v", err)
	}
	_, err := u.Negotiate(mutate("", "Origin: https://evil.example\r\n"))
	wantHTTPError(t, err, 403)
	_, err = u.Negotiate(mutate("", ""))
	wantHTTPError(t, err, 403)
	if want := []string{"https://example.com", "https://evil.example", ""}; !slices.Equal(seen, want) {
		t.Errorf("hook saw %q, want %q", seen, want)
	}
	// The hook only runs for an otherwise valid upgrade.
	_, err = u.Negotiate(mutate("Sec-WebSocket-Key:", "Origin: https://example.com\r\n"))
	wantHTTPError(t, err, 400)
	if len(seen) != 3 {
		t.Errorf("hook ran on an invalid request")
	}
}

func TestNegotiateDeflate(t *testing.T) {
	off := DeflateConfig{Enabled: true}
	keep := DeflateConfig{Enabled: true, ContextTakeover: true}
	const (
		both       = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
		declined   = ""
		plainReply = "permessage-deflate"
	)
	tests := []struct {
		name  string
		cfg   DeflateConfig
		offer string
		want  string // Sec-WebSocket-Extensions answered, "" = declined
	}{
		{"disabled", DeflateConfig{}, "permessage-deflate", declined},
		{"no offer", off, "", declined},
		{"other extension only", off, "x-webkit-deflate-frame", declined},
		{"plain", off, "permessage-deflate", both},
		{"case-insensitive name", off, "PerMessage-Deflate", both},
		{"chrome", off, "permessage-deflate; client_max_window_bits", both},
		{"client window value", off, "permessage-deflate; client_max_window_bits=9", both},
		{"quoted client window", off, `permessage-deflate; client_max_window_bits="10"`, both},
		{"server window 15", off, "permessage-deflate; server_max_window_bits=15", both + "; server_max_window_bits=15"},
		{"server window 10", off, "permessage-deflate; server_max_window_bits=10", both + "; server_max_window_bits=10"},
		{"server window 8", keep, "permessage-deflate; server_max_window_bits=8", "permessage-deflate; server_max_window_bits=8"},
		{"server window 10, first of two", off, "permessage-deflate; server_max_window_bits=10, permessage-deflate; client_max_window_bits", both + "; server_max_window_bits=10"},
		{"server window 7 then fallback", off, "permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits", both},
		{"no-context offers", off, "permessage-deflate; server_no_context_takeover; client_no_context_takeover", both},
		{"takeover: plain", keep, "permessage-deflate", plainReply},
		{"takeover: chrome", keep, "permessage-deflate; client_max_window_bits", plainReply},
		{"takeover: server_no_context_takeover honoured", keep, "permessage-deflate; server_no_context_takeover", "permessage-deflate; server_no_context_takeover"},
		{"takeover: client_no_context_takeover echoed", keep, "permessage-deflate; client_no_context_takeover", "permessage-deflate; client_no_context_takeover"},
		{"takeover: both", keep, "permessage-deflate; client_no_context_takeover; server_no_context_takeover", both},
		{"unknown param skipped", off, "permessage-deflate; foo=1, permessage-deflate", both},
		{"unknown param only", off, "permessage-deflate; foo", declined},
		{"duplicate param", off, "permessage-deflate; server_no_context_takeover; server_no_context_takeover", declined},
		{"duplicate valueless window", off, "permessage-deflate; client_max_window_bits; client_max_window_bits", declined},
		{"duplicate window", off, "permessage-deflate; client_max_window_bits=9; client_max_window_bits=10", declined},
		{"window 7", off, "permessage-deflate; client_max_window_bits=7", declined},
		{"window 16", off, "permessage-deflate; server_max_window_bits=16", declined},
		{"window with a leading zero", off, "permessage-deflate; server_max_window_bits=09", declined},
		{"window not a number", off, "permessage-deflate; client_max_window_bits=x", declined},
		{"server window without value", off, "permessage-deflate; server_max_window_bits", declined},
		{"no_context with value", off, "permessage-deflate; client_no_context_takeover=1", declined},
		{"first of several", keep, "permessage-deflate; client_no_context_takeover, permessage-deflate", "permessage-deflate; client_no_context_takeover"},
		{"after another extension", off, "x-foo; a=1, permessage-deflate", both},
		{"syntax error declines all", off, "permessage-deflate, x;;", declined},
		{"unterminated quote", off, `permessage-deflate; client_max_window_bits="10`, declined},
		{"two header lines", off, "x-foo\r\nSec-WebSocket-Extensions: permessage-deflate", both},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			add := ""
			if tt.offer != "" {
				add = "Sec-WebSocket-Extensions: " + tt.offer + "\r\n"
			}
			req := mutate("", add)
			u := Upgrader{Deflate: tt.cfg}
			a, err := u.Negotiate(req)
			if err != nil {
				t.Fatal(err)
			}
			if a.Deflate != (tt.want != "") {
				t.Fatalf("Deflate = %v (%+v), want answer %q", a.Deflate, a.Params, tt.want)
			}
			resp := string(AppendAccept(nil, req, a))
			line := ""
			if _, rest, ok := strings.Cut(resp, "Sec-WebSocket-Extensions: "); ok {
				line, _, _ = strings.Cut(rest, "\r\n")
			}
			if line != tt.want {
				t.Errorf("answered %q, want %q", line, tt.want)
			}
			if req.Extensions != strings.ReplaceAll(tt.offer, "\r\nSec-WebSocket-Extensions: ", ", ") {
				t.Errorf("negotiation modified req.Extensions: %q", req.Extensions)
			}
		})
	}
}

func TestAppendHTTPError(t *testing.T) {
	got := string(AppendHTTPError(nil, errWSVersion))
	want := "HTTP/1.1 426 Upgrade Required\r\n" +
		"Sec-WebSocket-Version: 13\r\n" +
		"Upgrade: websocket\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: 57\r\n" +
		"Connection: close\r\n\r\n" +
		"unsupported Sec-WebSocket-Version, this server speaks 13\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	// Header injection is neutralised; odd statuses still make a valid line.
	got = string(AppendHTTPError(nil, &HTTPError{Status: 7, Reason: "x", Header: []HeaderField{{"A\r\nB", "c\r\nSet-Cookie: x"}}}))
	want = "HTTP/1.1 500 Internal Server Error\r\n" +
		"A  B: c  Set-Cookie: x\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: 2\r\n" +
		"Connection: close\r\n\r\nx\n"
	if got != want {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	got = string(AppendHTTPError(nil, &HTTPError{Status: 503, Reason: "busy"}))
	if !strings.HasPrefix(got, "HTTP/1.1 503 Service Unavailable\r\n") || !strings.HasSuffix(got, "Content-Length: 5\r\nConnection: close\r\n\r\nbusy\n") {
		t.Errorf("got %q", got)
	}
}

func TestRequestGet(t *testing.T) {
	req := mutate("", "X-Dup: one\r\nx-dup: two\r\n")
	for name, want := range map[string]string{
		"x-dup": "one", "X-DUP": "one", "sec-websocket-key": rfcKey, "HOST": "localhost:8080", "missing": "",
	} {
		if got := req.Get(name); got != want {
			t.Errorf("Get(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestRequestEnd(t *testing.T) {
	for in, want := range map[string]int{
		"": -1, "\r\n\r": -1, "\r\n\r\n": 4, "a\r\n\r\nb\r\n\r\n": 5, "a\n\n": -1,
	} {
		if got := RequestEnd([]byte(in)); got != want {
			t.Errorf("RequestEnd(%q) = %d, want %d", in, got, want)
		}
	}
}

func BenchmarkReadRequest(b *testing.B) {
	var u Upgrader
	in := []byte(chromeRequest)
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := u.ReadRequest(in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHandshake(b *testing.B) {
	u := Upgrader{Protocols: []string{"chat"}, Deflate: DeflateConfig{Enabled: true}}
	in := []byte(chromeRequest)
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		req, _, err := u.ReadRequest(in)
		if err != nil {
			b.Fatal(err)
		}
		a, err := u.Negotiate(req)
		if err != nil {
			b.Fatal(err)
		}
		buf = AppendAccept(buf[:0], req, a)
	}
}

// A request line is judged as it arrives, part by part, so bytes that are
// not HTTP are refused without waiting for a CRLF that random bytes may
// never send; a prefix of a valid line is never refused.
func TestReadRequestJudgesLinePrefix(t *testing.T) {
	var u Upgrader
	for _, in := range []string{
		"GET /a\x01", "GET \xff", "GET a\x00", "GET /#", "GET /a\x7f", "A  ", "GET / X", "GET / HTTP/a",
		"GET / HTTP/1.1x", "GET / HTTP/1.1\rx", "GET / HTTP/1.1 ", "G\x00",
	} {
		if _, _, err := u.ReadRequest([]byte(in)); err == ErrNeedMore {
			t.Errorf("%q: ErrNeedMore, want 400 at once", in)
		} else {
			wantHTTPError(t, err, 400)
		}
	}
	for _, in := range []string{
		"G", "GET", "GET ", "GET /", "GET /a\x80b", "GET http://h/x", "GET / ", "GET / H", "GET / HTTP/1.",
		"GET / HTTP/1.1", "GET / HTTP/1.1\r",
	} {
		if _, _, err := u.ReadRequest([]byte(in)); err != ErrNeedMore {
			t.Errorf("%q: %v, want ErrNeedMore", in, err)
		}
	}
}
