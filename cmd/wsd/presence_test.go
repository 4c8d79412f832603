package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/wsdhq/wsd/client"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

// presenceOf asks c for channel's presence until it is want (another
// node's change arrives through NATS) and returns how long that took.
func presenceOf(t *testing.T, c *client.Client, channel, want string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(clusterWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		p, err := c.Presence(ctx, channel)
		cancel()
		if err != nil {
			t.Fatalf("presence of %q: %v", channel, err)
		}
		got := fmt.Sprintf("count %d connections %d", p.Count, p.Connections)
		if got == want {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence of %q: %s %v, want %s", channel, got, p.Clients, want)
		}
		time.Sleep(50 * time.Millisecond) // polling another node's state, not synchronising
	}
}

// Two wsd processes in anonymous mode: presence asked on either node
// counts the clients of both (anonymous IDs must not collide across
// nodes), and a node killed with SIGKILL leaves it within the presence TTL.
func TestClusterPresenceOnNATS(t *testing.T) {
	const ttl = 2 * time.Second
	nsrv := natstest.Start(t)
	a := startNode(t, nsrv.URL, "--nats-presence-ttl", ttl.String())
	b := startNode(t, nsrv.URL, "--nats-presence-ttl", ttl.String())
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	ca, cb := dial(t, a, newReceiver()), dial(t, b, newReceiver())
	for _, c := range []*client.Client{ca, cb} {
		if _, err := c.Subscribe(ctx, "room"); err != nil {
			t.Fatal(err)
		}
	}
	presenceOf(t, ca, "room", "count 2 connections 2")
	presenceOf(t, cb, "room", "count 2 connections 2")

	b.kill()
	took := presenceOf(t, ca, "room", "count 1 connections 1")
	t.Logf("a SIGKILLed node's client left presence within %v (TTL %v)", took.Round(time.Millisecond), ttl)
	if took > 2*ttl+time.Second {
		t.Fatalf("a SIGKILLed node's client stayed %v, TTL %v", took, ttl)
	}
}
