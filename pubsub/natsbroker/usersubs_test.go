package natsbroker_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

// userEvents records what a watcher was told.
type userEvents struct {
	mu  sync.Mutex
	got []string
}

func (e *userEvents) add(user, channel string, on bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, fmt.Sprintf("%s %s %v", user, channel, on))
}

func (e *userEvents) waitFor(t *testing.T, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		e.mu.Lock()
		got := slices.Clone(e.got)
		e.mu.Unlock()
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("watcher told %q, want %q", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func watch(t *testing.T, s pubsub.UserSubscriptions) *userEvents {
	t.Helper()
	ev := &userEvents{}
	if err := s.WatchUserSubscriptions(context.Background(), ev.add); err != nil {
		t.Fatal(err)
	}
	return ev
}

// A server-side subscription made on one node reaches every node's watcher
// and copy, outlives the nodes (a node that starts later loads it) and is
// gone everywhere after an unsubscribe. User IDs and channels are any
// strings, not only what KV keys allow.
func TestUserSubscriptionsAcrossNodes(t *testing.T) {
	srv := natstest.Start(t)
	a, _ := connect(t, srv.URL)
	b, _ := connect(t, srv.URL)
	evA, evB := watch(t, a), watch(t, b)
	ctx := context.Background()
	const user = "ann@example.com/tab 1"
	for _, ch := range []string{"news", "chat:room#ann@example.com/tab_1"} {
		if err := a.SubscribeUser(ctx, user, ch); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SubscribeUser(ctx, user, "news"); err != nil { // again: no change, no event
		t.Fatal(err)
	}
	want := []string{user + " news true", user + " chat:room#ann@example.com/tab_1 true"}
	evA.waitFor(t, want...)
	evB.waitFor(t, want...)
	if got := b.UserChannels(user); !slices.Equal(got, []string{"chat:room#ann@example.com/tab_1", "news"}) {
		t.Fatalf("node b: %q", got)
	}
	if got := b.UserChannels("bob"); got != nil {
		t.Fatalf("bob: %q", got)
	}

	late, _ := connect(t, srv.URL)
	evLate := watch(t, late)
	if got := late.UserChannels(user); len(got) != 2 {
		t.Fatalf("a node started later loaded %q", got)
	}
	if err := b.UnsubscribeUser(ctx, user, "news"); err != nil {
		t.Fatal(err)
	}
	want = append(want, user+" news false")
	evA.waitFor(t, want...)
	evLate.waitFor(t, user+" news false")
	if got := a.UserChannels(user); !slices.Equal(got, []string{"chat:room#ann@example.com/tab_1"}) {
		t.Fatalf("node a after the unsubscribe: %q", got)
	}
	if err := a.SubscribeUser(ctx, user, "bad channel"); err != pubsub.ErrBadChannel {
		t.Fatalf("bad channel: %v", err)
	}
}

// Memory keeps the same contract in one process; its watcher runs before
// the call returns.
func TestUserSubscriptionsMemory(t *testing.T) {
	m := pubsub.NewMemory(pubsub.MemoryOptions{})
	ev := watch(t, m)
	ctx := context.Background()
	if err := m.SubscribeUser(ctx, "ann", "news"); err != nil {
		t.Fatal(err)
	}
	_ = m.SubscribeUser(ctx, "ann", "news")
	ev.waitFor(t, "ann news true")
	if got := m.UserChannels("ann"); !slices.Equal(got, []string{"news"}) {
		t.Fatalf("%q", got)
	}
	_ = m.UnsubscribeUser(ctx, "ann", "news")
	_ = m.UnsubscribeUser(ctx, "ann", "news")
	ev.waitFor(t, "ann news true", "ann news false")
	if got := m.UserChannels("ann"); got != nil {
		t.Fatalf("%q", got)
	}
}

// dedupContract: a publication retried with its idempotency key is stored
// once and the retry answers the first position, on any node; another key,
// or another channel with the same key, is a new publication; a key whose
// original was pushed out of history answers wantGone (0 when the broker
// cannot tell the offset any more).
func dedupContract(t *testing.T, a, b pubsub.Broker, small string, wantGone uint64) {
	t.Helper()
	ctx := context.Background()
	pub := func(br pubsub.Broker, ch, key string, size int) pubsub.StreamPosition {
		t.Helper()
		pos, err := br.Publish(ctx, ch, []byte(`1`), pubsub.PublishOptions{HistorySize: size, IdempotencyKey: key})
		if err != nil {
			t.Fatal(err)
		}
		return pos
	}
	first := pub(a, "news", "k1", 10)
	if again := pub(a, "news", "k1", 10); again != first {
		t.Fatalf("retry on the same node: %+v, want %+v", again, first)
	}
	if again := pub(b, "news", "k1", 10); again != first {
		t.Fatalf("retry on another node: %+v, want %+v", again, first)
	}
	if p := pub(b, "news", "k2", 10); p.Offset != first.Offset+1 {
		t.Fatalf("another key: %+v", p)
	}
	if p := pub(a, "other", "k1", 10); p.Offset != 1 {
		t.Fatalf("the same key on another channel: %+v", p)
	}
	if p := pub(a, "news", "", 10); p.Offset != first.Offset+2 {
		t.Fatalf("no key: %+v", p)
	}
	_, latest, err := a.History(ctx, "news", pubsub.HistoryOptions{Limit: -1})
	if err != nil || latest.Offset != first.Offset+2 {
		t.Fatalf("stored %+v %v, want 3 publications", latest, err)
	}
	pub(a, small, "old", 0)
	pub(a, small, "new", 0)
	if p := pub(b, small, "old", 0); p.Offset != wantGone {
		t.Fatalf("a retry whose original is gone from history: %+v, want offset %d", p, wantGone)
	}
	_, latest, _ = a.History(ctx, small, pubsub.HistoryOptions{})
	if latest.Offset != 2 {
		t.Fatalf("%s stored %d publications, want 2", small, latest.Offset)
	}
}

func TestIdempotentPublishNATS(t *testing.T) {
	srv := natstest.Start(t)
	a, _ := connect(t, srv.URL)
	b, _ := connect(t, srv.URL)
	dedupContract(t, a, b, "none:x", 0)
}

func TestIdempotentPublishMemory(t *testing.T) {
	m := pubsub.NewMemory(pubsub.MemoryOptions{})
	dedupContract(t, m, m, "none:x", 1) // Memory remembers the offset with the key
}
