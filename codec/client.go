package codec

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strconv"
	"strings"
)

// The client side of the RFC 6455 §4.1 opening handshake: the request a
// client sends and the check of the server's answer, on byte slices, with
// no I/O. The response parser shares the request parser's strictness (CRLF
// only, no folding): wsd's clients talk to wsd, directly or through a
// proxy, and both write clean HTTP/1.1.

// defaultMaxResponseBytes bounds a response head when
// ClientHandshake.MaxHeaderBytes is zero: a 101 is a few hundred bytes, but
// a proxy's refusal may carry more headers.
const defaultMaxResponseBytes = 16 << 10

// ResponseError is an upgrade response the client must not accept. Status
// is the response's status code when the server refused the upgrade (any
// status but 101), and 0 when the response itself is at fault. The shared
// values below are never modified; reading one from several goroutines is
// safe.
type ResponseError struct {
	Status int
	Reason string
}

// Error describes the failure; it is safe for concurrent use.
func (e *ResponseError) Error() string {
	return "websocket: upgrade response: " + e.Reason
}

// Failures of a response head. Compare with errors.Is.
var (
	ErrResponseTooLarge   = &ResponseError{Reason: "head too large"}
	ErrResponseMalformed  = &ResponseError{Reason: "malformed HTTP response head"}
	ErrResponseVersion    = &ResponseError{Reason: "101 Switching Protocols must be HTTP/1.1"}
	ErrResponseUpgrade    = &ResponseError{Reason: "missing or wrong Upgrade header, want websocket"}
	ErrResponseConnection = &ResponseError{Reason: "the Connection header lacks Upgrade"}
	ErrResponseAccept     = &ResponseError{Reason: "missing or wrong Sec-WebSocket-Accept"}
	ErrResponseProtocol   = &ResponseError{Reason: "the server chose a subprotocol the client did not offer"}
	ErrResponseExtension  = &ResponseError{Reason: "the server answered with an extension or parameters the client did not offer"}
)

// ClientHandshake is what a client offers when it upgrades. Configure it
// before use and do not modify it afterwards; then its methods are safe for
// concurrent use (one ClientHandshake serves every connection, each with its
// own key).
type ClientHandshake struct {
	// Host is the Host header's value ("example.com:8080").
	Host string
	// Path is the request target in origin form, path and query,
	// percent-encoded ("/ws?token=x"). "" means "/".
	Path string
	// Protocols are the subprotocols offered, in preference order.
	Protocols []string
	// Extensions is the Sec-WebSocket-Extensions value offered ("" offers
	// none). The response may only accept one of these permessage-deflate
	// offers; no other extension is understood.
	Extensions string
	// Header holds extra header lines, written after the ones above in
	// order. They must not repeat those: a server refuses a second Host or
	// Sec-WebSocket-Key.
	Header []HeaderField
	// MaxHeaderBytes bounds the response head, status line and final
	// CRLFCRLF included. Zero or negative means 16 KiB.
	MaxHeaderBytes int
}

// Response is a parsed upgrade response. Its strings are copies sharing one
// allocation. It is not modified after ReadResponse returns it, so it may
// be read from several goroutines.
type Response struct {
	// Status and Reason are from the status line.
	Status int
	Reason string
	// Header is every header line as received, original case and order.
	Header []HeaderField
	// Protocol is the subprotocol the server chose, "" if none.
	Protocol string
	// Deflate reports whether the server accepted permessage-deflate;
	// Params are then the parameters it answered with.
	Deflate bool
	Params  DeflateParams
}

// Get returns the first value of the header called name (case-insensitive),
// or "" if there is none. Safe for concurrent use.
func (r *Response) Get(name string) string {
	for i := range r.Header {
		if strings.EqualFold(r.Header[i].Name, name) {
			return r.Header[i].Value
		}
	}
	return ""
}

// NewKey returns a fresh Sec-WebSocket-Key: base64 of 16 random bytes from
// crypto/rand. Safe for concurrent use.
func NewKey() string {
	var raw [16]byte
	_, _ = rand.Read(raw[:]) // never fails (crypto/rand panics instead)
	return string(AppendKey(nil, &raw))
}

// AppendKey appends the Sec-WebSocket-Key made of raw (24 bytes of base64),
// for callers with their own source of randomness; RFC 6455 §4.1 asks for
// a new, unpredictable key per connection. Safe for concurrent use.
func AppendKey(dst []byte, raw *[16]byte) []byte {
	return base64.StdEncoding.AppendEncode(dst, raw[:])
}

// AcceptKey returns the Sec-WebSocket-Accept value a server answers key
// with. Safe for concurrent use.
func AcceptKey(key string) string {
	var buf [28]byte
	return string(AppendAcceptKey(buf[:0], key))
}

// AppendRequest appends the upgrade request (RFC 6455 §4.1) with key as its
// Sec-WebSocket-Key: request line, Host, Upgrade, Connection, the key,
// Sec-WebSocket-Version: 13, Sec-WebSocket-Protocol and
// Sec-WebSocket-Extensions when offered, h.Header, and the blank line.
// Control characters, spaces in Path and CTLs in header fields are
// neutralised so that no field can inject a line. Safe for concurrent use.
func (h *ClientHandshake) AppendRequest(dst []byte, key string) []byte {
	dst = append(dst, "GET "...)
	dst = appendTarget(dst, h.Path)
	dst = append(dst, " HTTP/1.1\r\n"...)
	dst = appendHeaderField(dst, "Host", h.Host)
	dst = append(dst, "Upgrade: websocket\r\nConnection: Upgrade\r\n"...)
	dst = appendHeaderField(dst, "Sec-WebSocket-Key", key)
	dst = append(dst, "Sec-WebSocket-Version: 13\r\n"...)
	if len(h.Protocols) > 0 {
		dst = append(dst, "Sec-WebSocket-Protocol: "...)
		for i, p := range h.Protocols {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = appendSanitized(dst, p)
		}
		dst = append(dst, "\r\n"...)
	}
	if h.Extensions != "" {
		dst = appendHeaderField(dst, "Sec-WebSocket-Extensions", h.Extensions)
	}
	for _, f := range h.Header {
		dst = appendHeaderField(dst, f.Name, f.Value)
	}
	return append(dst, "\r\n"...)
}

// appendTarget appends a request target, percent-encoding the bytes that
// would end or corrupt the request line.
func appendTarget(dst []byte, path string) []byte {
	if path == "" {
		return append(dst, '/')
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c <= ' ' || c == 0x7f {
			dst = append(dst, '%', hex[c>>4], hex[c&15])
			continue
		}
		dst = append(dst, c)
	}
	return dst
}

func (h *ClientHandshake) maxHeaderBytes() int {
	if h.MaxHeaderBytes <= 0 {
		return defaultMaxResponseBytes
	}
	return h.MaxHeaderBytes
}

// ReadResponse parses and checks the server's answer to a request made with
// AppendRequest and key, at the start of p. It returns ErrNeedMore while p
// holds no complete head and fits the limit, ErrResponseTooLarge once it
// cannot, and ErrResponseMalformed as soon as p cannot be an HTTP/1.x
// response (without waiting for the rest).
//
// A complete 101 is checked per RFC 6455 §4.1: HTTP/1.1, Upgrade:
// websocket, Connection including Upgrade, the Sec-WebSocket-Accept that
// key calls for, a subprotocol only if offered and an extension only if it
// answers one of the permessage-deflate offers. On success n is the length
// of the head; bytes after it are the server's first frames.
//
// Any other status is a refusal: the Response (status, headers) is returned
// with n set and a *ResponseError carrying the status, so that the caller
// can read a body from p[n:]. On any other error resp is nil and n is 0.
// Safe for concurrent use.
func (h *ClientHandshake) ReadResponse(p []byte, key string) (resp *Response, n int, err error) {
	limit := h.maxHeaderBytes()
	window := p
	if len(window) > limit {
		window = window[:limit]
	}
	end := RequestEnd(window)
	if end < 0 {
		if !couldBeResponse(window) {
			return nil, 0, ErrResponseMalformed
		}
		if len(p) > limit {
			return nil, 0, ErrResponseTooLarge
		}
		return nil, 0, ErrNeedMore
	}
	resp, err = parseResponse(p[:end])
	if err != nil {
		return nil, 0, err
	}
	if resp.Status != 101 {
		return resp, end, &ResponseError{Status: resp.Status, Reason: "status " + strconv.Itoa(resp.Status) + " " + resp.Reason + ", want 101"}
	}
	if err := h.check(resp, key); err != nil {
		return nil, 0, err
	}
	return resp, end, nil
}

// couldBeResponse reports whether the incomplete head p may still become a
// valid one: it starts like "HTTP/1.", has no bare LF, and its status line,
// once complete, is well-formed.
func couldBeResponse(p []byte) bool {
	const prefix = "HTTP/1."
	k := min(len(p), len(prefix))
	if string(p[:k]) != prefix[:k] || hasBareLF(p) {
		return false
	}
	if e := bytes.Index(p, crlf); e >= 0 {
		_, ok := parseStatusLine(p[:e])
		return ok
	}
	return true
}

// parseStatusLine parses HTTP/1.x SP 3DIGIT [SP reason-phrase] (RFC 9112
// §4; the SP before an empty reason is optional in practice).
func parseStatusLine(line []byte) (status int, ok bool) {
	if len(line) < 12 || string(line[:7]) != "HTTP/1." || !isDigit(line[7]) || line[8] != ' ' ||
		!isDigit(line[9]) || !isDigit(line[10]) || !isDigit(line[11]) || line[9] == '0' {
		return 0, false
	}
	if len(line) > 12 && line[12] != ' ' {
		return 0, false
	}
	for _, c := range line[12:] {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return 0, false
		}
	}
	return int(line[9]-'0')*100 + int(line[10]-'0')*10 + int(line[11]-'0'), true
}

// parseResponse parses a complete head (ending in CRLFCRLF); it checks the
// syntax only.
func parseResponse(head []byte) (*Response, error) {
	lineEnd := bytes.Index(head, crlf)
	status, ok := parseStatusLine(head[:lineEnd])
	if !ok {
		return nil, ErrResponseMalformed
	}
	if status == 101 && head[7] != '1' {
		return nil, ErrResponseVersion
	}
	s := string(head)
	r := &Response{Status: status}
	if lineEnd > 13 {
		r.Reason = s[13:lineEnd]
	}
	for pos := lineEnd + 2; ; {
		hl, err := scanHeaderLine(head, pos)
		if err != nil {
			return nil, ErrResponseMalformed
		}
		if hl.next == 0 {
			break
		}
		r.Header = append(r.Header, HeaderField{Name: s[pos:hl.nameEnd], Value: s[hl.valStart:hl.valEnd]})
		pos = hl.next
	}
	return r, nil
}

// check applies RFC 6455 §4.1's rules for a 101 to resp and fills in the
// negotiated subprotocol and extension.
func (h *ClientHandshake) check(resp *Response, key string) error {
	var (
		upgrade, connection bool
		accepts, protocols  int
		accept, protocol    string
		extensions          string
	)
	for _, f := range resp.Header {
		switch {
		case headerIs(f.Name, "Upgrade"):
			if !strings.EqualFold(f.Value, "websocket") {
				return ErrResponseUpgrade
			}
			upgrade = true
		case headerIs(f.Name, "Connection"):
			connection = connection || hasToken(f.Value, "upgrade")
		case headerIs(f.Name, "Sec-WebSocket-Accept"):
			accepts++
			accept = f.Value
		case headerIs(f.Name, "Sec-WebSocket-Protocol"):
			protocols++
			protocol = f.Value
		case headerIs(f.Name, "Sec-WebSocket-Extensions"):
			switch {
			case f.Value == "":
			case extensions == "":
				extensions = f.Value
			default:
				extensions += ", " + f.Value
			}
		}
	}
	var want [28]byte
	switch {
	case !upgrade:
		return ErrResponseUpgrade
	case !connection:
		return ErrResponseConnection
	case accepts != 1 || accept != string(AppendAcceptKey(want[:0], key)):
		return ErrResponseAccept
	case protocols > 1 || (protocols == 1 && !offered(h.Protocols, protocol)):
		return ErrResponseProtocol
	}
	resp.Protocol = protocol
	if extensions != "" {
		p, ok := answersDeflateOffer(h.Extensions, extensions)
		if !ok {
			return ErrResponseExtension
		}
		resp.Deflate, resp.Params = true, p
	}
	return nil
}

func offered(protocols []string, p string) bool {
	for _, o := range protocols {
		if o == p {
			return true
		}
	}
	return false
}

// answersDeflateOffer checks a Sec-WebSocket-Extensions response against
// the offer (RFC 7692 §7.1): exactly one permessage-deflate with valid
// parameters that accept at least one of the offers, which means it keeps
// an offered server_no_context_takeover, answers an offered
// server_max_window_bits with the same or a smaller value, and carries
// client_max_window_bits (with a value, never above an offered one) only
// if offered.
func answersDeflateOffer(offer, answer string) (DeflateParams, bool) {
	got, ok := scanExtensions(answer)
	if !ok || len(got) != 1 {
		return DeflateParams{}, false
	}
	r, ok := parseDeflateOption(got[0])
	// A response's client_max_window_bits must carry a value; Parse marks
	// a valueless one as 1.
	if !ok || r.ClientMaxWindowBits == 1 {
		return DeflateParams{}, false
	}
	offers, ok := scanExtensions(offer)
	if !ok {
		return DeflateParams{}, false
	}
	for _, opt := range offers {
		o, ok := parseDeflateOption(opt)
		switch {
		case !ok:
		case o.ServerNoContextTakeover && !r.ServerNoContextTakeover:
		case o.ServerMaxWindowBits.Defined() && (!r.ServerMaxWindowBits.Defined() || r.ServerMaxWindowBits > o.ServerMaxWindowBits):
		case r.ClientMaxWindowBits.Defined() && !o.ClientMaxWindowBits.Defined():
		case r.ClientMaxWindowBits.Defined() && o.ClientMaxWindowBits > 1 && r.ClientMaxWindowBits > o.ClientMaxWindowBits:
		default:
			return DeflateParams{
				ServerNoContextTakeover: r.ServerNoContextTakeover,
				ClientNoContextTakeover: r.ClientNoContextTakeover,
				ServerMaxWindowBits:     int(r.ServerMaxWindowBits),
				ClientMaxWindowBits:     int(r.ClientMaxWindowBits),
			}, true
		}
	}
	return DeflateParams{}, false
}
