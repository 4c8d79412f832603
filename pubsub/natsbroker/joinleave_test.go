package natsbroker_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/pubsub/natsbroker"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

var jlNamespaces = pubsub.Namespaces{"": {HistorySize: 10, Presence: true, JoinLeave: true}}

// pushLog is a subscriber that keeps its pushes as strings, as describe
// renders them (false: not kept), and lets a test wait for them.
type pushLog struct {
	describe func(push []byte) (string, bool)
	mu       sync.Mutex
	got      []string
	cond     chan struct{} // closed and replaced on every kept push
}

// jlRecorder keeps the join and leave pushes as "join ann" / "leave ann".
type jlRecorder = pushLog

func newJLRecorder() *jlRecorder {
	return &pushLog{cond: make(chan struct{}), describe: func(f []byte) (string, bool) {
		var p struct {
			Join, Leave *struct{ Client string }
		}
		if json.Unmarshal(f, &p) != nil {
			panic("bad push " + string(f))
		}
		switch {
		case p.Join != nil:
			return "join " + p.Join.Client, true
		case p.Leave != nil:
			return "leave " + p.Leave.Client, true
		}
		return "", false // a publication
	}}
}

func (r *pushLog) Deliver(f []byte) {
	s, keep := r.describe(f)
	if !keep {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, s)
	close(r.cond)
	r.cond = make(chan struct{})
}

// waitFor waits for len(want) pushes, then checks them all.
func (r *pushLog) waitFor(t *testing.T, who string, want ...string) {
	t.Helper()
	deadline := time.After(wait)
	for {
		r.mu.Lock()
		got, cond := slices.Clone(r.got), r.cond
		r.mu.Unlock()
		if len(got) >= len(want) {
			if !slices.Equal(got, want) {
				t.Fatalf("%s got %q, want %q", who, got, want)
			}
			return
		}
		select {
		case <-cond:
		case <-deadline:
			t.Fatalf("%s got %q after %v, want %q", who, got, wait, want)
		}
	}
}

func startJLNode(t *testing.T, url string, ttl time.Duration) *node {
	t.Helper()
	b, err := natsbroker.Connect(context.Background(), natsbroker.Options{URLs: []string{url}, Namespaces: jlNamespaces,
		Timeout: 10 * time.Second, PresenceTTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	h, err := pubsub.NewHub(b, pubsub.HubOptions[[]byte]{Encode: func(b []byte) []byte { return b }, Namespaces: jlNamespaces})
	if err != nil {
		t.Fatal(err)
	}
	return &node{b: b, h: h}
}

func (n *node) sub(t *testing.T, channel, client string, r pubsub.Subscriber[[]byte]) *pubsub.Subscription[[]byte] {
	t.Helper()
	s, _, err := n.h.Subscribe(context.Background(), channel, r, pubsub.SubscribeOptions{ClientID: client})
	if err != nil {
		t.Fatalf("%s joins %q: %v", client, channel, err)
	}
	return s
}

// Two nodes on one NATS: a join or leave on one node reaches the other's
// subscribers; a client on both nodes at once neither joins nor leaves
// there; a node without subscribers gets nothing (and its unsubscribed
// subscriber nothing after); a node killed without a word takes the
// clients it announced with it within the TTL. Each negative check is
// followed by a later event from the same node, which arrives after it.
func TestJoinLeaveAcrossNodes(t *testing.T) {
	const ttl = 2 * time.Second
	srv := natstest.Start(t)
	a, b := startJLNode(t, srv.URL, ttl), startJLNode(t, srv.URL, ttl)
	ann, erin := newJLRecorder(), newJLRecorder()
	a.sub(t, "room", "ann", ann)
	erinSub := b.sub(t, "room", "erin", erin)
	ann.waitFor(t, "ann", "join erin")
	bobB := b.sub(t, "room", "bob", discard{})
	ann.waitFor(t, "ann", "join erin", "join bob")
	erin.waitFor(t, "erin", "join bob")

	a.sub(t, "room", "carl", discard{})
	erin.waitFor(t, "erin", "join bob", "join carl")

	// bob opens a second tab, on node a: no join anywhere; then leaves b:
	// no leave anywhere. dan and frank mark the order.
	a.sub(t, "room", "bob", discard{})
	a.sub(t, "room", "dan", discard{})
	erin.waitFor(t, "erin", "join bob", "join carl", "join dan")
	bobB.Unsubscribe()
	frank := b.sub(t, "room", "frank", discard{})
	ann.waitFor(t, "ann", "join erin", "join bob", "join carl", "join dan", "join frank")

	// Node b's last subscribers go: b stops listening. Events sent then
	// never reach it, nor its former subscribers.
	erinSub.Unsubscribe()
	frank.Unsubscribe()
	ann.waitFor(t, "ann", "join erin", "join bob", "join carl", "join dan", "join frank", "leave erin", "leave frank")
	a.sub(t, "room", "gus", discard{})
	hal := newJLRecorder()
	b.sub(t, "room", "hal", hal)
	ivy := a.sub(t, "room", "ivy", discard{})
	hal.waitFor(t, "hal", "join ivy")
	erin.waitFor(t, "erin after unsubscribing", "join bob", "join carl", "join dan", "join frank")
	ivy.Unsubscribe()
	a.sub(t, "room", "jon", discard{})
	hal.waitFor(t, "hal", "join ivy", "leave ivy", "join jon")

	// Node a dies without a word: b's subscribers see the clients it
	// learned of through events leave (jon), within the TTL.
	start := time.Now()
	a.b.Kill()
	hal.waitFor(t, "hal", "join ivy", "leave ivy", "join jon", "leave jon")
	took := time.Since(start)
	t.Logf("a killed node's client left %v after the kill (TTL %v)", took.Round(time.Millisecond), ttl)
	if took > 2*ttl+time.Second {
		t.Fatalf("a killed node's client left after %v, TTL %v", took, ttl)
	}
}

// A node that closes cleanly says bye: its clients leave the other nodes'
// channels at once, not after the TTL.
func TestJoinLeaveNodeBye(t *testing.T) {
	const ttl = time.Minute
	srv := natstest.Start(t)
	a, b := startJLNode(t, srv.URL, ttl), startJLNode(t, srv.URL, ttl)
	ann := newJLRecorder()
	a.sub(t, "room", "ann", ann)
	b.sub(t, "room", "bob", discard{})
	ann.waitFor(t, "ann", "join bob")
	start := time.Now()
	b.b.Close()
	ann.waitFor(t, "ann", "join bob", "leave bob")
	if took := time.Since(start); took > ttl/2 {
		t.Fatalf("bob left %v after his node closed: the bye was not heard (TTL %v)", took, ttl)
	}
}
