package codec

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
	"strings"
)

// The server side of the RFC 6455 §4.2 opening handshake, on byte slices that
// arrive in pieces. The parser is deliberately strict (RFC 9112 syntax, CRLF
// line endings only): a WebSocket client is a browser or a library, never a
// hand-typed telnet session, and every leniency is a smuggling or fuzzing
// surface. In particular a bare LF is refused with 400 as soon as it is seen
// (rather than waiting for a CRLFCRLF that will never come), and so is a
// request line that cannot be HTTP (a TLS ClientHello sent to a plain port,
// say), so such peers are dropped on their first read instead of holding a
// slot until the handshake timeout.

// defaultMaxHeaderBytes bounds a request head when Upgrader.MaxHeaderBytes is
// zero; browsers send 0.5–2 KiB, cookies included.
const defaultMaxHeaderBytes = 8192

// acceptGUID is the RFC 6455 §1.3 magic appended to the key.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

var crlf = []byte("\r\n")

// HeaderField is one header line, name and value as received (the value
// without surrounding whitespace). It is a plain value, safe to copy and to
// share once built.
type HeaderField struct {
	Name, Value string
}

// HTTPError is an HTTP answer that refuses an upgrade (400, 403, 405, 426,
// 431, 503 ...). Header holds extra response headers, e.g.
// Sec-WebSocket-Version: 13 on 426 or Allow: GET on 405. The errors returned
// by this package are shared values so that refusing a flood of bad requests
// allocates nothing: never modify one; build your own to customise. Reading
// one from several goroutines is safe.
type HTTPError struct {
	Status int
	Reason string
	Header []HeaderField
}

// Error describes the refusal for logs; the client sees AppendHTTPError's
// output instead. Safe for concurrent use.
func (e *HTTPError) Error() string {
	return "websocket: handshake refused: " + strconv.Itoa(e.Status) + " " + statusText(e.Status) + ": " + e.Reason
}

// Shared refusals. Reason texts go into the response body, so they say what
// the client got wrong in words a developer can act on.
var (
	errHeadTooLarge = &HTTPError{Status: 431, Reason: "request head too large"}
	errRequestLine  = &HTTPError{Status: 400, Reason: "malformed request line"}
	errHeaderLine   = &HTTPError{Status: 400, Reason: "malformed header line"}
	errObsFold      = &HTTPError{Status: 400, Reason: "obsolete header line folding is not accepted"}
	errBareLF       = &HTTPError{Status: 400, Reason: "lines must end with CRLF"}
	errMethod       = &HTTPError{Status: 405, Reason: "a WebSocket upgrade must use GET", Header: []HeaderField{{"Allow", "GET"}}}
	errHTTPVersion  = &HTTPError{Status: 400, Reason: "a WebSocket upgrade needs HTTP/1.1"}
	errNoHost       = &HTTPError{Status: 400, Reason: "missing Host header"}
	errManyHosts    = &HTTPError{Status: 400, Reason: "more than one Host header"}
	errNoUpgrade    = &HTTPError{Status: 426, Reason: "expected Upgrade: websocket", Header: []HeaderField{{"Upgrade", "websocket"}}}
	errNoConnUpg    = &HTTPError{Status: 400, Reason: "the Connection header must include Upgrade"}
	errWSVersion    = &HTTPError{Status: 426, Reason: "unsupported Sec-WebSocket-Version, this server speaks 13", Header: []HeaderField{{"Sec-WebSocket-Version", "13"}, {"Upgrade", "websocket"}}}
	errKey          = &HTTPError{Status: 400, Reason: "missing or invalid Sec-WebSocket-Key"}
	errManyKeys     = &HTTPError{Status: 400, Reason: "more than one Sec-WebSocket-Key header"}
	errOrigin       = &HTTPError{Status: 403, Reason: "origin not allowed"}
)

// statusText covers the codes a WebSocket server refuses with; net/http has
// the full table but codec must not import net.
func statusText(code int) string {
	switch code {
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 408:
		return "Request Timeout"
	case 413:
		return "Content Too Large"
	case 426:
		return "Upgrade Required"
	case 429:
		return "Too Many Requests"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 501:
		return "Not Implemented"
	case 503:
		return "Service Unavailable"
	}
	return "Error"
}

// AppendHTTPError appends a complete HTTP/1.1 response refusing the upgrade:
// status line, e.Header, Content-Type: text/plain; charset=utf-8,
// Content-Length, Connection: close, a blank line, then e.Reason+"\n" as the
// body. Control characters in header names and values are replaced by spaces
// so that a Reason or header built from request data cannot inject lines. A
// Status outside 100–999 is sent as 500. Safe for concurrent use.
func AppendHTTPError(dst []byte, e *HTTPError) []byte {
	status := e.Status
	if status < 100 || status > 999 {
		status = 500
	}
	dst = append(dst, "HTTP/1.1 "...)
	dst = strconv.AppendInt(dst, int64(status), 10)
	dst = append(dst, ' ')
	dst = append(dst, statusText(status)...)
	dst = append(dst, "\r\n"...)
	for _, h := range e.Header {
		dst = appendHeaderField(dst, h.Name, h.Value)
	}
	dst = append(dst, "Content-Type: text/plain; charset=utf-8\r\nContent-Length: "...)
	dst = strconv.AppendInt(dst, int64(len(e.Reason)+1), 10)
	dst = append(dst, "\r\nConnection: close\r\n\r\n"...)
	dst = append(dst, e.Reason...)
	return append(dst, '\n')
}

// appendHeaderField writes "name: value\r\n" with CTLs neutralised.
func appendHeaderField(dst []byte, name, value string) []byte {
	dst = appendSanitized(dst, name)
	dst = append(dst, ": "...)
	dst = appendSanitized(dst, value)
	return append(dst, "\r\n"...)
}

func appendSanitized(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		dst = append(dst, c)
	}
	return dst
}

// Request is a parsed upgrade request. Its strings are copies (the input
// buffer is reused by the caller) and share one backing allocation, so
// keeping any one of them keeps the whole head alive. Path and RawQuery are
// the raw, still percent-encoded parts of the request target. A Request is
// not modified by this package after ReadRequest returns it, so it may be
// read from several goroutines.
type Request struct {
	Method, URI, Path, RawQuery, Host, Origin, Key string

	// Protocols are the Sec-WebSocket-Protocol tokens offered, in order,
	// all header lines merged.
	Protocols []string
	// Extensions is every Sec-WebSocket-Extensions line joined with ", ".
	Extensions string
	// Header is every header line as received, original case and order.
	Header []HeaderField

	// protoMajor and protoMinor are the HTTP version; ReadRequest accepts
	// any well-formed version so that a server can answer plain HTTP on
	// the same port, and Negotiate insists on 1.1.
	protoMajor, protoMinor int
}

// KeepAlive reports whether the client lets the connection serve another
// request after this one (RFC 9112 §9.3): HTTP/1.1 unless a Connection
// header says close, HTTP/1.0 only with Connection: keep-alive. Safe for
// concurrent use.
func (r *Request) KeepAlive() bool {
	keep := r.protoMajor == 1 && r.protoMinor >= 1
	for i := range r.Header {
		if !headerIs(r.Header[i].Name, "Connection") {
			continue
		}
		for _, tok := range strings.Split(r.Header[i].Value, ",") {
			switch strings.ToLower(strings.TrimSpace(tok)) {
			case "close":
				return false
			case "keep-alive":
				keep = r.protoMajor == 1
			}
		}
	}
	return keep
}

// HTTP10 reports whether the request is HTTP/1.0 (whose keep-alive must be
// confirmed in the response). Safe for concurrent use.
func (r *Request) HTTP10() bool { return r.protoMajor == 1 && r.protoMinor == 0 }

// Get returns the first value of the header called name (case-insensitive),
// or "" if there is none. Safe for concurrent use.
func (r *Request) Get(name string) string {
	for i := range r.Header {
		if strings.EqualFold(r.Header[i].Name, name) {
			return r.Header[i].Value
		}
	}
	return ""
}

// RequestEnd returns the length of the request head, through the first
// CRLFCRLF, or -1 if p has none yet. Safe for concurrent use.
func RequestEnd(p []byte) int {
	i := bytes.Index(p, []byte("\r\n\r\n"))
	if i < 0 {
		return -1
	}
	return i + 4
}

// Upgrader holds the server's handshake policy. Configure it before use and
// do not modify it afterwards; then all its methods are safe for concurrent
// use (CheckOrigin is called concurrently and must be safe for that too).
type Upgrader struct {
	// MaxHeaderBytes bounds the request head, request line and final
	// CRLFCRLF included. Zero or negative means 8192.
	MaxHeaderBytes int
	// Protocols are the subprotocols this server speaks, in preference
	// order; the chosen one is the first of these that the client offered.
	// Names match exactly (case-sensitive), as RFC 6455 §11.3.4 registers them.
	Protocols []string
	// CheckOrigin decides whether to accept req's Origin; false refuses the
	// upgrade with 403. Nil accepts every origin.
	CheckOrigin func(r *Request) bool
	// Deflate configures permessage-deflate; the zero value turns it off.
	Deflate DeflateConfig
}

func (u *Upgrader) maxHeaderBytes() int {
	if u.MaxHeaderBytes <= 0 {
		return defaultMaxHeaderBytes
	}
	return u.MaxHeaderBytes
}

// ReadRequest parses the request head at the start of p. It returns
// ErrNeedMore while p holds no CRLFCRLF and len(p) <= the limit, and a 431
// *HTTPError once the head cannot fit. It refuses input that can never become
// a valid head (a bad request line, a bare LF) with a 400 *HTTPError without
// waiting for the rest. On success n is the length of the head: the caller
// discards exactly n bytes, and bytes after it (a frame pipelined behind the
// request, or a body) stay in the caller's buffer. On error n is 0.
//
// It accepts any well-formed method and HTTP/x.y version so that the caller
// can serve plain HTTP on the same port; Negotiate applies the WebSocket
// rules. Safe for concurrent use.
func (u *Upgrader) ReadRequest(p []byte) (req *Request, n int, err error) {
	limit := u.maxHeaderBytes()
	window := p
	if len(window) > limit {
		window = window[:limit]
	}
	end := RequestEnd(window)
	if end < 0 {
		if err := checkPartial(window); err != nil {
			return nil, 0, err
		}
		if len(p) > limit {
			return nil, 0, errHeadTooLarge
		}
		return nil, 0, ErrNeedMore
	}
	req, err = parseRequest(p[:end])
	if err != nil {
		return nil, 0, err
	}
	return req, end, nil
}

// checkPartial rejects a head that is incomplete but already invalid, so
// that non-HTTP peers fail fast. It must never reject a prefix of a head that
// parseRequest would accept.
func checkPartial(p []byte) error {
	if hasBareLF(p) {
		return errBareLF
	}
	if e := bytes.Index(p, crlf); e >= 0 {
		_, err := parseRequestLine(p[:e])
		return err
	}
	return checkLinePrefix(p)
}

// checkLinePrefix judges the part of a request line that has arrived: each
// of method, request-target and version as far as it goes, by the rules
// parseRequestLine applies to the whole line. Random bytes fail within a
// few bytes, so garbage is refused at once rather than at the handshake
// timeout.
func checkLinePrefix(p []byte) error {
	method, rest, more := bytes.Cut(p, []byte{' '})
	if more && len(method) == 0 {
		return errRequestLine
	}
	for _, c := range method {
		if !isTchar(c) {
			return errRequestLine
		}
	}
	if !more {
		return nil
	}
	target, v, more := bytes.Cut(rest, []byte{' '})
	if more && len(target) == 0 {
		return errRequestLine
	}
	if len(target) > 0 && target[0] != '/' && !isAlpha(target[0]) {
		return errRequestLine
	}
	for _, c := range target {
		if c < ' ' || c == 0x7f || c == '#' {
			return errRequestLine
		}
	}
	if !more {
		return nil
	}
	const version = "HTTP/0.0"
	for i, c := range v {
		switch {
		case i == len(version) && c == '\r' && i == len(v)-1: // CRLF's CR, LF to come
		case i >= len(version):
			return errRequestLine
		case version[i] == '0':
			if !isDigit(c) {
				return errRequestLine
			}
		case c != version[i]:
			return errRequestLine
		}
	}
	return nil
}

// hasBareLF reports whether some LF in p is not preceded by a CR.
func hasBareLF(p []byte) bool {
	for i := 0; ; {
		j := bytes.IndexByte(p[i:], '\n')
		if j < 0 {
			return false
		}
		if i+j == 0 || p[i+j-1] != '\r' {
			return true
		}
		i += j + 1
	}
}

// requestLine holds offsets into the request line.
type requestLine struct {
	methodEnd, targetStart, targetEnd int
	major, minor                      int
}

// parseRequestLine parses method SP request-target SP HTTP-version (RFC 9112
// §3), single spaces only.
func parseRequestLine(line []byte) (requestLine, error) {
	var rl requestLine
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return rl, errRequestLine
	}
	for _, c := range line[:sp1] {
		if !isTchar(c) {
			return rl, errRequestLine
		}
	}
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 <= 0 {
		return rl, errRequestLine
	}
	for _, c := range rest[:sp2] {
		// '#' is not part of a request-target, and RFC 6455 §3 forbids
		// fragments in WebSocket URIs.
		if c <= ' ' || c == 0x7f || c == '#' {
			return rl, errRequestLine
		}
	}
	if !validTargetForm(rest[:sp2]) {
		return rl, errRequestLine
	}
	v := rest[sp2+1:]
	if len(v) != 8 || string(v[:5]) != "HTTP/" || !isDigit(v[5]) || v[6] != '.' || !isDigit(v[7]) {
		return rl, errRequestLine
	}
	rl.methodEnd = sp1
	rl.targetStart = sp1 + 1
	rl.targetEnd = sp1 + 1 + sp2
	rl.major = int(v[5] - '0')
	rl.minor = int(v[7] - '0')
	return rl, nil
}

// validTargetForm accepts origin-form ("/path?q") and absolute-form
// ("scheme://authority/path?q"), the two forms a GET may use.
func validTargetForm(t []byte) bool {
	if t[0] == '/' {
		return true
	}
	i := bytes.Index(t, []byte("://"))
	if i <= 0 || !isAlpha(t[0]) {
		return false
	}
	for _, c := range t[1:i] {
		if !isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// splitTarget returns the path and raw query of a request target already
// accepted by validTargetForm.
func splitTarget(t string) (path, query string) {
	if t[0] != '/' {
		rest := t[strings.Index(t, "://")+3:]
		i := strings.IndexAny(rest, "/?")
		if i < 0 {
			return "/", ""
		}
		t = rest[i:]
	}
	path, query, _ = strings.Cut(t, "?")
	if path == "" {
		path = "/"
	}
	return path, query
}

// parseRequest parses a complete head (ending in CRLFCRLF). One string copy
// of the head backs every string in the Request.
func parseRequest(head []byte) (*Request, error) {
	lineEnd := bytes.IndexByte(head, '\n')
	if lineEnd <= 0 || head[lineEnd-1] != '\r' {
		return nil, errBareLF
	}
	rl, err := parseRequestLine(head[:lineEnd-1])
	if err != nil {
		return nil, err
	}
	s := string(head)
	req := &Request{
		Method:     s[:rl.methodEnd],
		URI:        s[rl.targetStart:rl.targetEnd],
		protoMajor: rl.major,
		protoMinor: rl.minor,
	}
	req.Path, req.RawQuery = splitTarget(req.URI)
	// Lines minus the request line and the final empty line.
	if n := bytes.Count(head, []byte{'\n'}) - 2; n > 0 {
		req.Header = make([]HeaderField, 0, n)
	}
	seenHost, seenOrigin, seenKey := false, false, false
	for pos := lineEnd + 1; ; {
		hl, err := scanHeaderLine(head, pos)
		if err != nil {
			return nil, err
		}
		if hl.next == 0 {
			break
		}
		f := HeaderField{Name: s[pos:hl.nameEnd], Value: s[hl.valStart:hl.valEnd]}
		req.Header = append(req.Header, f)
		pos = hl.next

		switch {
		case headerIs(f.Name, "Host"):
			if !seenHost {
				req.Host, seenHost = f.Value, true
			}
		case headerIs(f.Name, "Origin"):
			if !seenOrigin {
				req.Origin, seenOrigin = f.Value, true
			}
		case headerIs(f.Name, "Sec-WebSocket-Key"):
			if !seenKey {
				req.Key, seenKey = f.Value, true
			}
		case headerIs(f.Name, "Sec-WebSocket-Protocol"):
			if req.Protocols == nil {
				req.Protocols = make([]string, 0, strings.Count(f.Value, ",")+1)
			}
			for tok := range strings.SplitSeq(f.Value, ",") {
				if tok = trimOWS(tok); tok != "" {
					req.Protocols = append(req.Protocols, tok)
				}
			}
		case headerIs(f.Name, "Sec-WebSocket-Extensions"):
			switch {
			case f.Value == "":
			case req.Extensions == "":
				req.Extensions = f.Value
			default:
				req.Extensions += ", " + f.Value
			}
		}
	}
	return req, nil
}

// headerLine locates one header line in a head: the name is
// head[pos:nameEnd], the value (without surrounding whitespace)
// head[valStart:valEnd], and the next line starts at next.
type headerLine struct {
	nameEnd, valStart, valEnd, next int
}

// scanHeaderLine parses the header line (RFC 9112 §5) at head[pos:], whose
// previous line ended in CRLF; next is 0 for the empty line ending the
// head. Walking from LF to LF visits every LF in the head, so checking each
// for its CR is the whole bare-LF check. Requests and responses share it.
func scanHeaderLine(head []byte, pos int) (headerLine, error) {
	e := bytes.IndexByte(head[pos:], '\n')
	if e <= 0 || head[pos+e-1] != '\r' {
		return headerLine{}, errBareLF
	}
	line := head[pos : pos+e-1]
	if len(line) == 0 {
		return headerLine{}, nil
	}
	if line[0] == ' ' || line[0] == '\t' {
		return headerLine{}, errObsFold
	}
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return headerLine{}, errHeaderLine
	}
	for _, c := range line[:colon] {
		if !isTchar(c) {
			return headerLine{}, errHeaderLine
		}
	}
	vs, ve := colon+1, len(line)
	for vs < ve && (line[vs] == ' ' || line[vs] == '\t') {
		vs++
	}
	for ve > vs && (line[ve-1] == ' ' || line[ve-1] == '\t') {
		ve--
	}
	for _, c := range line[vs:ve] {
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return headerLine{}, errHeaderLine
		}
	}
	return headerLine{nameEnd: pos + colon, valStart: pos + vs, valEnd: pos + ve, next: pos + e + 1}, nil
}

// headerIs compares header names case-insensitively, rejecting on length
// first since most names differ in length from the few we look for.
func headerIs(name, want string) bool {
	return len(name) == len(want) && strings.EqualFold(name, want)
}

// Accept holds what Negotiate agreed with the client. It is a plain value.
type Accept struct {
	// Protocol is the chosen subprotocol, "" if none.
	Protocol string
	// Deflate reports whether permessage-deflate was negotiated; Params
	// are then the parameters sent back to the client.
	Deflate bool
	Params  DeflateParams
}

// Negotiate validates req per RFC 6455 §4.2.1 and negotiates the subprotocol
// and permessage-deflate. A refusal is an *HTTPError to send with
// AppendHTTPError: 405 for a method other than GET; 400 for HTTP/1.0 or
// HTTP/2+, a missing, empty or repeated Host, a Connection header without
// the "upgrade" token, or a missing, repeated or malformed Sec-WebSocket-Key
// (it must be base64 of 16 bytes); 426 when the Upgrade header lacks
// "websocket" or Sec-WebSocket-Version is not exactly one "13"; 403 when
// CheckOrigin says no (it runs last, on an otherwise valid upgrade). An unacceptable permessage-deflate offer is declined,
// never refused. req must come from ReadRequest. Safe for concurrent use.
func (u *Upgrader) Negotiate(req *Request) (Accept, error) {
	if req.Method != "GET" {
		return Accept{}, errMethod
	}
	// "HTTP/1.1 or higher" (RFC 6455 §4.1); no HTTP/1.x after 1.1 exists,
	// and HTTP/2+ upgrades differently (RFC 8441).
	if req.protoMajor != 1 || req.protoMinor < 1 {
		return Accept{}, errHTTPVersion
	}
	var hosts, keys, versions int
	var upgrade, connection, version13 bool
	for _, h := range req.Header {
		switch {
		case headerIs(h.Name, "Host"):
			hosts++
		case headerIs(h.Name, "Sec-WebSocket-Key"):
			keys++
		case headerIs(h.Name, "Upgrade"):
			upgrade = upgrade || hasToken(h.Value, "websocket")
		case headerIs(h.Name, "Connection"):
			connection = connection || hasToken(h.Value, "upgrade")
		case headerIs(h.Name, "Sec-WebSocket-Version"):
			versions++
			version13 = h.Value == "13"
		}
	}
	switch {
	case hosts > 1:
		return Accept{}, errManyHosts
	case hosts == 0 || req.Host == "":
		return Accept{}, errNoHost
	case !upgrade:
		return Accept{}, errNoUpgrade
	case !connection:
		return Accept{}, errNoConnUpg
	case versions != 1 || !version13:
		return Accept{}, errWSVersion
	case keys > 1:
		return Accept{}, errManyKeys
	case !validKey(req.Key):
		return Accept{}, errKey
	case u.CheckOrigin != nil && !u.CheckOrigin(req):
		return Accept{}, errOrigin
	}
	var a Accept
	a.Protocol = chooseProtocol(u.Protocols, req.Protocols)
	if u.Deflate.Enabled && req.Extensions != "" {
		a.Params, a.Deflate = negotiateDeflate(u.Deflate, req.Extensions)
	}
	return a, nil
}

// validKey reports whether k is base64 (standard alphabet, padded) of exactly
// 16 bytes, which always encodes to 24 characters.
func validKey(k string) bool {
	if len(k) != 24 {
		return false
	}
	var src [24]byte
	var buf [18]byte
	copy(src[:], k)
	n, err := base64.StdEncoding.Decode(buf[:], src[:])
	return err == nil && n == 16
}

func chooseProtocol(ours, offered []string) string {
	for _, p := range ours {
		for _, o := range offered {
			if p == o {
				return p
			}
		}
	}
	return ""
}

// hasToken reports whether the comma-separated list v holds tok,
// case-insensitively (Upgrade and Connection tokens are case-insensitive).
func hasToken(v, tok string) bool {
	for t := range strings.SplitSeq(v, ",") {
		if strings.EqualFold(trimOWS(t), tok) {
			return true
		}
	}
	return false
}

func trimOWS(s string) string {
	return strings.Trim(s, " \t")
}

// AppendAccept appends the 101 Switching Protocols response for req and what
// Negotiate agreed: Upgrade, Connection, Sec-WebSocket-Accept, and
// Sec-WebSocket-Protocol and Sec-WebSocket-Extensions when negotiated. Safe
// for concurrent use.
func AppendAccept(dst []byte, req *Request, a Accept) []byte {
	dst = append(dst, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	dst = AppendAcceptKey(dst, req.Key)
	dst = append(dst, "\r\n"...)
	if a.Protocol != "" {
		dst = appendHeaderField(dst, "Sec-WebSocket-Protocol", a.Protocol)
	}
	if a.Deflate {
		dst = append(dst, "Sec-WebSocket-Extensions: "...)
		dst = appendDeflateParams(dst, a.Params)
		dst = append(dst, "\r\n"...)
	}
	return append(dst, "\r\n"...)
}

// AppendAcceptKey appends the Sec-WebSocket-Accept value for the
// Sec-WebSocket-Key key: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2). It
// allocates nothing beyond growing dst. Safe for concurrent use.
func AppendAcceptKey(dst []byte, key string) []byte {
	var buf [24 + len(acceptGUID)]byte
	b := append(append(buf[:0], key...), acceptGUID...)
	sum := sha1.Sum(b)
	return base64.StdEncoding.AppendEncode(dst, sum[:])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func isAlpha(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }

// isTchar reports whether c may appear in an HTTP token (RFC 9110 §5.6.2).
func isTchar(c byte) bool { return tchars[c] }

// tchars is an immutable lookup table: header names are checked byte by
// byte on every request.
var tchars = func() (t [256]bool) {
	for c := range 256 {
		t[c] = isAlpha(byte(c)) || isDigit(byte(c)) || strings.IndexByte("!#$%&'*+-.^_`|~", byte(c)) >= 0
	}
	return t
}()
