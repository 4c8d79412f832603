package server

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/internal/wstest"
)

// dialFrom upgrades on addr/path from the loopback source address src.
func dialFrom(src, addr, path string, headers ...string) (*wstest.Client, error) {
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return wstest.Upgrade(conn, addr, path, headers...)
}

// status is the HTTP status of a refused upgrade, 101 for none.
func status(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 101
	}
	var se *wstest.HTTPStatusError
	if !errors.As(err, &se) {
		t.Fatalf("upgrade failed without an HTTP answer: %v", err)
	}
	return se.Status
}

// proxyServer records the RemoteAddr each upgraded conn saw.
type proxyServer struct {
	srv  *Server[struct{}]
	addr string
	mu   sync.Mutex
	seen []netip.Addr
}

func startProxyServer(t *testing.T, perIP int, trusted ...string) *proxyServer {
	t.Helper()
	ps := &proxyServer{}
	var prefixes []netip.Prefix
	for _, s := range trusted {
		prefixes = append(prefixes, netip.MustParsePrefix(s))
	}
	ps.srv = New[struct{}](Options{MaxConnsPerIP: perIP, TrustedProxies: prefixes})
	ps.srv.Handle("/ws", Funcs[struct{}]{Open: func(c *Conn[struct{}]) {
		ps.mu.Lock()
		ps.seen = append(ps.seen, c.RemoteAddr().Addr())
		ps.mu.Unlock()
	}})
	ps.addr = start(t, ps.srv)
	return ps
}

// lastSeen is the address the handler saw last (zero: none yet).
func (ps *proxyServer) lastSeen() netip.Addr {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.seen) == 0 {
		return netip.Addr{}
	}
	return ps.seen[len(ps.seen)-1]
}

// waitSeen waits (bounded) for the handler to see want — OnOpen runs on
// a worker after the 101 went out — and returns what it saw last.
func (ps *proxyServer) waitSeen(want string) netip.Addr {
	w := netip.MustParseAddr(want)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if ps.lastSeen() == w {
			break
		}
	}
	return ps.lastSeen()
}

// Behind a trusted proxy every client shares the proxy's TCP address; the
// per-address limit must apply to each forwarded client instead, and be
// released under that same client when its conn closes.
func TestTrustedProxyLimitsPerForwardedClient(t *testing.T) {
	const perIP = 2
	ps := startProxyServer(t, perIP, "127.0.0.2/32")
	clients := []string{"203.0.113.1", "203.0.113.2", "2001:db8::3"}
	open := map[string][]*wstest.Client{}
	t.Cleanup(func() {
		for _, cs := range open {
			for _, c := range cs {
				c.Close()
			}
		}
	})
	for _, ip := range clients {
		// The client may write anything on the left; the proxy appends
		// the peer it saw, and a chain of trusted proxies appends itself.
		xff := "X-Forwarded-For: 10.9.9.9, " + ip + ", 127.0.0.2"
		for i := range perIP + 1 {
			c, err := dialFrom("127.0.0.2", ps.addr, "/ws", xff)
			got := status(t, err)
			if i < perIP {
				if got != 101 {
					t.Fatalf("client %s conn %d: %d, want 101", ip, i, got)
				}
				open[ip] = append(open[ip], c)
				if s := ps.waitSeen(ip); s != netip.MustParseAddr(ip) {
					t.Fatalf("client %s: handler saw RemoteAddr %v", ip, s)
				}
				continue
			}
			if got != 429 {
				t.Fatalf("client %s conn %d over the limit: %d, want 429", ip, i, got)
			}
		}
	}
	if n := ps.srv.Stats().Closes["per_ip_limit"]; n != uint64(len(clients)) {
		t.Fatalf("per_ip_limit closes = %d, want %d", n, len(clients))
	}
	// A close gives the place back to the same client, not to the proxy.
	open[clients[0]][0].Close()
	waitFor(t, 10*time.Second, "the freed place", func() bool {
		c, err := dialFrom("127.0.0.2", ps.addr, "/ws", "X-Forwarded-For: "+clients[0])
		if err != nil {
			return false
		}
		open[clients[0]] = append(open[clients[0]], c)
		return true
	})
	// X-Real-IP when there is no X-Forwarded-For.
	c, err := dialFrom("127.0.0.2", ps.addr, "/ws", "X-Real-IP: 198.51.100.7")
	if status(t, err) != 101 {
		t.Fatalf("X-Real-IP client: %v", err)
	}
	open["x"] = append(open["x"], c)
	if s := ps.waitSeen("198.51.100.7"); s != netip.MustParseAddr("198.51.100.7") {
		t.Fatalf("X-Real-IP: handler saw %v", s)
	}
}

// A peer that is not a trusted proxy cannot pick its address: its headers
// are ignored, and it is limited (and seen) as itself.
func TestUntrustedPeerCannotSpoofForwardedFor(t *testing.T) {
	const perIP = 2
	ps := startProxyServer(t, perIP, "127.0.0.2/32")
	var open []*wstest.Client
	t.Cleanup(func() {
		for _, c := range open {
			c.Close()
		}
	})
	for i := range perIP + 1 {
		c, err := dialFrom("127.0.0.3", ps.addr, "/ws",
			"X-Forwarded-For: 203.0.113."+itoa(i+10), "X-Real-IP: 203.0.113."+itoa(i+50))
		got := status(t, err)
		if i < perIP {
			if got != 101 {
				t.Fatalf("conn %d: %d, want 101", i, got)
			}
			open = append(open, c)
			if s := ps.waitSeen("127.0.0.3"); s != netip.MustParseAddr("127.0.0.3") {
				t.Fatalf("untrusted peer seen as %v, want 127.0.0.3", s)
			}
			continue
		}
		if got != 429 {
			t.Fatalf("spoofed conn %d: %d, want 429 (the header must be ignored)", i, got)
		}
	}
}

// Malformed forwarding headers from a trusted proxy name nobody: the conn
// counts as the proxy itself, so they cannot mint fresh addresses either.
func TestTrustedProxyMalformedForwardedFor(t *testing.T) {
	const perIP = 2
	ps := startProxyServer(t, perIP, "127.0.0.2/32")
	var open []*wstest.Client
	t.Cleanup(func() {
		for _, c := range open {
			c.Close()
		}
	})
	bad := []string{"X-Forwarded-For: not-an-ip", "X-Forwarded-For: 999.1.1.1, unknown", "X-Forwarded-For: ,,,"}
	for i, h := range bad {
		c, err := dialFrom("127.0.0.2", ps.addr, "/ws", h)
		got := status(t, err)
		if i < perIP {
			if got != 101 {
				t.Fatalf("%q: %d, want 101", h, got)
			}
			open = append(open, c)
			if s := ps.waitSeen("127.0.0.2"); s != netip.MustParseAddr("127.0.0.2") {
				t.Fatalf("%q: seen as %v, want the proxy 127.0.0.2", h, s)
			}
			continue
		}
		if got != 429 {
			t.Fatalf("%q: %d, want 429 under the proxy's own address", h, got)
		}
	}
}
