//go:build linux

package bench

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/wsproto"
)

// The frames wsbench writes and reads are wsd's own (docs/protocol.md,
// "Binary publications").
func TestWSBinaryFramesMatchWSD(t *testing.T) {
	f := appendWSBinaryPublish(nil, "bench", 42, 7, 64)
	p, err := wsproto.ParseBinaryPublish(f)
	if err != nil || p.Channel != "bench" || string(p.ID) != "42" || len(p.Data) != 64 {
		t.Fatalf("publish frame %q: %+v %v", f, p, err)
	}
	if seq, ts, ok := parseBcast(p.Data); !ok || seq != 42 || ts != 7 {
		t.Fatalf("payload: %d %d %v", seq, ts, ok)
	}
	push := pubsub.AppendBinaryPush(nil, &pubsub.Publication{Channel: "bench", Offset: 9, Epoch: "ep", Data: p.Data})
	if data, ok, other := splitWSBinaryPush(push, "bench"); !ok || other || !bytes.Equal(data, p.Data) {
		t.Fatalf("push %q: %q %v %v", push, data, ok, other)
	}
	if _, ok, other := splitWSBinaryPush(push, "elsewhere"); ok || !other {
		t.Fatal("push on another channel not told apart")
	}
	for _, bad := range [][]byte{nil, []byte(`{"channel":"bench"}`), push[:10], push[:len("\x01\x05bench")+9]} {
		if _, ok, _ := splitWSBinaryPush(bad, "bench"); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// startWSD runs the real /ws protocol on a loopback port for the test.
func startWSD(t *testing.T) string {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := server.New[wsproto.Session](server.Options{Logger: quiet})
	hub, err := wsproto.NewHub(srv, pubsub.NewMemory(pubsub.MemoryOptions{}), pubsub.HubOptions[*server.Prepared]{Namespaces: pubsub.Namespaces{"": {HistorySize: 10}}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := wsproto.New(hub, wsproto.Config{Logger: quiet, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle("/ws", h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(addr) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("ListenAndServe: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return addr
}

// --binary against wsd: every binary publication reaches every subscriber
// once, verified; JSON runs against the same server still work.
func TestBroadcastWSBinaryAgainstWSD(t *testing.T) {
	addr := startWSD(t)
	for _, size := range []int{64, 1024} {
		for _, binary := range []bool{false, true} {
			res := quickRun(t, Config{Scenario: ScenarioBroadcast, Mode: ModeWS, URL: "ws://" + addr + "/ws", Conns: 20, Pipeline: 2,
				Size: size, Binary: binary, Channel: "b" + strconv.Itoa(size) + strconv.FormatBool(binary)})
			if res.Subscribers != 20 || res.Lost != 0 || res.Errors != 0 || res.Mismatched != 0 || res.Published == 0 ||
				res.Totals.Unique != 20*res.Published || res.Size != size {
				t.Fatalf("size %d binary %v: subs %d lost %d errors %d published %d unique %d %v",
					size, binary, res.Subscribers, res.Lost, res.Errors, res.Published, res.Totals.Unique, res.ErrorReasons)
			}
		}
	}
}

func TestBroadcastWSBinaryConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Scenario: ScenarioBroadcast, Binary: true},
		{Scenario: ScenarioBroadcast, Mode: ModeWS, Publish: PublishHTTP, APIKey: "k", Binary: true},
		{Scenario: ScenarioEcho, Binary: true},
	} {
		cfg.URL = "ws://127.0.0.1:1/ws"
		if _, err := cfg.withDefaults(); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}
