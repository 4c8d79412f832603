// Package web holds wsd's browser files, embedded in the binary: wsd.js,
// the dependency-free browser client for the /ws protocol (served at
// /wsd.js), and index.html, the demo page (served at /): a stocks board,
// a chat room, a multiplayer board on binary publications and a news
// column over /sse, fed by `wsd --demo`.
//
//	srv.HandleHTTP("GET /wsd.js", web.JS())
//	srv.HandleHTTP("GET /{$}", web.Index())
//
// The handlers answer GET and HEAD, send an ETag and honour If-None-Match,
// and ask browsers to revalidate (Cache-Control: no-cache) so that a new
// binary's files are picked up at once. They are safe for concurrent use.
package web

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
)

// FS holds wsd.js and index.html.
//
//go:embed wsd.js index.html
var FS embed.FS

// Content types of the embedded files.
const (
	JSContentType   = "text/javascript; charset=utf-8"
	HTMLContentType = "text/html; charset=utf-8"
)

// indexCSP keeps the demo page to its own origin: no CDN, no third-party
// request of any kind (inline script and style are the page's own).
const indexCSP = "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; " +
	"connect-src 'self' ws: wss:; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// JS serves wsd.js, whatever the request path.
func JS() http.Handler {
	return newFile("wsd.js", JSContentType, "", false)
}

// Index serves index.html at "/" and "/index.html"; any other path is 404,
// so it can be mounted on "/" as the catch-all.
func Index() http.Handler {
	return newFile("index.html", HTMLContentType, indexCSP, true)
}

// Handler serves /wsd.js and the demo page at /: both handlers behind one.
func Handler() http.Handler {
	js, index := JS(), Index()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wsd.js" {
			js.ServeHTTP(w, r)
			return
		}
		index.ServeHTTP(w, r)
	})
}

type file struct {
	body      []byte
	ctype     string
	etag      string
	csp       string
	indexOnly bool
}

func newFile(name, ctype, csp string, indexOnly bool) *file {
	b, err := FS.ReadFile(name)
	if err != nil {
		panic("web: " + name + " is not embedded: " + err.Error()) // a build problem, not a runtime one
	}
	sum := sha256.Sum256(b)
	return &file{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`, csp: csp, indexOnly: indexOnly}
}

func (f *file) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.indexOnly && r.URL.Path != "/" && r.URL.Path != "/index.html" {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h := w.Header()
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if f.csp != "" {
		h.Set("Content-Security-Policy", f.csp)
	}
	if etagMatch(r.Header.Get("If-None-Match"), f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", f.ctype)
	h.Set("Content-Length", strconv.Itoa(len(f.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(f.body)
	}
}

// etagMatch reports whether an If-None-Match header names etag (weakly).
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}
