package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestContentTypes(t *testing.T) {
	for _, tc := range []struct {
		h     http.Handler
		path  string
		ctype string
		has   string
	}{
		{JS(), "/wsd.js", "text/javascript; charset=utf-8", "WSD"},
		{Index(), "/", "text/html; charset=utf-8", `<script src="/wsd.js">`},
		{Index(), "/index.html", "text/html; charset=utf-8", "chat:lobby"},
		{Handler(), "/wsd.js", "text/javascript; charset=utf-8", "function Client("},
		{Handler(), "/", "text/html; charset=utf-8", "<!doctype html>"},
	} {
		r := get(t, tc.h, "GET", tc.path)
		b := body(t, r)
		if r.StatusCode != 200 {
			t.Errorf("GET %s: %d", tc.path, r.StatusCode)
			continue
		}
		if got := r.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if r.Header.Get("X-Content-Type-Options") != "nosniff" || r.Header.Get("ETag") == "" {
			t.Errorf("GET %s: headers %v", tc.path, r.Header)
		}
		if !strings.Contains(b, tc.has) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.has)
		}
		if r.Header.Get("Content-Length") != strconv.Itoa(len(b)) {
			t.Errorf("GET %s: Content-Length %s for %d bytes", tc.path, r.Header.Get("Content-Length"), len(b))
		}
	}
}

func TestMethodsAndPaths(t *testing.T) {
	h := Handler()
	if r := get(t, h, "GET", "/nope"); r.StatusCode != 404 {
		t.Errorf("GET /nope: %d", r.StatusCode)
	}
	if r := get(t, h, "POST", "/"); r.StatusCode != 405 || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d %v", r.StatusCode, r.Header)
	}
	r := get(t, h, "HEAD", "/wsd.js")
	if b := body(t, r); r.StatusCode != 200 || b != "" || r.Header.Get("Content-Type") != JSContentType {
		t.Errorf("HEAD /wsd.js: %d, %d body bytes, %v", r.StatusCode, len(b), r.Header)
	}
	etag := r.Header.Get("ETag")
	if r := get(t, h, "GET", "/wsd.js", "If-None-Match", `"other", `+etag); r.StatusCode != 304 || body(t, r) != "" {
		t.Errorf("If-None-Match: %d", r.StatusCode)
	}
	if r := get(t, h, "GET", "/wsd.js", "If-None-Match", `"other"`); r.StatusCode != 200 {
		t.Errorf("stale If-None-Match: %d", r.StatusCode)
	}
}

// The demo page keeps the element ids the browser tests use, and fetches
// nothing from another origin.
func TestIndexPage(t *testing.T) {
	r := get(t, Index(), "GET", "/")
	page := body(t, r)
	for _, id := range []string{"state", "reconnects", "messages", "msg-input", "nick-input", "send", "ticker", "notice",
		"presence", "board", "players", "news", "news-state"} {
		if !strings.Contains(page, `id="`+id+`"`) {
			t.Errorf("index.html has no #%s", id)
		}
	}
	ext := regexp.MustCompile(`(?i)(src|href|url)\s*[=(]\s*["']?\s*(https?:)?//`)
	for _, b := range []string{page, body(t, get(t, JS(), "GET", "/wsd.js"))} {
		if m := ext.FindString(b); m != "" {
			t.Errorf("external reference: %s", m)
		}
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP %q", csp)
	}
}
