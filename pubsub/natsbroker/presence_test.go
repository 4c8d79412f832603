package natsbroker_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/pubsub/natsbroker"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

var presenceNamespaces = pubsub.Namespaces{"": {HistorySize: 10, Presence: true}}

// node is one wsd node in a presence test: a hub on its own NATS broker.
type node struct {
	b *natsbroker.Broker
	h *pubsub.Hub[[]byte]
}

type discard struct{}

func (discard) Deliver([]byte) {}

func startNode(t *testing.T, url string, ttl time.Duration, maxClients int) *node {
	t.Helper()
	b, err := natsbroker.Connect(context.Background(), natsbroker.Options{URLs: []string{url}, Namespaces: presenceNamespaces,
		Timeout: 10 * time.Second, PresenceTTL: ttl, PresenceMaxClients: maxClients})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	h, err := pubsub.NewHub(b, pubsub.HubOptions[[]byte]{Encode: func(b []byte) []byte { return b }, Namespaces: presenceNamespaces})
	if err != nil {
		t.Fatal(err)
	}
	return &node{b: b, h: h}
}

func (n *node) join(t *testing.T, channel, client string) *pubsub.Subscription[[]byte] {
	t.Helper()
	s, _, err := n.h.Subscribe(context.Background(), channel, discard{}, pubsub.SubscribeOptions{ClientID: client})
	if err != nil {
		t.Fatalf("%s joins %q: %v", client, channel, err)
	}
	return s
}

func (n *node) presence(t *testing.T, channel string) pubsub.Presence {
	t.Helper()
	p, err := n.h.Presence(context.Background(), channel)
	if err != nil {
		t.Fatalf("presence of %q on node %s: %v", channel, n.b.NodeID(), err)
	}
	return p
}

func describe(p pubsub.Presence) string {
	return fmt.Sprintf("clients %v count %d connections %d", p.Clients, p.Count, p.Connections)
}

// waitPresence waits until every node answers want for channel.
func waitPresence(t *testing.T, channel string, want string, nodes ...*node) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for _, n := range nodes {
		for {
			got := describe(n.presence(t, channel))
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s: presence of %q is %s, want %s", n.b.NodeID(), channel, got, want)
			}
			time.Sleep(20 * time.Millisecond) // polling another node's writes, not synchronising
		}
	}
}

// Three nodes: presence asked on any node lists the clients of all three;
// a client that leaves is gone at once on its node and right after on the
// others; a node killed without cleanup (its entries stay, nothing
// refreshes them) leaves the cluster's presence within the TTL, while the
// live nodes' entries outlive several TTLs (refreshed).
func TestClusterPresence(t *testing.T) {
	const ttl = 2 * time.Second
	srv := natstest.Start(t)
	a, b, c := startNode(t, srv.URL, ttl, 0), startNode(t, srv.URL, ttl, 0), startNode(t, srv.URL, ttl, 0)
	a.join(t, "room", "ann")
	a.join(t, "room", "bob")
	a.join(t, "room", "bob")
	b.join(t, "room", "bob")
	carol := b.join(t, "room", "carol")
	c.join(t, "room", "dave")
	c.join(t, "other", "erin")
	waitPresence(t, "room", "clients [ann bob carol dave] count 4 connections 6", a, b, c)
	waitPresence(t, "other", "clients [erin] count 1 connections 1", a, b)

	carol.Unsubscribe()
	if got := describe(b.presence(t, "room")); got != "clients [ann bob dave] count 3 connections 5" {
		t.Fatalf("on carol's node right after she left: %s", got)
	}
	waitPresence(t, "room", "clients [ann bob dave] count 3 connections 5", a, c)

	start := time.Now()
	c.b.Kill()
	waitPresence(t, "room", "clients [ann bob] count 2 connections 4", a, b)
	gone := time.Since(start)
	waitPresence(t, "other", "clients [] count 0 connections 0", a, b)
	t.Logf("a killed node's clients left presence %v after the kill (TTL %v)", gone.Round(time.Millisecond), ttl)
	if gone > 2*ttl+time.Second {
		t.Fatalf("a killed node's clients stayed %v, over the TTL %v (and slack)", gone, ttl)
	}

	// The live nodes refresh their entries: for two TTLs more, each still
	// sees the other's clients.
	for until := time.Now().Add(2 * ttl); time.Now().Before(until); time.Sleep(100 * time.Millisecond) {
		for _, n := range []*node{a, b} {
			if got := describe(n.presence(t, "room")); got != "clients [ann bob] count 2 connections 4" {
				t.Fatalf("node %s, %v after the kill: %s", n.b.NodeID(), time.Since(start).Round(time.Millisecond), got)
			}
		}
	}
}

// A node that stops cleanly deletes its entries: its clients leave the
// others' presence long before the TTL.
func TestPresenceCleanStop(t *testing.T) {
	const ttl = time.Minute
	srv := natstest.Start(t)
	a, b := startNode(t, srv.URL, ttl, 0), startNode(t, srv.URL, ttl, 0)
	a.join(t, "room", "ann")
	b.join(t, "room", "bob")
	waitPresence(t, "room", "clients [ann bob] count 2 connections 2", a, b)
	b.b.Close()
	waitPresence(t, "room", "clients [ann] count 1 connections 1", a)
}

// A node lists at most PresenceMaxClients client IDs per channel; the
// others count. Each node lists all of its own.
func TestPresenceBounded(t *testing.T) {
	srv := natstest.Start(t)
	a, b := startNode(t, srv.URL, 10*time.Second, 5), startNode(t, srv.URL, 10*time.Second, 5)
	var many []string
	for i := range 20 {
		id := fmt.Sprintf("c%02d", i)
		many = append(many, id)
		a.join(t, "big", id)
	}
	b.join(t, "big", "zed")
	waitPresence(t, "big", fmt.Sprintf("clients %v count 21 connections 21", append(slices.Clone(many), "zed")), a)
	deadline := time.Now().Add(wait)
	for {
		p := b.presence(t, "big")
		if p.Count == 21 && p.Connections == 21 {
			if len(p.Clients) != 6 || !slices.Contains(p.Clients, "zed") {
				t.Fatalf("node b lists %v: want zed and 5 of node a's clients", p.Clients)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node b: %s, want count 21 connections 21", describe(p))
		}
		time.Sleep(20 * time.Millisecond) // polling node a's write
	}
}

// NATS lost: Presence fails (never a silently partial answer); NATS back:
// a change made meanwhile is written and presence is whole again.
func TestPresenceNATSLost(t *testing.T) {
	const ttl = 3 * time.Second
	srv := natstest.Start(t)
	a, b := startNode(t, srv.URL, ttl, 0), startNode(t, srv.URL, ttl, 0)
	a.join(t, "room", "ann")
	b.join(t, "room", "bob")
	cid := b.join(t, "room", "cid")
	waitPresence(t, "room", "clients [ann bob cid] count 3 connections 3", a, b)
	srv.Stop()
	waitState(t, a.b, false)
	if p, err := a.h.Presence(context.Background(), "room"); err == nil {
		t.Fatalf("presence while NATS is down: %s, want an error", describe(p))
	}
	cid.Unsubscribe() // written once NATS is back
	srv.Resume()
	waitState(t, a.b, true)
	waitPresence(t, "room", "clients [ann bob] count 2 connections 2", a, b)
}
