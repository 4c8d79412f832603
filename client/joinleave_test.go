package client

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
)

// memberLog records OnJoin and OnLeave as "chat:x join anon-2".
type memberLog struct {
	mu   sync.Mutex
	got  []string
	cond chan struct{}
}

func newMemberLog() *memberLog { return &memberLog{cond: make(chan struct{})} }

func (l *memberLog) add(s string) {
	l.mu.Lock()
	l.got = append(l.got, s)
	close(l.cond)
	l.cond = make(chan struct{})
	l.mu.Unlock()
}

func (l *memberLog) options() Options {
	return Options{
		OnJoin:  func(ch, client string) { l.add(ch + " join " + client) },
		OnLeave: func(ch, client string) { l.add(ch + " leave " + client) },
	}
}

// waitFor waits for len(want) entries and compares them.
func (l *memberLog) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		got, cond := slices.Clone(l.got), l.cond
		l.mu.Unlock()
		if len(got) >= len(want) {
			if !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
			return
		}
		select {
		case <-cond:
		case <-deadline:
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// OnJoin and OnLeave against a real server: another client's subscribe and
// unsubscribe, with the client ID presence shows; nothing for a namespace
// without join_leave, nor while this client is not subscribed.
func TestOnJoinLeave(t *testing.T) {
	n := startNodeNS(t, server.Options{}, pubsub.Namespaces{
		"":     {Presence: true},
		"chat": {Presence: true, JoinLeave: true},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	log := newMemberLog()
	dial := func(opts Options) *Client {
		c, err := Dial(ctx, n.url(), opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	do := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	subscribe := func(c *Client, ch string) {
		t.Helper()
		_, err := c.Subscribe(ctx, ch)
		do(err)
	}
	// idOf is the client ID that c's subscription adds to presence.
	idOf := func(c *Client, before []string) string {
		t.Helper()
		p, err := c.Presence(ctx, "chat:lobby")
		do(err)
		for _, id := range p.Clients {
			if !slices.Contains(before, id) {
				return id
			}
		}
		t.Fatalf("presence %v has nobody new after %v", p.Clients, before)
		return ""
	}

	a, b, c := dial(log.options()), dial(Options{}), dial(Options{})
	subscribe(a, "news")
	subscribe(a, "chat:lobby")
	aID := idOf(a, nil)
	subscribe(b, "news") // no join_leave: nothing
	subscribe(b, "chat:lobby")
	bID := idOf(b, []string{aID})
	log.waitFor(t, "chat:lobby join "+bID)
	do(b.Unsubscribe(ctx, "chat:lobby"))
	log.waitFor(t, "chat:lobby join "+bID, "chat:lobby leave "+bID)

	// While a is not subscribed, b's join is not reported to it; c's,
	// after a is back, is the next one.
	do(a.Unsubscribe(ctx, "chat:lobby"))
	subscribe(b, "chat:lobby")
	subscribe(a, "chat:lobby")
	subscribe(c, "chat:lobby")
	cID := idOf(c, []string{aID, bID})
	log.waitFor(t, "chat:lobby join "+bID, "chat:lobby leave "+bID, "chat:lobby join "+cID)
}

// wsd.js's 'join' and 'leave' events against a real server, with the
// client IDs presence shows.
func TestWSDJSJoinLeave(t *testing.T) {
	n := startNodeNS(t, server.Options{}, pubsub.Namespaces{"chat": {Presence: true, JoinLeave: true}})
	d := startJS(t, n.url())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Dial(ctx, n.url(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	members := func() []string {
		var out []string
		for _, e := range d.events("join") {
			out = append(out, e.Channel+" join "+e.Client)
		}
		for _, e := range d.events("leave") {
			out = append(out, e.Channel+" leave "+e.Client)
		}
		return out
	}
	d.send(map[string]any{"cmd": "subscribe", "channel": "chat:lobby"})
	waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	p, err := b.Presence(ctx, "chat:lobby")
	if err != nil || len(p.Clients) != 1 {
		t.Fatalf("presence %+v, %v", p, err)
	}
	jsID := p.Clients[0]
	if _, err := b.Subscribe(ctx, "chat:lobby"); err != nil {
		t.Fatal(err)
	}
	if p, err = b.Presence(ctx, "chat:lobby"); err != nil || len(p.Clients) != 2 {
		t.Fatalf("presence %+v, %v", p, err)
	}
	bID := p.Clients[0]
	if bID == jsID {
		bID = p.Clients[1]
	}
	waitFor(t, "join", func() bool { return len(members()) == 1 })
	if err := b.Unsubscribe(ctx, "chat:lobby"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "leave", func() bool { return len(members()) == 2 })
	if got, want := members(), []string{"chat:lobby join " + bID, "chat:lobby leave " + bID}; !slices.Equal(got, want) {
		t.Fatalf("wsd.js got %q, want %q", got, want)
	}
}
