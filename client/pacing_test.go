package client

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// delays records the delay the client chose before each attempt.
type delays struct {
	mu sync.Mutex
	d  []time.Duration
}

func (r *delays) hook(o *Options) {
	o.testHookBackoff = func(_ int, d time.Duration) {
		r.mu.Lock()
		r.d = append(r.d, d)
		r.mu.Unlock()
	}
}

func (r *delays) last() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.d) == 0 {
		return -1
	}
	return r.d[len(r.d)-1]
}

// After a 1012 with a retry hint the client waits the hint (plus a little
// jitter) instead of its backoff, which here is a few milliseconds.
func TestCloseHintIsHonoured(t *testing.T) {
	s := newFakeServer(t)
	var rec delays
	o := fast()
	rec.hook(&o)
	c := dial(t, s, o)
	const hint = 400 * time.Millisecond
	sent := s.closeAllWith(1012, "restart; retry=0.400")
	waitFor(t, "the reconnect", func() bool { return len(s.handshakesSince(sent)) > 0 && c.State() == StateConnected })
	gap := s.handshakesSince(sent)[0].Sub(sent)
	if gap < hint {
		t.Fatalf("reconnected %v after the close, before its hint of %v", gap, hint)
	}
	if d := rec.last(); d < hint || d > hint+hint/10+time.Millisecond {
		t.Fatalf("delay %v, want the hint %v plus at most 10%%", d, hint)
	}
	if gap > hint+3*time.Second {
		t.Fatalf("reconnected only %v after a hint of %v", gap, hint)
	}
	// A close without a hint goes back to the backoff.
	sent = s.closeAllWith(1001, "server shutting down")
	waitFor(t, "the reconnect", func() bool { return len(s.handshakesSince(sent)) > 0 && c.State() == StateConnected })
	if d := rec.last(); d > o.MaxBackoff {
		t.Fatalf("delay %v after a close without a hint, want the backoff (≤ %v)", d, o.MaxBackoff)
	}
}

// After a 503 with Retry-After the client waits at least that long.
func TestRetryAfterIsHonoured(t *testing.T) {
	s := newFakeServer(t)
	var rec delays
	o := fast()
	rec.hook(&o)
	c := dial(t, s, o)
	s.with(func() { s.refuse, s.retryAfter = 503, "1" })
	s.dropAll()
	begin := time.Now()
	waitFor(t, "a refused attempt", func() bool { return len(s.handshakesSince(begin)) >= 1 })
	first := s.handshakesSince(begin)[0]
	waitFor(t, "the next attempt", func() bool { return len(s.handshakesSince(first)) >= 1 })
	if gap := s.handshakesSince(first)[0].Sub(first); gap < time.Second {
		t.Fatalf("next attempt %v after a 503 with Retry-After: 1", gap)
	}
	if d := rec.last(); d < time.Second || d > 2*time.Second {
		t.Fatalf("delay %v after Retry-After: 1, want [1 s, 2 s)", d)
	}
	s.with(func() { s.refuse, s.retryAfter = 0, "" })
	waitFor(t, "the reconnect", func() bool { return c.State() == StateConnected })
}

// handshakes counts the upgrade requests s has read.
func handshakes(s *fakeServer) int {
	var n int
	s.with(func() { n = s.handshakes })
	return n
}

// With several endpoints the client moves on when its node is gone
// (1012, 1001, a dropped or refused connection), stays after other closes,
// and resubscribes with since wherever it lands.
func TestEndpoints(t *testing.T) {
	a, b := newFakeServer(t), newFakeServer(t)
	rec := newRecorder()
	o := rec.options(fast())
	o.Endpoints = []string{b.url()}
	c := dial(t, a, o)
	if _, err := c.Subscribe(ctxT(t), "news"); err != nil {
		t.Fatal(err)
	}
	a.publish("news", "1")
	a.publish("news", "2")
	waitFor(t, "2 publications", func() bool { return rec.count("news") == 2 })
	// b holds the same history, as another node of one cluster would.
	b.publish("news", "1")
	b.publish("news", "2")
	b.publish("news", "3")

	moved := func(to *fakeServer, before int, what string) {
		t.Helper()
		waitFor(t, what, func() bool { return handshakes(to) > before && c.State() == StateConnected })
	}
	nb := handshakes(b)
	a.closeAllWith(1012, "restart; retry=0.010")
	moved(b, nb, "the move to b after 1012")
	waitFor(t, "the missed publication from b", func() bool { return rec.count("news") == 3 })
	a.publish("news", "3") // the cluster's histories agree again
	b.with(func() {
		last := b.sinces[len(b.sinces)-1]
		if last.since == nil || last.since.Offset != 2 {
			t.Errorf("resubscribed on b with since %+v, want offset 2", last.since)
		}
	})

	// A close from a live node keeps the client there.
	nb = handshakes(b)
	na := handshakes(a)
	b.closeAllWith(1008, "slow consumer")
	moved(b, nb, "the reconnect to b after 1008")
	if handshakes(a) != na {
		t.Fatal("moved to a after a 1008 from b")
	}

	na = handshakes(a)
	b.closeAllWith(1001, "server shutting down")
	moved(a, na, "the move to a after 1001")

	// a dies without a close frame and stops listening: b takes over.
	nb = handshakes(b)
	a.ln.Close()
	a.dropAll()
	moved(b, nb, "the move to b after a dropped connection")
	if got := rec.offsets("news"); !equalU64(got, seq(1, 3)) {
		t.Fatalf("offsets %v", got)
	}
	for _, r := range rec.recoverList() {
		if !r.recovered {
			t.Fatalf("a move lost history: %+v", rec.recoverList())
		}
	}
}

func TestBadEndpoint(t *testing.T) {
	_, err := New("ws://127.0.0.1:1/ws", Options{Endpoints: []string{"ftp://x/ws"}})
	if err == nil {
		t.Fatal("a bad endpoint URL was accepted")
	}
}

func TestNodeGone(t *testing.T) {
	for _, tc := range []struct {
		err  error
		gone bool
	}{
		{&CloseError{Code: 1012}, true},
		{&CloseError{Code: 1001}, true},
		{&CloseError{Code: 1013}, true},
		{&CloseError{Code: 1008, Reason: "slow consumer"}, false},
		{&CloseError{Code: 1011}, false},
		{&HandshakeError{Status: 503}, true},
		{errors.New("connection refused"), true},
		{errPingTimeout, true},
	} {
		if got := nodeGone(tc.err); got != tc.gone {
			t.Errorf("nodeGone(%v) = %v", tc.err, got)
		}
	}
}
