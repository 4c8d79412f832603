package server

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/poller"
)

// maxHTTPInFlight bounds the goroutines answering plain HTTP requests; the
// excess gets 503 at once.
const maxHTTPInFlight = 64

// HandleHTTP serves plain HTTP requests (those without an Upgrade header)
// matching pattern on the same port, with net/http's ServeMux patterns
// ("GET /healthz", "/api/"). Each request runs on its own goroutine, at
// most 64 at once (the excess gets 503). Connections are kept alive
// (HTTP/1.1, or HTTP/1.0 with Connection: keep-alive) and may pipeline:
// the next request is read once the previous answer is written, so that
// answers go out in order; an idle kept-alive connection is closed after
// HandshakeTimeout. Bodies are limited to 1 MiB and need Content-Length.
// Meant for health checks, metrics and API calls, not for serving a
// website. Call before ListenAndServe.
func (s *Server[T]) HandleHTTP(pattern string, h http.Handler) {
	if s.mux == nil {
		s.mux = http.NewServeMux()
		s.httpSem = make(chan struct{}, maxHTTPInFlight)
	}
	s.mux.Handle(pattern, h)
}

// ServeHTTP implements poller.HTTPHandler, on the loop.
func (h *loopHandler[T]) ServeHTTP(pc *poller.Conn, req *codec.Request, body []byte) {
	s := h.server()
	if r := s.routes[req.Path]; r != nil && r.stream != nil {
		h.serveStream(pc, r, req)
		return
	}
	if s.routes[req.Path] != nil {
		// A WebSocket endpoint asked without an Upgrade header.
		pc.ReplyHTTP(codec.AppendHTTPError(nil, &codec.HTTPError{Status: 426, Reason: "this is a WebSocket endpoint",
			Header: []codec.HeaderField{{Name: "Upgrade", Value: "websocket"}, {Name: "Sec-WebSocket-Version", Value: "13"}}}), false)
		return
	}
	if s.mux == nil {
		pc.ReplyHTTP(codec.AppendHTTPError(nil, &codec.HTTPError{Status: 404, Reason: "not found"}), false)
		return
	}
	// Counted before the check, so that Shutdown, which sets stopping and
	// then waits for the count to fall to 0 before it closes the
	// WebSocket connections, sees every request it did not refuse: what
	// an API call published is queued before the 1001s.
	s.httpBusy.Add(1)
	if s.stopping.Load() {
		s.httpBusy.Add(-1)
		pc.ReplyHTTP(codec.AppendHTTPError(nil, &codec.HTTPError{Status: 503, Reason: "shutting down",
			Header: []codec.HeaderField{{Name: "Retry-After", Value: "1"}}}), false)
		return
	}
	select {
	case s.httpSem <- struct{}{}:
	default:
		s.httpBusy.Add(-1)
		pc.ReplyHTTP(codec.AppendHTTPError(nil, &codec.HTTPError{Status: 503, Reason: "too many HTTP requests in flight"}), false)
		return
	}
	go func() {
		defer func() { <-s.httpSem; s.httpBusy.Add(-1) }()
		resp, keep := s.runHTTP(pc, req, body, req.KeepAlive())
		pc.ReplyHTTP(resp, keep)
	}()
}

// runHTTP answers one request; keepOut says whether the answer keeps the
// connection open (only keep and a handler that did not panic).
func (s *Server[T]) runHTTP(pc *poller.Conn, req *codec.Request, body []byte, keep bool) (resp []byte, keepOut bool) {
	u, err := url.ParseRequestURI(req.URI)
	if err != nil {
		return codec.AppendHTTPError(nil, &codec.HTTPError{Status: 400, Reason: "bad request target"}), false
	}
	hr, err := http.NewRequest(req.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return codec.AppendHTTPError(nil, &codec.HTTPError{Status: 400, Reason: err.Error()}), false
	}
	hr.RequestURI = req.URI
	hr.Host = req.Host
	hr.RemoteAddr = pc.RemoteAddr().String()
	for _, f := range req.Header {
		hr.Header.Add(f.Name, f.Value)
	}
	w := &responseWriter{header: http.Header{}}
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			s.log.Error("HTTP handler panicked", "path", req.Path, "panic", fmt.Sprint(p), "stack", string(buf))
			resp, keepOut = codec.AppendHTTPError(nil, &codec.HTTPError{Status: 500, Reason: "internal error"}), false
		}
	}()
	s.mux.ServeHTTP(w, hr)
	conn := "close"
	if keep {
		conn = "" // HTTP/1.1's default
		if req.HTTP10() {
			conn = "keep-alive"
		}
	}
	return w.bytes(req.Method == http.MethodHead, conn), keep
}

// headerSafe keeps a handler's header values from splitting the response.
var headerSafe = strings.NewReplacer("\r", " ", "\n", " ")

// responseWriter buffers a whole response: answers here are small.
type responseWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *responseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// bytes is the whole response; conn is its Connection header ("" for
// none, the HTTP/1.1 keep-alive default).
func (w *responseWriter) bytes(head bool, conn string) []byte {
	w.WriteHeader(http.StatusOK)
	if w.header.Get("Content-Type") == "" && w.body.Len() > 0 {
		w.header.Set("Content-Type", http.DetectContentType(w.body.Bytes()))
	}
	w.header.Set("Content-Length", strconv.Itoa(w.body.Len()))
	w.header.Del("Connection") // ours to say, not the handler's
	if conn != "" {
		w.header.Set("Connection", conn)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", w.status, http.StatusText(w.status))
	keys := make([]string, 0, len(w.header))
	for k := range w.header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range w.header[k] {
			fmt.Fprintf(&b, "%s: %s\r\n", k, headerSafe.Replace(v))
		}
	}
	b.WriteString("\r\n")
	if !head {
		b.Write(w.body.Bytes())
	}
	return b.Bytes()
}
