package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// dialWSSFrom upgrades through nginx from the loopback source src and
// returns the HTTP status (101 for an upgrade). It reads only the response
// head: nginx keeps a refused client's connection alive.
func dialWSSFrom(t *testing.T, src, addr string, pool *x509.CertPool) int {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h := &codec.ClientHandshake{Host: addr, Path: "/echo"}
	if _, err := conn.Write(h.AppendRequest(nil, codec.NewKey())); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("upgrade through nginx from %s: %v", src, err)
	}
	var status int
	if _, err := fmt.Sscanf(line, "HTTP/1.1 %d", &status); err != nil {
		t.Fatalf("status line %q: %v", line, err)
	}
	return status
}

// Behind the shipped nginx config, with nginx trusted, --max-conns-per-ip
// limits each client; without the trust every client is nginx's
// 127.0.0.1 and they share one limit.
func TestPerIPLimitBehindNginx(t *testing.T) {
	for _, trusted := range []bool{true, false} {
		args := []string{"--max-conns-per-ip", "2"}
		if trusted {
			args = append(args, "--trusted-proxies", "127.0.0.1/32")
		}
		d := startWSD(t, args...)
		addr, pool := startNginx(t, d.Addr)
		var got []int
		for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
			for range 3 {
				got = append(got, dialWSSFrom(t, src, addr, pool))
			}
		}
		want := []int{101, 101, 429, 101, 101, 429}
		if !trusted {
			want = []int{101, 101, 429, 429, 429, 429}
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("trusted=%v: statuses %v, want %v", trusted, got, want)
			}
		}
	}
}

// The connect proxy's remote_addr is the client nginx forwards for, not
// nginx, once nginx is trusted.
func TestConnectProxySeesForwardedClient(t *testing.T) {
	got := make(chan string, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			RemoteAddr string `json:"remote_addr"`
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		select {
		case got <- body.RemoteAddr:
		default:
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"result":{}}`))
	}))
	t.Cleanup(backend.Close)
	d := startWSD(t, "--trusted-proxies", "127.0.0.1/32", "--connect-proxy-url", backend.URL)
	addr, pool := startNginx(t, d.Addr)
	dd := &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}}
	conn, err := tls.DialWithDialer(dd, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := wstest.Upgrade(conn, addr, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case ra := <-got:
		if ra != "127.0.0.5:0" {
			t.Fatalf("connect proxy remote_addr %q, want the forwarded client 127.0.0.5:0", ra)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the connect proxy was not called")
	}
}
