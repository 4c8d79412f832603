package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/wsproto"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wsd.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFlagsOverrideFile(t *testing.T) {
	p := writeConfig(t, `max_message = 1000
idle_timeout = "7s"
api_key = "from-file"
allowed_origins = ["https://a.example", "https://b.example"]
[namespaces.chat]
history_size = 5
publish = "subscribers"
`)
	c, err := parseConfig([]string{"--config", p, "--max-message", "2000"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.maxMessage != 2000 {
		t.Errorf("flag must win: max_message = %d", c.maxMessage)
	}
	if c.idleTimeout != 7*time.Second || c.apiKey != "from-file" {
		t.Errorf("file values not applied: %v %q", c.idleTimeout, c.apiKey)
	}
	if c.allowedOrigins != "https://a.example,https://b.example" {
		t.Errorf("list value: %q", c.allowedOrigins)
	}
	if ns := c.namespaces["chat"]; ns.HistorySize != 5 || ns.Publish.String() != "subscribers" {
		t.Errorf("namespace: %+v", ns)
	}
	if _, ok := c.namespaces[""]; !ok {
		t.Error("default namespace missing")
	}
}

// A bad config is a clear error naming the key, and exit status 2.
func TestBadConfigNamesKey(t *testing.T) {
	cases := map[string]string{
		`max_mesage = 5`:                         `unknown key "max_mesage"`,
		`max_message = "lots"`:                   `key "max_message"`,
		`idle_timeout = "soon"`:                  `key "idle_timeout"`,
		"[namespaces.chat]\nhistory_size = -1":   "namespaces.chat",
		"[namespaces.chat]\npublish = \"maybe\"": "namespaces.chat.publish",
		`listen = `:                              "wsd.toml",
		`close_timeout = "0s"`:                   "close-timeout must be positive",
	}
	for body, want := range cases {
		var stderr bytes.Buffer
		code := run([]string{"--config", writeConfig(t, body)}, &stderr, nil)
		if code != 2 || !strings.Contains(stderr.String(), want) {
			t.Errorf("config %q: exit %d, stderr %q; want 2 and %q", body, code, stderr.String(), want)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"--max-message", "x"}, &stderr, nil); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
}

func TestHelpListsEveryFlag(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"--help"}, &stderr, nil); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for _, f := range []string{"-listen", "-config", "-api-key", "-token-secret", "-max-message", "-demo-ticker", "-rate-limit", "-idle-timeout"} {
		if !strings.Contains(stderr.String(), f) {
			t.Errorf("--help does not mention %s", f)
		}
	}
}

// The example config in deploy/ is valid once its placeholder API key is
// replaced; as shipped, wsd refuses to start with it.
func TestDeployConfigLoads(t *testing.T) {
	if _, err := parseConfig([]string{"--config", "../../deploy/wsd.toml"}, &bytes.Buffer{}); err == nil ||
		!strings.Contains(err.Error(), `api_key is the example value "change-me"`) {
		t.Fatalf("the example API key: %v, want a refusal", err)
	}
	c, err := parseConfig([]string{"--config", "../../deploy/wsd.toml", "--api-key", "3f9a7c1e5b"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.namespaces["chat"].HistorySize != 500 {
		t.Fatalf("chat namespace: %+v", c.namespaces["chat"])
	}
}

func TestRunServesAndStopsOnSignal(t *testing.T) {
	ready := make(chan *server.Server[wsproto.Session], 1)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- run([]string{"--listen", "127.0.0.1:0", "--loops", "1"}, &stderr, ready) }()
	select {
	case <-ready:
	case code := <-done:
		t.Fatalf("exited %d: %s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
}

// startRun runs the daemon in-process on a free loopback port with args
// and stops it with SIGTERM when the test ends.
func startRun(t *testing.T, args ...string) (string, *server.Server[wsproto.Session]) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ready := make(chan *server.Server[wsproto.Session], 1)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(append([]string{"--listen", addr, "--loops", "1", "--return-memory=false"}, args...), &stderr, ready)
	}()
	var srv *server.Server[wsproto.Session]
	select {
	case srv = <-ready:
	case code := <-done:
		t.Fatalf("exited %d: %s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	t.Cleanup(func() {
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("exit %d", code)
			}
		case <-time.After(15 * time.Second):
			t.Error("did not stop on SIGTERM")
		}
	})
	return addr, srv
}
