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
