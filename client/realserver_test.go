package client

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/internal/wstest"
	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/wsproto"
)

// wsdNode is a real server.Server with the /ws protocol on a loopback
// port; stop shuts it down (also done when the test ends).
type wsdNode struct {
	addr string
	srv  *server.Server[wsproto.Session]
	done chan error
	once sync.Once
}

func startNode(t *testing.T, opts server.Options) *wsdNode {
	t.Helper()
	return startNodeNS(t, opts, nil)
}

// startNodeNS is startNode with namespaces.
func startNodeNS(t *testing.T, opts server.Options, ns pubsub.Namespaces) *wsdNode {
	t.Helper()
	n, _ := startWSNode(t, opts, ns, wsproto.Config{})
	return n
}

// startWSNode runs a server with the /ws handler made from cfg (quiet
// logs) and the memory broker on a free loopback port, stopped when the
// test ends; it returns the handler too, for its counters.
func startWSNode(t *testing.T, opts server.Options, ns pubsub.Namespaces, cfg wsproto.Config) (*wsdNode, *wsproto.Handler) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Logger = opts.Logger
	srv := server.New[wsproto.Session](opts)
	hub, err := wsproto.NewHub(srv, pubsub.NewMemory(pubsub.MemoryOptions{}), pubsub.HubOptions[*server.Prepared]{Namespaces: ns})
	if err != nil {
		t.Fatal(err)
	}
	h, err := wsproto.New(hub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle("/ws", h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &wsdNode{addr: ln.Addr().String(), srv: srv, done: make(chan error, 1)}
	ln.Close()
	go func() { n.done <- srv.ListenAndServe(n.addr) }()
	select {
	case <-srv.Ready():
	case err := <-n.done:
		t.Fatalf("ListenAndServe: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() { n.stop(t); h.CloseProxies() })
	return n, h
}

func (n *wsdNode) url() string { return "ws://" + n.addr + "/ws" }

func (n *wsdNode) stop(t *testing.T) {
	n.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-n.done; err != nil {
			t.Errorf("ListenAndServe: %v", err)
		}
	})
}

// Against real servers: node a drains with a retry hint, the client waits
// it out and moves to node b, which is over its accept rate and answers
// 503 with Retry-After; the client waits that out too and gets in.
func TestRealServerHintAndRetryAfter(t *testing.T) {
	a := startNode(t, server.Options{DrainSpread: 500 * time.Millisecond})
	b := startNode(t, server.Options{MaxAcceptRate: 1})

	var (
		mu    sync.Mutex
		errs  []error
		waits []time.Duration
	)
	o := fast()
	o.Endpoints = []string{b.url()}
	o.OnState = func(s State, err error) {
		if s == StateDisconnected {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	o.testHookBackoff = func(_ int, d time.Duration) {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
	}
	c, err := Dial(ctxT(t), a.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Subscribe(ctxT(t), "news"); err != nil {
		t.Fatal(err)
	}
	// Take b's one token, so that the client's first try there is refused.
	if other, err := wstest.Dial(b.addr, "/ws"); err != nil {
		t.Fatal(err)
	} else {
		defer other.Close()
	}
	a.stop(t)
	waitFor(t, "the client on b", func() bool {
		return c.State() == StateConnected && b.srv.Stats().Upgraded == 2
	})
	mu.Lock()
	defer mu.Unlock()
	var ce *CloseError
	if len(errs) < 2 || !errors.As(errs[0], &ce) || ce.Code != 1012 {
		t.Fatalf("disconnects %v, want a 1012 first", errs)
	}
	hint, ok := ce.RetryHint()
	if !ok || hint >= 500*time.Millisecond {
		t.Fatalf("1012 %q: hint %v %v, want one in [0, 500ms)", ce.Reason, hint, ok)
	}
	if waits[0] < hint {
		t.Fatalf("waited %v after a hint of %v", waits[0], hint)
	}
	var he *HandshakeError
	if !errors.As(errs[1], &he) || he.Status != 503 || he.RetryAfter < time.Second {
		t.Fatalf("second disconnect %v, want b's 503 with Retry-After", errs[1])
	}
	if waits[1] < he.RetryAfter {
		t.Fatalf("waited %v after Retry-After %v", waits[1], he.RetryAfter)
	}
	if got := b.srv.Stats().Closes["accept_rate"]; got < 1 {
		t.Fatalf("b counted %d accept_rate refusals", got)
	}
}
