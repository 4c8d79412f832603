package main

import (
	"bytes"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/wsproto"
)

// The pacing flags are also TOML keys, and bad values stop wsd with 2.
func TestPacingConfig(t *testing.T) {
	p := writeConfig(t, "drain_spread = \"7s\"\nmax_accept_rate = 250.5\n")
	c, err := parseConfig([]string{"--config", p}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var o server.Options
	c.pacing.apply(&o)
	if o.DrainSpread != 7*time.Second || o.MaxAcceptRate != 250.5 {
		t.Fatalf("options from the file: spread %v rate %v", o.DrainSpread, o.MaxAcceptRate)
	}
	c, err = parseConfig([]string{"--config", p, "--drain-spread", "0"}, &bytes.Buffer{})
	if err != nil || c.pacing.drainSpread != 0 {
		t.Fatalf("flag must win: %v %v", c.pacing.drainSpread, err)
	}
	for body, want := range map[string]string{
		`drain_spread = "-1s"`:  `key "drain_spread"`,
		`drain_spread = "soon"`: `key "drain_spread"`,
		`max_accept_rate = -3`:  `key "max_accept_rate"`,
		`max_accept_rate = "x"`: `key "max_accept_rate"`,
	} {
		var stderr bytes.Buffer
		if code := run([]string{"--config", writeConfig(t, body)}, &stderr, nil); code != 2 || !strings.Contains(stderr.String(), want) {
			t.Errorf("config %q: exit %d, stderr %q; want 2 and %q", body, code, stderr.String(), want)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"--help"}, &stderr, nil); code != 0 ||
		!strings.Contains(stderr.String(), "-drain-spread") || !strings.Contains(stderr.String(), "-max-accept-rate") {
		t.Fatalf("--help (exit %d) does not list the pacing flags", code)
	}
}

// SIGTERM with --drain-spread: every client gets 1012 and a retry hint
// inside the window, and wsd exits 0 without waiting for the window.
func TestSIGTERMDrainsWithHints(t *testing.T) {
	ready := make(chan *server.Server[wsproto.Session], 1)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	go func() {
		done <- run([]string{"--listen", addr, "--loops", "1", "--drain-spread", "30s"}, &stderr, ready)
	}()
	select {
	case <-ready:
	case code := <-done:
		t.Fatalf("exited %d: %s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	var cs []*wstest.Client
	for range 8 {
		c, err := wstest.Dial(addr, "/ws")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
	}
	start := time.Now()
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	for i, c := range cs {
		code, reason, err := c.ExpectClose()
		if err != nil || code != codec.CloseServiceRestart || !strings.HasPrefix(reason, "restart; retry=") {
			t.Fatalf("client %d: close %d %q %v, want 1012 with a hint", i, code, reason, err)
		}
	}
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("stopping took %v: it waited for the spread window", d)
	}
}
