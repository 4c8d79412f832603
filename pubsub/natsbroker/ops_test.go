package natsbroker_test

import (
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

// pushRecorder keeps a subscriber's pushes as "offset" or "offset latest".
type pushRecorder = pushLog

func newPushRecorder() *pushRecorder {
	return &pushLog{cond: make(chan struct{}), describe: func(f []byte) (string, bool) {
		var p struct {
			Offset uint64
			Latest bool
		}
		if json.Unmarshal(f, &p) != nil {
			panic("bad push " + string(f))
		}
		s := strconv.FormatUint(p.Offset, 10)
		if p.Latest {
			s += " latest"
		}
		return s, true
	}}
}

// Skip-self through NATS, where the publication comes back to the
// publishing node asynchronously: the publisher's subscription skips it,
// the same client's other subscription and another node's subscription
// with the same local origin get it. The publication after it, without
// origin, reaches everyone, so it bounds the check that the publisher got
// nothing before it. Then latest-on-subscribe on the other node, and the
// presence counts of both nodes.
func TestSkipSelfLatestAndStatsNATS(t *testing.T) {
	srv := natstest.Start(t)
	a, b := startNode(t, srv.URL, 10*time.Second, 0), startNode(t, srv.URL, 10*time.Second, 0)
	own, sameUser, remote := newPushRecorder(), newPushRecorder(), newPushRecorder()
	ctx := context.Background()
	for _, s := range []struct {
		n      *node
		r      *pushRecorder
		client string
		origin string
	}{{a, own, "ann", "1"}, {a, sameUser, "ann", "2"}, {b, remote, "ann", "1"}} {
		if _, _, err := s.n.h.Subscribe(ctx, "room", s.r, pubsub.SubscribeOptions{ClientID: s.client, Origin: s.origin}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.h.PublishWith(ctx, "room", []byte(`"mine"`), pubsub.PublishParams{Origin: "1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.h.Publish(ctx, "room", []byte(`"all"`)); err != nil {
		t.Fatal(err)
	}
	own.waitFor(t, "the publisher", "2")
	sameUser.waitFor(t, "the same user's other subscription", "1", "2")
	remote.waitFor(t, "the other node's", "1", "2")

	late := newPushRecorder()
	_, res, err := b.h.Subscribe(ctx, "room", late, pubsub.SubscribeOptions{ClientID: "bob", Latest: true})
	if err != nil || !res.Latest || res.Position.Offset != 2 {
		t.Fatalf("latest subscribe: %+v, %v", res, err)
	}
	if _, err := a.h.Publish(ctx, "room", []byte(`3`)); err != nil {
		t.Fatal(err)
	}
	late.waitFor(t, "the late subscriber", "2 latest", "3")

	// a: ann twice; b: ann and bob. Per node, summed: 3 clients, 4 connections.
	want := pubsub.PresenceStats{Count: 3, Connections: 4}
	deadline := time.Now().Add(wait)
	for _, n := range []*node{a, b} {
		for {
			st, err := n.h.PresenceStats(ctx, "room")
			if err != nil {
				t.Fatal(err)
			}
			if st == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s: stats %+v, want %+v", n.b.NodeID(), st, want)
			}
			time.Sleep(20 * time.Millisecond) // polling another node's writes, not synchronising
		}
	}
}
