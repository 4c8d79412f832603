package poller

import (
	"net"
	"net/netip"
	"strings"

	"github.com/wsdhq/wsd/codec"
)

// Admission flags of a Conn (Conn.adm), loop-owned.
const (
	admPending   uint8 = 1 << iota // counted in Engine.pending: still in its first handshake
	admIPCounted                   // counted in Engine.perIP under c.remote
	admViaProxy                    // the TCP peer is a trusted proxy
)

// trustedPeer reports whether a is in Config.TrustedProxies.
func (e *Engine) trustedPeer(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range e.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address a trusted proxy says it forwards for: the
// rightmost X-Forwarded-For entry that is not itself a trusted proxy (the
// entries left of it were written by the client and prove nothing), else
// X-Real-IP. ok is false when neither header names a usable address; an
// unparsable entry on the way ends the walk there, since nothing left of it
// can be trusted either.
func (e *Engine) clientAddr(req *codec.Request) (a netip.Addr, ok bool) {
	var last netip.Addr // the leftmost trusted entry seen, if all are trusted
	for i := len(req.Header) - 1; i >= 0; i-- {
		f := req.Header[i]
		if !strings.EqualFold(f.Name, "X-Forwarded-For") {
			continue
		}
		list := f.Value
		for list != "" {
			j := strings.LastIndexByte(list, ',')
			item := strings.TrimSpace(list[j+1:])
			list = list[:max(j, 0)]
			if item == "" {
				continue // "a, , b" and a trailing comma: tolerated
			}
			ip, good := parseForwarded(item)
			if !good {
				return last, last.IsValid()
			}
			if !e.trustedPeer(ip) {
				return ip, true
			}
			last = ip
		}
	}
	if last.IsValid() {
		return last, true
	}
	if ip, good := parseForwarded(strings.TrimSpace(req.Get("X-Real-IP"))); good {
		return ip, true
	}
	return netip.Addr{}, false
}

// parseForwarded reads one address as proxies write them: "192.0.2.1",
// "2001:db8::1", or with a port ("192.0.2.1:4711", "[2001:db8::1]:4711").
func parseForwarded(s string) (netip.Addr, bool) {
	if s == "" {
		return netip.Addr{}, false
	}
	if ip, err := netip.ParseAddr(s); err == nil {
		return ip.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

// forwardedFor makes c's remote address the client its trusted proxy
// forwards for, when the request names one: logs, Conn.RemoteAddr and the
// per-address limit then see the client, not the proxy. The port is 0 (a
// proxy does not forward it). On the loop, before the request is handed on.
func (e *Engine) forwardedFor(c *Conn, req *codec.Request) {
	ip, ok := e.clientAddr(req)
	if !ok {
		return // the proxy itself: it named no client
	}
	c.remote = &net.TCPAddr{IP: ip.AsSlice()}
}

// admitForwarded applies MaxConnsPerIP to an upgrade from a trusted proxy,
// under the forwarded client's address, once. It reports false after
// answering 429 and closing.
func (e *Engine) admitForwarded(c *Conn) bool {
	if e.perIP == nil || c.adm&admIPCounted != 0 || c.remote == nil {
		return true
	}
	if !e.admitIP(c.remote) {
		e.answerAndClose(c, &codec.HTTPError{Status: 429, Reason: "too many connections from this address",
			Header: []codec.HeaderField{{Name: "Retry-After", Value: "5"}}}, CausePerIPLimit)
		return false
	}
	c.adm |= admIPCounted
	return true
}

// leaveHandshake uncounts c from the pending handshakes. On the loop.
func (e *Engine) leaveHandshake(c *Conn) {
	if c.adm&admPending != 0 {
		c.adm &^= admPending
		e.pending.Add(-1)
	}
}
