package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/client"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
	"github.com/wsdhq/wsd/wsproto"
)

const ssSecret = "server-subs-secret"

// apiPost posts body to n's HTTP API and fails the test unless it is 200.
func (n *node) apiPost(t *testing.T, path, body string) {
	t.Helper()
	req, err := http.NewRequest("POST", "http://"+n.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "apikey K")
	resp, err := (&http.Client{Timeout: clusterWait}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %s", path, body, resp.Status)
	}
}

// Server-side subscriptions across a cluster: made through node A's API,
// they reach alice's connection on node B; when B goes away the client
// moves to A, is subscribed there again and recovers what it missed; an
// unsubscribe through B's API ends it on A.
func TestClusterServerSubscriptions(t *testing.T) {
	nsrv := natstest.Start(t)
	args := []string{"--api-key", "K", "--token-secret", ssSecret, "--rate-limit", "-1"}
	a, b := startNode(t, nsrv.URL, args...), startNode(t, nsrv.URL, args...)

	var mu sync.Mutex
	var subEvents []string
	r := newReceiver()
	o := r.options()
	o.MinBackoff, o.MaxBackoff = 10*time.Millisecond, 100*time.Millisecond
	o.Endpoints = []string{"ws://" + a.addr + "/ws"}
	o.TokenFunc = func(context.Context) (string, error) {
		return wsproto.NewToken(ssSecret, "alice", []string{"news"}, time.Hour)
	}
	o.OnServerSubscription = func(ch string, on bool) {
		mu.Lock()
		subEvents = append(subEvents, fmt.Sprintf("%s %v", ch, on))
		mu.Unlock()
		r.poke()
	}
	events := func() []string { mu.Lock(); defer mu.Unlock(); return slices.Clone(subEvents) }
	waitEvents := func(n int) {
		t.Helper()
		deadline := time.Now().Add(clusterWait)
		for len(events()) < n {
			if time.Now().After(deadline) {
				t.Fatalf("server subscription events %q, want %d", events(), n)
			}
			time.Sleep(20 * time.Millisecond) // polling a log, bounded
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+b.addr+"/ws", o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Publish(ctx, "news", 0); err != nil { // a round trip: the connection is open on B
		t.Fatal(err)
	}

	a.apiPost(t, "/api/subscribe", `{"user":"alice","channel":"alerts"}`)
	waitEvents(1)
	publish := func(n *node, from, to int) {
		for i := from; i <= to; i++ {
			n.apiPost(t, "/api/publish", fmt.Sprintf(`{"channel":"alerts","data":%d}`, i))
		}
	}
	publish(a, 1, 3)
	r.waitOffsets(t, []uint64{1, 2, 3})

	b.kill()
	publish(a, 4, 6)
	r.waitOffsets(t, []uint64{1, 2, 3, 4, 5, 6})
	r.mu.Lock()
	rec := slices.Clone(r.recover)
	r.mu.Unlock()
	if !slices.Equal(rec, []bool{true}) {
		t.Fatalf("OnRecover %v, want one recovered", rec)
	}

	b.start()
	b.apiPost(t, "/api/unsubscribe", `{"user":"alice","channel":"alerts"}`)
	waitEvents(2)
	if got := events(); !slices.Equal(got, []string{"alerts true", "alerts false"}) {
		t.Fatalf("events %q", got)
	}
}

// POST /api/disconnect on one node closes the user's connections on every
// node (4001 on each), and its answer counts the node's own.
func TestClusterDisconnectReachesEveryNode(t *testing.T) {
	nsrv := natstest.Start(t)
	args := []string{"--api-key", "K", "--token-secret", ssSecret, "--rate-limit", "-1"}
	a, b := startNode(t, nsrv.URL, args...), startNode(t, nsrv.URL, args...)
	closes := make(chan string, 4)
	dialAs := func(n *node, user string) *client.Client {
		o := client.Options{MinBackoff: time.Second, MaxBackoff: 2 * time.Second}
		o.TokenFunc = func(context.Context) (string, error) {
			return wsproto.NewToken(ssSecret, user, []string{"*"}, time.Hour)
		}
		o.OnState = func(s client.State, err error) {
			var ce *client.CloseError
			if s == client.StateDisconnected && errors.As(err, &ce) {
				closes <- fmt.Sprintf("%s@%s %d", user, n.addr, ce.Code)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		defer cancel()
		c, err := client.Dial(ctx, "ws://"+n.addr+"/ws", o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		if _, err := c.Publish(ctx, "x", 1); err != nil { // a round trip: open
			t.Fatal(err)
		}
		return c
	}
	dialAs(a, "alice")
	dialAs(b, "alice")
	bob := dialAs(b, "bob")
	req, _ := http.NewRequest("POST", "http://"+a.addr+"/api/disconnect", strings.NewReader(`{"user":"alice"}`))
	req.Header.Set("Authorization", "apikey K")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(body)) != `{"disconnected":1}` {
		t.Fatalf("answer %s", body)
	}
	got := map[string]bool{}
	for range 2 {
		select {
		case c := <-closes:
			got[c] = true
		case <-time.After(clusterWait):
			t.Fatalf("closes %v, want alice's two", got)
		}
	}
	if !got["alice@"+a.addr+" 4001"] || !got["alice@"+b.addr+" 4001"] {
		t.Fatalf("closes %v", got)
	}
	// Bob, on the node that got the command from the other, is untouched:
	// a round trip on his first connection.
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	if _, err := bob.Publish(ctx, "x", 2); err != nil || bob.Reconnects() != 0 {
		t.Fatalf("bob: publish %v, %d reconnects", err, bob.Reconnects())
	}
	select {
	case c := <-closes:
		t.Fatalf("another close: %s", c)
	default:
	}
}
