package wsproto

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/wsdhq/wsd/server"
)

// ConnectProxyRequest is what the connect proxy posts to the backend
// right after the upgrade: the caller (user is the token's sub, or
// anon-... without tokens), the upgrade's cookies and its allow-listed
// headers (ProxyConfig.ConnectHeaders, canonical names).
type ConnectProxyRequest struct {
	ConnInfo
	Cookies map[string]string `json:"cookies,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
}

// ConnectResult is a connect proxy's accepting answer's result: a
// non-empty User replaces the client ID; Channels, when present, replace
// the patterns the connection may use (as a token's "channels");
// Subscribe are channels the connection is subscribed to server-side
// (pushed to the client, no access check); ExpireAt (Unix seconds), when
// set, closes the connection then with CloseTokenExpired, no refresh
// extending it: the reconnect asks the backend again.
type ConnectResult struct {
	User      string   `json:"user,omitempty"`
	Channels  []string `json:"channels,omitempty"`
	Subscribe []string `json:"subscribe,omitempty"`
	ExpireAt  int64    `json:"expire_at,omitempty"`
}

// DefaultConnectHeaders are the upgrade headers the connect proxy passes
// on when ProxyConfig.ConnectHeaders is empty. Authorization is not among
// them: a token is wsd's to check.
var DefaultConnectHeaders = []string{"User-Agent", "Origin", "X-Forwarded-For", "X-Real-Ip", "Accept-Language"}

// Close codes of a connection the connect proxy did not let in.
const (
	// CloseConnectRefused is the default close code of a refusal; the
	// backend may give another in 4000–4999 ("close_code").
	CloseConnectRefused = 4403
	// CloseBackendUnavailable (1013, Try Again Later) closes a connection
	// whose connect call failed: retry with backoff.
	CloseBackendUnavailable = 1013
)

// maxHeld bounds the requests a connection may send before the connect
// proxy answered; past it the connection is closed with 1008.
const maxHeld = 32

// Gate states.
const (
	gatePending  = iota // the backend has not answered: requests are held
	gateDraining        // the answer's goroutine is serving the held requests
	gateOpen            // requests go straight to the handler
	gateShut            // refused: requests are dropped
)

// connectGate holds a connection's requests until the connect proxy
// answers. Whoever serves requests (a worker, or the answer's goroutine
// while draining) holds the session alone: the handoff goes through mu.
type connectGate struct {
	mu    sync.Mutex
	state uint8
	held  [][]byte // text requests, copied
	body  ConnectProxyRequest

	expireAt time.Time // the answer's expire_at; written before the gate opens
}

// prepareConnect records, during Accept, what the connect proxy will
// send. The call itself starts in OnOpen: Accept runs on the event loop
// and must not wait.
func (h *Handler) prepareConnect(c *server.Conn[Session], r *server.Request) {
	if h.px.connect == nil {
		return
	}
	s := c.Value.s
	g := &connectGate{body: ConnectProxyRequest{ConnInfo: h.connInfo(c)}}
	if ck := r.Get("Cookie"); ck != "" {
		if cookies, err := http.ParseCookie(ck); err == nil {
			g.body.Cookies = make(map[string]string, len(cookies))
			for _, k := range cookies {
				g.body.Cookies[k.Name] = k.Value
			}
		}
	}
	for _, name := range h.px.connectHeaders {
		if v := r.Get(name); v != "" {
			if g.body.Headers == nil {
				g.body.Headers = map[string]string{}
			}
			g.body.Headers[name] = v
		}
	}
	s.gate = g
}

// hold keeps m while the gate is not open and reports whether it did (or
// dropped it). Called from OnMessage.
func (g *connectGate) hold(c *server.Conn[Session], m server.Message) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch g.state {
	case gateOpen:
		return false
	case gateShut:
		return true
	}
	if len(g.held) >= maxHeld {
		g.state, g.held = gateShut, nil
		c.Close(1008, "too many requests before the connection was accepted")
		return true
	}
	if m.Type != server.Text {
		m.Data = nil // answered bad_request when served
	}
	g.held = append(g.held, append([]byte{}, m.Data...))
	return true
}

// startConnect calls the connect proxy off the worker (from OnOpen).
func (h *Handler) startConnect(c *server.Conn[Session]) {
	s := c.Value.s
	g := s.gate
	p := h.px.connect
	if !p.acquire() {
		h.shut(c, g, CloseBackendUnavailable, "backend unavailable")
		return
	}
	go func() {
		defer p.release()
		ans, err := p.call(g.body)
		switch {
		case err != nil:
			h.cfg.Logger.Debug("ws: connect proxy failed", "err", err.Message)
			h.shut(c, g, CloseBackendUnavailable, "backend unavailable")
		case ans.Error != nil:
			code := CloseConnectRefused
			if ans.CloseCode >= 4000 && ans.CloseCode <= 4999 {
				code = ans.CloseCode
			}
			h.shut(c, g, code, closeReason(ans.Error.Code+": "+ans.Error.Message))
		default:
			var r ConnectResult
			if len(ans.Result) > 0 && json.Unmarshal(ans.Result, &r) != nil {
				h.shut(c, g, CloseBackendUnavailable, "backend unavailable")
				return
			}
			if r.User != "" {
				h.users.rename(s, r.User)
			}
			if r.Channels != nil {
				s.anon, s.channels = false, r.Channels
			}
			if r.ExpireAt > 0 {
				g.expireAt = time.Unix(r.ExpireAt, 0)
				if d := s.deadline.Load(); d == 0 || h.expiry.tickAt(g.expireAt) < d {
					h.setHardDeadline(s, g.expireAt)
				}
			}
			h.openServerSubs(s, r.Subscribe)
			h.drain(c, g)
		}
	}()
}

// drain serves the held requests in order, then opens the gate.
func (h *Handler) drain(c *server.Conn[Session], g *connectGate) {
	for {
		g.mu.Lock()
		if g.state == gateShut {
			g.mu.Unlock()
			return
		}
		held := g.held
		g.held = nil
		if len(held) == 0 {
			g.state = gateOpen
			g.mu.Unlock()
			return
		}
		g.state = gateDraining
		g.mu.Unlock()
		for _, b := range held {
			t := server.Text
			if b == nil {
				t = server.Binary
			}
			h.onMessage(c, server.Message{Type: t, Data: b})
		}
	}
}

func (h *Handler) shut(c *server.Conn[Session], g *connectGate, code int, reason string) {
	g.mu.Lock()
	g.state, g.held = gateShut, nil
	g.mu.Unlock()
	c.Close(code, reason)
}

// closeReason fits a close reason in a control frame (123 bytes), cut on
// a rune boundary.
func closeReason(s string) string {
	s = strings.ToValidUTF8(s, "")
	for len(s) > 123 {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
