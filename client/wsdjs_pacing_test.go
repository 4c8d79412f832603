package client

import (
	"testing"
	"time"
)

// wsd.js with two endpoints: a 1012 hint is waited out and moves it to the
// other node; a 503's Retry-After is waited out; a close from a live node
// (1008 slow consumer) keeps it there; every publication arrives once.
func TestWSDJSPacingAndEndpoints(t *testing.T) {
	a, b := newFakeServer(t), newFakeServer(t)
	d := startJS(t, a.url()+" "+b.url())
	d.send(map[string]any{"cmd": "subscribe", "channel": "news"})
	waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	both := func(data string) {
		a.publish("news", data)
		b.publish("news", data)
	}
	both("1")
	both("2")
	waitFor(t, "2 publications", func() bool { return len(d.offsets("news")) == 2 })
	lastDisconnect := func() jsEvent {
		var last jsEvent
		for _, e := range d.events("state") {
			if e.State == "disconnected" {
				last = e
			}
		}
		return last
	}
	connectedTo := func(s *fakeServer, after time.Time) bool {
		return len(s.handshakesSince(after)) > 0 && d.lastState().State == "connected" && d.lastState().URL == s.url()
	}

	// a restarts with a hint: the next attempt is on b, no earlier.
	const hint = 400 * time.Millisecond
	sent := a.closeAllWith(1012, "restart; retry=0.400")
	waitFor(t, "the move to b", func() bool { return connectedTo(b, sent) })
	if gap := b.handshakesSince(sent)[0].Sub(sent); gap < hint {
		t.Fatalf("reconnected %v after the close, before its hint of %v", gap, hint)
	}
	if n := len(a.handshakesSince(sent)); n != 0 {
		t.Fatalf("%d attempts on a after its 1012", n)
	}
	if e := lastDisconnect(); e.Info["hint"] != 400.0 || e.Info["delay"].(float64) < 400 || e.Info["delay"].(float64) > 441 {
		t.Fatalf("disconnect after the 1012: %+v", e.Info)
	}
	both("3")
	waitFor(t, "3 publications", func() bool { return len(d.offsets("news")) == 3 })

	// b shuts down (1001, no hint); a is over its accept rate: the client
	// waits a's Retry-After out and moves on to b again.
	a.with(func() { a.refuse, a.retryAfter = 503, "1" })
	sent = b.closeAllWith(1001, "server shutting down")
	waitFor(t, "a's refusal", func() bool { return len(a.handshakesSince(sent)) > 0 })
	refusedAt := a.handshakesSince(sent)[0]
	waitFor(t, "the move back to b", func() bool { return connectedTo(b, refusedAt) })
	if gap := b.handshakesSince(refusedAt)[0].Sub(refusedAt); gap < time.Second {
		t.Fatalf("next attempt %v after a 503 with Retry-After: 1", gap)
	}
	if e := lastDisconnect(); e.Info["status"] != 503.0 || e.Info["retryAfter"] != 1000.0 || e.Info["delay"].(float64) < 1000 {
		t.Fatalf("disconnect after the 503: %+v", e.Info)
	}

	// A slow-consumer close comes from a node that is alive: stay on b.
	na := len(a.handshakesSince(time.Time{}))
	sent = b.closeAllWith(1008, "slow consumer")
	waitFor(t, "the reconnect to b", func() bool { return connectedTo(b, sent) })
	if len(a.handshakesSince(time.Time{})) != na {
		t.Fatal("moved to a after a 1008 from b")
	}
	both("4")
	waitFor(t, "4 publications", func() bool { return len(d.offsets("news")) == 4 })
	if got := d.offsets("news"); !equalU64(got, seq(1, 4)) {
		t.Fatalf("offsets %v", got)
	}
	for _, r := range d.events("recover") {
		if !r.Recovered {
			t.Fatalf("a move lost history: %+v", d.events("recover"))
		}
	}
	d.send(map[string]any{"cmd": "close"})
}
