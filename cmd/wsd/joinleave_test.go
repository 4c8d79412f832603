package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/client"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
	"github.com/wsdhq/wsd/wsproto"
)

const jlSecret = "join-leave-test-secret"

// The namespace keys reach the hub; join_leave without presence is a clear
// error naming the namespace.
func TestJoinLeaveConfig(t *testing.T) {
	c, err := parseConfig([]string{"--config", writeConfig(t, "[namespaces.chat]\njoin_leave = true\njoin_leave_max = 500\n")}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if ns := c.namespaces["chat"]; !ns.JoinLeave || ns.JoinLeaveMax != 500 || !ns.Presence {
		t.Fatalf("chat namespace: %+v", ns)
	}
	var stderr bytes.Buffer
	code := run([]string{"--config", writeConfig(t, "[namespaces.chat]\npresence = false\njoin_leave = true\n")}, &stderr, nil)
	if code != 2 || !strings.Contains(stderr.String(), `namespace "chat": join_leave = true needs presence = true`) {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// members records a client's OnJoin and OnLeave.
type members struct {
	mu      sync.Mutex
	got     []string
	changed chan struct{}
}

func (m *members) options(token string) client.Options {
	add := func(s string) {
		m.mu.Lock()
		m.got = append(m.got, s)
		m.mu.Unlock()
		select {
		case m.changed <- struct{}{}:
		default:
		}
	}
	return client.Options{Token: token,
		OnJoin:  func(ch, c string) { add("join " + c) },
		OnLeave: func(ch, c string) { add("leave " + c) }}
}

func (m *members) waitFor(t *testing.T, want ...string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(clusterWait)
	for {
		m.mu.Lock()
		got := slices.Clone(m.got)
		m.mu.Unlock()
		if len(got) >= len(want) {
			if !slices.Equal(got, want) {
				t.Fatalf("got %q, want %q", got, want)
			}
			return time.Since(start)
		}
		select {
		case <-m.changed:
		case <-deadline:
			t.Fatalf("got %q after %v, want %q", got, clusterWait, want)
		}
	}
}

// Two wsd processes on NATS with a join_leave namespace: a client on node a
// sees the clients of node b join and leave, and those of a node killed
// with SIGKILL leave within the presence TTL.
func TestClusterJoinLeaveOnNATS(t *testing.T) {
	const ttl = 2 * time.Second
	nsrv := natstest.Start(t)
	cfg := writeConfig(t, "[namespaces.chat]\njoin_leave = true\n")
	args := []string{"--config", cfg, "--token-secret", jlSecret, "--nats-presence-ttl", ttl.String()}
	a, b := startNode(t, nsrv.URL, args...), startNode(t, nsrv.URL, args...)
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	connect := func(n *node, sub string, m *members) *client.Client {
		t.Helper()
		tok, err := wsproto.NewToken(jlSecret, sub, []string{"chat:*"}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		opts := client.Options{Token: tok}
		if m != nil {
			opts = m.options(tok)
		}
		c, err := client.Dial(ctx, "ws://"+n.addr+"/ws", opts)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		if _, err := c.Subscribe(ctx, "chat:lobby"); err != nil {
			t.Fatal(err)
		}
		return c
	}
	ann := &members{changed: make(chan struct{}, 1)}
	connect(a, "ann", ann)
	bob := connect(b, "bob", nil)
	ann.waitFor(t, "join bob")
	if err := bob.Unsubscribe(ctx, "chat:lobby"); err != nil {
		t.Fatal(err)
	}
	ann.waitFor(t, "join bob", "leave bob")
	connect(b, "cid", nil)
	ann.waitFor(t, "join bob", "leave bob", "join cid")

	b.kill()
	took := ann.waitFor(t, "join bob", "leave bob", "join cid", "leave cid")
	t.Logf("a SIGKILLed node's client left %v after the kill (TTL %v)", took.Round(time.Millisecond), ttl)
	if took > 2*ttl+time.Second {
		t.Fatalf("a SIGKILLed node's client left after %v, TTL %v", took, ttl)
	}
}
