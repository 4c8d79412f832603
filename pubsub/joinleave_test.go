package pubsub

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

var joinLeaveNS = Namespaces{
	"":      {HistorySize: 10, Presence: true},
	"chat":  {HistorySize: 10, Presence: true, JoinLeave: true},
	"small": {Presence: true, JoinLeave: true, JoinLeaveMax: 2},
}

// jlPush is a join or leave push as a subscriber sees it.
type jlPush struct {
	Channel string                   `json:"channel"`
	Join    *struct{ Client string } `json:"join"`
	Leave   *struct{ Client string } `json:"leave"`
}

// joinLeaves lists r's join and leave pushes as "join ann" / "leave ann",
// ignoring publications.
func joinLeaves(t *testing.T, r *recorder) []string {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, f := range r.frames {
		var p jlPush
		if err := json.Unmarshal(f.b, &p); err != nil {
			t.Fatalf("push %q: %v", f.b, err)
		}
		switch {
		case p.Join != nil:
			out = append(out, p.Channel+" join "+p.Join.Client)
		case p.Leave != nil:
			out = append(out, p.Channel+" leave "+p.Leave.Client)
		}
	}
	return out
}

func newJLHub(t *testing.T, b Broker) *Hub[*frame] {
	t.Helper()
	h, err := NewHub[*frame](b, HubOptions[*frame]{Encode: func(b []byte) *frame { return &frame{b} }, Namespaces: joinLeaveNS})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func join(t *testing.T, h *Hub[*frame], channel, client string, r *recorder) *Subscription[*frame] {
	t.Helper()
	s, _, err := h.Subscribe(context.Background(), channel, r, SubscribeOptions{ClientID: client})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func wantJL(t *testing.T, who string, r *recorder, want ...string) {
	t.Helper()
	if got := joinLeaves(t, r); !slices.Equal(got, want) {
		t.Fatalf("%s got %q, want %q", who, got, want)
	}
}

// One node (the Memory broker): a client's first subscription pushes a
// join to the channel's other subscribers, its last one a leave; further
// subscriptions of the same client (a second tab) push nothing; the client
// never gets its own join; namespaces without join_leave push nothing.
func TestJoinLeaveLocal(t *testing.T) {
	h := newJLHub(t, NewMemory(MemoryOptions{}))
	var ann, bob, bob2, plain recorder
	a := join(t, h, "chat:lobby", "ann", &ann)
	b := join(t, h, "chat:lobby", "bob", &bob)
	b2 := join(t, h, "chat:lobby", "bob", &bob2) // bob's second tab
	join(t, h, "news", "ann", &plain)
	join(t, h, "news", "bob", &plain)
	wantJL(t, "ann", &ann, "chat:lobby join bob")
	wantJL(t, "bob", &bob)
	wantJL(t, "bob's second tab", &bob2)

	b.Unsubscribe() // bob is still there in his other tab
	wantJL(t, "ann", &ann, "chat:lobby join bob")
	b2.Unsubscribe()
	wantJL(t, "ann", &ann, "chat:lobby join bob", "chat:lobby leave bob")
	a.Unsubscribe()
	wantJL(t, "bob's second tab", &bob2)
	wantJL(t, "a namespace without join_leave", &plain)

	// One encoding per event, whatever the number of subscribers.
	var c1, c2, c3 recorder
	join(t, h, "chat:x", "c1", &c1)
	join(t, h, "chat:x", "c2", &c2)
	enc := h.Stats().Encodes
	join(t, h, "chat:x", "c3", &c3)
	if got := h.Stats().Encodes - enc; got != 1 {
		t.Fatalf("a join to two subscribers encoded %d times, want 1", got)
	}
	c1.mu.Lock()
	f1 := c1.frames[len(c1.frames)-1]
	c1.mu.Unlock()
	c2.mu.Lock()
	f2 := c2.frames[len(c2.frames)-1]
	c2.mu.Unlock()
	if f1 != f2 {
		t.Fatal("the two subscribers got different frames for one join")
	}
}

// join_leave_max: past that many subscriptions on the node, nothing is
// pushed; below it again, pushes resume.
func TestJoinLeaveMax(t *testing.T) {
	h := newJLHub(t, NewMemory(MemoryOptions{}))
	var r1, r2, r3 recorder
	join(t, h, "small:room", "a", &r1)
	join(t, h, "small:room", "b", &r2) // 2 subscriptions: pushed
	c := join(t, h, "small:room", "c", &r3)
	wantJL(t, "a", &r1, "small:room join b")
	c.Unsubscribe() // 2 left: pushed
	wantJL(t, "a", &r1, "small:room join b", "small:room leave c")
	wantJL(t, "b", &r2, "small:room leave c")
	if got := h.Stats().JoinLeaveCap; got != 1 {
		t.Fatalf("JoinLeaveCap %d, want 1 (c's join, at 3 subscriptions)", got)
	}
}

func TestJoinLeaveNeedsPresence(t *testing.T) {
	_, err := NewHub[*frame](NewMemory(MemoryOptions{}), HubOptions[*frame]{Encode: func(b []byte) *frame { return &frame{b} },
		Namespaces: Namespaces{"x": {JoinLeave: true}}})
	if err == nil || !strings.Contains(err.Error(), "join_leave = true needs presence = true") {
		t.Fatalf("join_leave without presence: %v", err)
	}
	var o NamespaceOptions
	for k, v := range map[string]string{"presence": "true", "join_leave": "true", "join_leave_max": "500"} {
		if err := o.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if !o.JoinLeave || o.JoinLeaveMax != 500 {
		t.Fatalf("Set: %+v", o)
	}
	if err := o.Set("join_leave_max", "-1"); err == nil {
		t.Fatal("join_leave_max -1 accepted")
	}
}

// fakeBus is a JoinLeaveBus: it records this node's events and lets the
// test play other nodes'.
type fakeBus struct {
	*Memory
	mu       sync.Mutex
	event    func(JoinLeaveEvent)
	gone     func(string)
	subs     map[string]bool
	sent     []string
	subCalls int
}

func newFakeBus() *fakeBus {
	return &fakeBus{Memory: NewMemory(MemoryOptions{}), subs: map[string]bool{}}
}

func (f *fakeBus) SetJoinLeaveHandler(event func(JoinLeaveEvent), gone func(string)) {
	f.event, f.gone = event, gone
}

func (f *fakeBus) SubscribeJoinLeave(channel string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.subs[channel] {
		return fmt.Errorf("subscribed twice to %q", channel)
	}
	f.subs[channel] = true
	f.subCalls++
	return nil
}

func (f *fakeBus) UnsubscribeJoinLeave(channel string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.subs[channel] {
		return fmt.Errorf("unsubscribed from %q, not subscribed", channel)
	}
	delete(f.subs, channel)
	return nil
}

func (f *fakeBus) PublishJoinLeave(e JoinLeaveEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	kind := "leave"
	if e.Join {
		kind = "join"
	}
	f.sent = append(f.sent, e.Channel+" "+kind+" "+e.Client)
}

func (f *fakeBus) remote(node, channel, client string, join bool) {
	f.event(JoinLeaveEvent{Channel: channel, Client: client, Join: join, Node: node})
}

// A cluster seen from one node: its own joins and leaves go to the bus;
// other nodes' reach its subscribers unless the client is on this node or
// a third one too (a client moving from node A to node B, or with tabs on
// both, neither joins nor leaves); a node gone takes its clients with it.
// The bus is subscribed only while the node has subscribers of a
// join/leave channel.
func TestJoinLeaveCluster(t *testing.T) {
	bus := newFakeBus()
	h := newJLHub(t, bus)
	var ann recorder
	a := join(t, h, "chat:lobby", "ann", &ann)
	join(t, h, "news", "ann", &recorder{})
	if !bus.subs["chat:lobby"] || bus.subs["news"] {
		t.Fatalf("bus subscriptions %v, want chat:lobby only", bus.subs)
	}

	bus.remote("B", "chat:lobby", "bob", true)
	bus.remote("B", "chat:other", "bob", true) // no subscriber here: dropped
	bus.remote("A", "chat:lobby", "ann", true) // ann is here already: nothing
	bus.remote("A", "chat:lobby", "ann", false)
	bus.remote("C", "chat:lobby", "bob", true) // bob on a second node: nothing
	bus.remote("B", "chat:lobby", "bob", false)
	wantJL(t, "ann", &ann, "chat:lobby join bob")
	bus.remote("C", "chat:lobby", "bob", false)
	wantJL(t, "ann", &ann, "chat:lobby join bob", "chat:lobby leave bob")

	// A leave whose join this node never saw is pushed (best guess).
	bus.remote("B", "chat:lobby", "cid", false)
	// A node gone: its clients leave, except those also elsewhere.
	bus.remote("B", "chat:lobby", "dan", true)
	bus.remote("B", "chat:lobby", "eve", true)
	bus.remote("C", "chat:lobby", "eve", true)
	bus.gone("B")
	bus.remote("C", "chat:lobby", "eve", false)
	wantJL(t, "ann", &ann, "chat:lobby join bob", "chat:lobby leave bob", "chat:lobby leave cid",
		"chat:lobby join dan", "chat:lobby join eve", "chat:lobby leave dan", "chat:lobby leave eve")

	// This node's own joins and leaves go out whatever the others hold;
	// a local join of a client another node holds is not pushed here.
	bus.remote("C", "chat:lobby", "fay", true)
	var fay recorder
	f := join(t, h, "chat:lobby", "fay", &fay)
	f.Unsubscribe()
	wantJL(t, "ann", &ann, "chat:lobby join bob", "chat:lobby leave bob", "chat:lobby leave cid",
		"chat:lobby join dan", "chat:lobby join eve", "chat:lobby leave dan", "chat:lobby leave eve", "chat:lobby join fay")
	wantJL(t, "fay", &fay)
	a.Unsubscribe()
	if want := []string{"chat:lobby join ann", "chat:lobby join fay", "chat:lobby leave fay", "chat:lobby leave ann"}; !slices.Equal(bus.sent, want) {
		t.Fatalf("sent %q, want %q", bus.sent, want)
	}
	if bus.subs["chat:lobby"] {
		t.Fatal("bus still subscribed to chat:lobby after its last subscriber left")
	}
	bus.remote("B", "chat:lobby", "gus", true) // nobody here: dropped, no panic
	join(t, h, "chat:lobby", "ann", &recorder{})
	if bus.subCalls != 2 {
		t.Fatalf("bus subscribed %d times, want 2", bus.subCalls)
	}
}

// A hub whose namespaces never push joins leaves the bus alone.
func TestJoinLeaveBusUnused(t *testing.T) {
	bus := newFakeBus()
	h, err := NewHub[*frame](bus, HubOptions[*frame]{Encode: func(b []byte) *frame { return &frame{b} },
		Namespaces: Namespaces{"": {Presence: true}}})
	if err != nil {
		t.Fatal(err)
	}
	join(t, h, "chat:lobby", "ann", &recorder{})
	if bus.event != nil || len(bus.subs) > 0 || len(bus.sent) > 0 {
		t.Fatal("the bus was used by a hub without join_leave namespaces")
	}
}

// The push's exact bytes (docs/protocol.md), escapes included.
func TestAppendJoinLeave(t *testing.T) {
	for _, c := range []struct {
		channel, client string
		join            bool
		want            string
	}{
		{"chat:lobby", "ann", true, `{"channel":"chat:lobby","join":{"client":"ann"}}`},
		{"chat:lobby", "ann", false, `{"channel":"chat:lobby","leave":{"client":"ann"}}`},
		{"c", "a\"b\\\n\x01", true, `{"channel":"c","join":{"client":"a\"b\\\n\u0001"}}`},
	} {
		b := AppendJoinLeave(nil, c.channel, c.client, c.join)
		if string(b) != c.want {
			t.Errorf("got %s, want %s", b, c.want)
		}
		if len(b) > JoinLeaveSize(c.channel, c.client) {
			t.Errorf("%s: %d bytes, JoinLeaveSize says %d", b, len(b), JoinLeaveSize(c.channel, c.client))
		}
		if !json.Valid(b) {
			t.Errorf("%s is not JSON", b)
		}
	}
}
