package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
)

// pubLog records OnPublication calls as "channel#offset=data".
type pubLog struct {
	mu  sync.Mutex
	got []string
}

func (l *pubLog) options() Options {
	o := fast()
	o.OnPublication = func(ch string, off uint64, _ string, data json.RawMessage) {
		l.mu.Lock()
		l.got = append(l.got, fmt.Sprintf("%s#%d=%s", ch, off, data))
		l.mu.Unlock()
	}
	return o
}

// waitFor waits until last was recorded, then checks everything recorded.
func (l *pubLog) waitFor(t *testing.T, who, last string, want ...string) {
	t.Helper()
	waitFor(t, who+" gets "+last, func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return slices.Contains(l.got, last)
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	if !slices.Equal(l.got, want) {
		t.Fatalf("%s got %q, want %q", who, l.got, want)
	}
}

func dialReal(t *testing.T, url string, o Options) *Client {
	t.Helper()
	c, err := Dial(ctxT(t), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

// Latest against a real server: the newest publication reaches
// OnPublication once although its offset is the answer's (the position
// the client dedupes against), then live ones follow.
func TestRealServerSubscribeLatest(t *testing.T) {
	n := startNodeNS(t, server.Options{}, pubsub.Namespaces{"": {HistorySize: 10}})
	pubr := dialReal(t, n.url(), fast())
	for i := 1; i <= 3; i++ {
		if _, err := pubr.Publish(ctxT(t), "px", i); err != nil {
			t.Fatal(err)
		}
	}
	var log pubLog
	c := dialReal(t, n.url(), log.options())
	res, err := c.SubscribeWith(ctxT(t), "px", SubscribeOptions{Latest: true})
	if err != nil || res.Offset != 3 {
		t.Fatalf("subscribe: %+v, %v", res, err)
	}
	if _, err := pubr.Publish(ctxT(t), "px", 4); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, "the subscriber", "px#4=4", "px#3=3", "px#4=4")

	// An empty channel: nothing until the first publication.
	if _, err := c.SubscribeWith(ctxT(t), "empty", SubscribeOptions{Latest: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := pubr.Publish(ctxT(t), "empty", "x"); err != nil {
		t.Fatal(err)
	}
	log.waitFor(t, "the subscriber", `empty#1="x"`, "px#3=3", "px#4=4", `empty#1="x"`)
}

func TestRealServerHistory(t *testing.T) {
	n := startNodeNS(t, server.Options{}, pubsub.Namespaces{"": {HistorySize: 10}})
	c := dialReal(t, n.url(), fast())
	var last PublishResult
	for i := 1; i <= 5; i++ {
		var err error
		if last, err = c.Publish(ctxT(t), "h", i); err != nil {
			t.Fatal(err)
		}
	}
	offsets := func(r HistoryResult) string {
		s := ""
		for _, p := range r.Publications {
			s += fmt.Sprintf("%d=%s ", p.Offset, p.Data)
		}
		return fmt.Sprintf("%s@%d/%v", s, r.Offset, r.Epoch == last.Epoch)
	}
	for _, tc := range []struct {
		o    HistoryOptions
		want string
	}{
		{HistoryOptions{Limit: 2}, "4=4 5=5 @5/true"},
		{HistoryOptions{}, "1=1 2=2 3=3 4=4 5=5 @5/true"},
		{HistoryOptions{Since: &Position{Offset: 2, Epoch: last.Epoch}, Limit: 2}, "3=3 4=4 @5/true"},
		{HistoryOptions{Since: &Position{Offset: 2, Epoch: "old"}}, "@5/true"},
	} {
		r, err := c.History(ctxT(t), "h", tc.o)
		if err != nil {
			t.Fatal(err)
		}
		if got := offsets(r); got != tc.want {
			t.Errorf("History(%+v) = %s, want %s", tc.o, got, tc.want)
		}
	}
	_, err := c.History(ctxT(t), "h", HistoryOptions{Limit: 1001})
	var se *ServerError
	if !errors.As(err, &se) || se.Code != "bad_request" {
		t.Fatalf("limit 1001: %v", err)
	}
}

// skip_self: the publishing client does not get its publication; another
// client does; the next plain publish reaches both. Then presence_stats.
func TestRealServerSkipSelfAndPresenceStats(t *testing.T) {
	n := startNodeNS(t, server.Options{}, pubsub.Namespaces{"": {HistorySize: 10, Presence: true}})
	var la, lb pubLog
	a, b := dialReal(t, n.url(), la.options()), dialReal(t, n.url(), lb.options())
	for _, c := range []*Client{a, b} {
		if _, err := c.Subscribe(ctxT(t), "room"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.PublishWith(ctxT(t), "room", "mine", PublishOptions{SkipSelf: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Publish(ctxT(t), "room", "all"); err != nil {
		t.Fatal(err)
	}
	la.waitFor(t, "the publisher", `room#2="all"`, `room#2="all"`)
	lb.waitFor(t, "the other", `room#2="all"`, `room#1="mine"`, `room#2="all"`)

	st, err := b.PresenceStats(ctxT(t), "room")
	if err != nil || st != (PresenceStatsResult{Channel: "room", Count: 2, Connections: 2}) {
		t.Fatalf("presence stats %+v, %v", st, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.PresenceStats(ctx, "room"); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}
