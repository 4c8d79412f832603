package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/client"
	"github.com/wsdhq/wsd/wsproto"
)

func TestProxyKeysInConfigFile(t *testing.T) {
	p := writeConfig(t, `rpc_proxy_url = "http://127.0.0.1:9/rpc"
connect_proxy_url = "http://127.0.0.1:9/connect"
connect_proxy_headers = ["User-Agent"]
publish_proxy_url = "http://127.0.0.1:9/publish"
publish_proxy_namespaces = ["chat", "default"]
proxy_timeout = "750ms"
`)
	c, err := parseConfig([]string{"--config", p}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	got := c.proxy.config()
	if got.RPCURL != "http://127.0.0.1:9/rpc" || got.PublishURL != "http://127.0.0.1:9/publish" || got.SubscribeURL != "" ||
		strings.Join(got.PublishNamespaces, ",") != "chat,default" || got.Timeout != 750*time.Millisecond ||
		got.MaxInFlight != wsproto.DefaultProxyMaxInFlight || got.ConnectURL != "http://127.0.0.1:9/connect" ||
		strings.Join(got.ConnectHeaders, ",") != "User-Agent" {
		t.Fatalf("proxy config %+v", got)
	}
	var stderr bytes.Buffer
	if code := run([]string{"--rpc-proxy-url", "ftp://x"}, &stderr, nil); code != 2 || !strings.Contains(stderr.String(), "rpc_proxy_url") {
		t.Fatalf("bad URL: exit %d, %q", code, stderr.String())
	}
}

// wsd with an rpc and a publish proxy: the calls reach the backend and
// /metrics shows them per proxy.
func TestProxiesAndMetrics(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/rpc":
			fmt.Fprint(w, `{"result":"pong"}`)
		default:
			fmt.Fprint(w, `{"error":{"code":"denied","message":"read only"}}`)
		}
	}))
	defer backend.Close()
	addr, _ := startRun(t, "--rpc-proxy-url", backend.URL+"/rpc", "--publish-proxy-url", backend.URL+"/publish")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+addr+"/ws", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c.RPC(ctx, "ping", nil); err != nil || string(res) != `"pong"` {
		t.Fatalf("rpc: %s %v", res, err)
	}
	var se *client.ServerError
	if _, err := c.Publish(ctx, "news", 1); !errors.As(err, &se) || se.Code != "denied" {
		t.Fatalf("publish: %v", err)
	}
	c.Close(ctx)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`wsd_proxy_calls_total{proxy="rpc"} 1`, `wsd_proxy_calls_total{proxy="publish"} 1`,
		`wsd_proxy_errors_total{proxy="rpc"} 0`, `wsd_proxy_latency_seconds_count{proxy="rpc"} 1`,
		`wsd_proxy_latency_seconds_bucket{proxy="publish",le="+Inf"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// The e2e case: wsd as its own process (memory broker) and an httptest
// backend made slow and then stopped. Every rpc and proxied publish gets
// an error reply within the timeout, another client's unproxied requests
// are served meanwhile, and /healthz stays 200.
func TestProxiesE2ESlowThenStoppedBackend(t *testing.T) {
	const timeout = 500 * time.Millisecond
	slow := make(chan struct{})
	var slowOnce sync.Once
	release := func() { slowOnce.Do(func() { close(slow) }) }
	var slowMode atomic.Bool
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if slowMode.Load() {
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		}
		fmt.Fprint(w, `{"result":{}}`)
	}))
	defer backend.Close()
	defer release()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n := &node{t: t, addr: addr, args: []string{"--listen", addr, "--loops", "1", "--workers", "2",
		"--return-memory=false", "--rate-limit", "-1", "--proxy-timeout", timeout.String(),
		"--rpc-proxy-url", backend.URL + "/rpc", "--publish-proxy-url", backend.URL + "/publish",
		"--publish-proxy-namespaces", "chat"}}
	n.start()
	t.Cleanup(n.stop)
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	a, b := dial(t, n, newReceiver()), dial(t, n, newReceiver())
	if _, err := a.RPC(ctx, "ok", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctx, "chat:x", 1); err != nil {
		t.Fatal(err)
	}

	check := func(what string, err error, took time.Duration) {
		t.Helper()
		var se *client.ServerError
		if !errors.As(err, &se) || se.Code != wsproto.CodeBackendUnavailable {
			t.Fatalf("%s: %v", what, err)
		}
		if took > timeout+3*time.Second {
			t.Fatalf("%s: error reply after %v (timeout %v)", what, took, timeout)
		}
	}
	slowMode.Store(true)
	// More calls waiting on the backend than wsd has workers.
	const calls = 8
	errs := make(chan error, calls)
	start := time.Now()
	for i := range calls {
		go func() {
			var err error
			if i%2 == 0 {
				_, err = a.RPC(ctx, "think", nil)
			} else {
				_, err = a.Publish(ctx, "chat:x", i)
			}
			errs <- err
		}()
	}
	if _, err := b.Publish(ctx, "news", 1); err != nil { // unproxied: served meanwhile
		t.Fatal(err)
	}
	if code, body := n.health(); code != http.StatusOK {
		t.Fatalf("healthz %d %s while the backend is slow", code, body)
	}
	for range calls {
		err := <-errs
		check("slow backend", err, time.Since(start))
	}
	release()
	backend.Close()
	for i := range 3 {
		s := time.Now()
		_, err := a.RPC(ctx, "after", i)
		check("stopped backend rpc", err, time.Since(s))
		s = time.Now()
		_, err = a.Publish(ctx, "chat:x", i)
		check("stopped backend publish", err, time.Since(s))
	}
	if _, err := b.Publish(ctx, "news", 2); err != nil {
		t.Fatal(err)
	}
	if code, body := n.health(); code != http.StatusOK {
		t.Fatalf("healthz %d %s after the backend stopped", code, body)
	}
}
