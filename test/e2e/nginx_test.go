package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/testdep"
	"github.com/wsdhq/wsd/internal/wstest"
)

func nginxPath() string {
	for _, p := range []string{"/usr/sbin/nginx", "/usr/bin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("nginx")
	return p
}

// selfSigned writes a certificate for 127.0.0.1 and returns its pool.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "wsd e2e"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// startNginx runs nginx with deploy/nginx-wsd.conf, rewritten only for the
// test's ports, certificate and writable paths, in front of upstream.
func startNginx(t *testing.T, upstream string) (addr string, pool *x509.CertPool) {
	t.Helper()
	return startNginxSite(t, "nginx-wsd.conf", map[string]string{"server 127.0.0.1:8080;": "server " + upstream + ";"})
}

// startNginxSite runs nginx with deploy/<site>, rewritten for the test's
// listen address, certificate and writable paths, plus upstreams: each key
// must occur in the file and is replaced by its value.
func startNginxSite(t *testing.T, site string, upstreams map[string]string) (addr string, pool *x509.CertPool) {
	t.Helper()
	bin := nginxPath()
	if bin == "" {
		testdep.Missing(t, "nginx (/usr/sbin/nginx, /usr/bin/nginx or on PATH)", "Debian nginx-light; "+testdep.InstallHint)
	}
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	text, err := os.ReadFile("../../deploy/" + site)
	if err != nil {
		t.Fatal(err)
	}
	addr = freePort(t)
	conf := string(text)
	rewrite := map[string]string{
		"listen 443 ssl;":                     "listen " + addr + " ssl;",
		"listen [::]:443 ssl;":                "",
		"/etc/ssl/certs/wsd.pem":              certFile,
		"/etc/ssl/private/wsd.key":            keyFile,
		"ssl_session_cache   shared:wsd:10m;": "",
	}
	maps.Copy(rewrite, upstreams)
	for old, new := range rewrite {
		if !strings.Contains(conf, old) {
			t.Fatalf("deploy/%s no longer contains %q", site, old)
		}
		conf = strings.ReplaceAll(conf, old, new)
	}
	main := "daemon off;\nworker_processes 1;\npid " + dir + "/nginx.pid;\nerror_log " + dir + "/error.log;\n" +
		"events { worker_connections 1024; }\nhttp {\naccess_log off;\nclient_body_temp_path " + dir + ";\nproxy_temp_path " + dir + ";\n" +
		"fastcgi_temp_path " + dir + ";\nuwsgi_temp_path " + dir + ";\nscgi_temp_path " + dir + ";\n" + conf + "\n}\n"
	confFile := filepath.Join(dir, "nginx.conf")
	os.WriteFile(confFile, []byte(main), 0o600)
	cmd := exec.Command(bin, "-c", confFile, "-p", dir)
	out, _ := os.Create(filepath.Join(dir, "stdout.log"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Logf("nginx error.log:\n%s", b)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return addr, pool
		}
	}
	b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
	t.Fatalf("nginx did not start: %s", b)
	return "", nil
}

func dialWSS(t *testing.T, addr string, pool *x509.CertPool, path string, headers ...string) *wstest.Client {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := wstest.Upgrade(conn, addr, path, headers...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEchoThroughNginxTLS(t *testing.T) {
	d := startWSD(t)
	addr, pool := startNginx(t, d.Addr)
	c := dialWSS(t, addr, pool, "/echo")
	big := make([]byte, 1<<20)
	rand.Read(big)
	for _, m := range []struct {
		op codec.OpCode
		p  []byte
	}{{codec.OpText, []byte("hello over TLS")}, {codec.OpBinary, big}} {
		if err := c.WriteMessage(m.op, m.p); err != nil {
			t.Fatal(err)
		}
		f, err := c.ReadData()
		if err != nil || f.Op != m.op || string(f.Payload) != string(m.p) {
			t.Fatalf("echo through nginx: op=%v len=%d err=%v", f.Op, len(f.Payload), err)
		}
	}
	c.WriteFrame(codec.OpClose, true, []byte{0x03, 0xe8})
	code, _, err := c.ExpectClose()
	if err != nil || code != codec.CloseNormal {
		t.Fatalf("close through nginx: %d %v", code, err)
	}
}

// The /ws protocol through nginx with TLS: subscribe, publish over the HTTP
// API straight to wsd, receive the push, then recover after a reconnect.
func TestPubSubThroughNginxTLS(t *testing.T) {
	d := startWSD(t, "--api-key", "k")
	addr, pool := startNginx(t, d.Addr)
	c := dialWSS(t, addr, pool, "/ws")
	c.WriteMessage(codec.OpText, []byte(`{"id":1,"op":"subscribe","channel":"news"}`))
	if f, err := c.ReadData(); err != nil || !strings.Contains(string(f.Payload), `"id":1`) || !strings.Contains(string(f.Payload), `"recovered"`) {
		t.Fatalf("subscribe reply: %s %v", f.Payload, err)
	}
	pos := publish(t, d.Addr, "k", "news", `{"n":1}`)
	f, err := c.ReadData()
	if err != nil || !strings.Contains(string(f.Payload), `"channel":"news"`) || !strings.Contains(string(f.Payload), `"data":{"n":1}`) {
		t.Fatalf("push: %s %v", f.Payload, err)
	}
	c.Close()
	publish(t, d.Addr, "k", "news", `{"n":2}`)
	publish(t, d.Addr, "k", "news", `{"n":3}`)
	c2 := dialWSS(t, addr, pool, "/ws")
	c2.WriteMessage(codec.OpText, []byte(`{"id":2,"op":"subscribe","channel":"news","since":{"offset":`+pos.offset+`,"epoch":"`+pos.epoch+`"}}`))
	if f, err = c2.ReadData(); err != nil || !strings.Contains(string(f.Payload), `"recovered":true`) {
		t.Fatalf("recovery reply: %s %v", f.Payload, err)
	}
	for _, n := range []string{"2", "3"} {
		f, err := c2.ReadData()
		if err != nil || !strings.Contains(string(f.Payload), `"data":{"n":`+n+`}`) {
			t.Fatalf("missed publication %s: %s %v", n, f.Payload, err)
		}
	}
}

// The shipped nginx front keeps /metrics and /debug/pprof to the operator
// (404 through nginx, served on wsd's own address) and passes the rest.
func TestNginxHidesOperatorEndpoints(t *testing.T) {
	d := startWSD(t, "--pprof")
	addr, pool := startNginx(t, d.Addr)
	front := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
	get := func(c *http.Client, url string) int {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for path, want := range map[string]int{"/metrics": 404, "/debug/pprof/": 404, "/debug/pprof/heap": 404, "/healthz": 200} {
		if got := get(front, "https://"+addr+path); got != want {
			t.Errorf("%s through nginx: %d, want %d", path, got, want)
		}
	}
	for _, path := range []string{"/metrics", "/debug/pprof/"} {
		if got := get(http.DefaultClient, "http://"+d.Addr+path); got != 200 {
			t.Errorf("%s on wsd itself: %d, want 200", path, got)
		}
	}
}
