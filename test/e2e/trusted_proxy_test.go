package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
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
