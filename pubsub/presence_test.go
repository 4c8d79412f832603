package pubsub

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// fakeStore is a PresenceStore with fixed remote parts that records the
// channels reported changed.
type fakeStore struct {
	*Memory
	mu      sync.Mutex
	src     func(string, int) NodePresence
	changed []string
	remote  []NodePresence
	err     error
}

func (f *fakeStore) SetPresenceSource(src func(string, int) NodePresence) { f.src = src }

func (f *fakeStore) PresenceChanged(channel string) {
	f.mu.Lock()
	f.changed = append(f.changed, channel)
	f.mu.Unlock()
}

func (f *fakeStore) RemotePresence(context.Context, string) ([]NodePresence, error) {
	return f.remote, f.err
}

// A hub on a PresenceStore reports every change of a tracked channel,
// gives the store a bounded view of its own presence, and merges the
// other nodes' parts into Presence.
func TestPresenceStore(t *testing.T) {
	st := &fakeStore{Memory: NewMemory(MemoryOptions{})}
	h, err := NewHub[*frame](st, HubOptions[*frame]{Encode: func(b []byte) *frame { return &frame{b} },
		Namespaces: Namespaces{"": {}, "chat": {Presence: true}}})
	if err != nil {
		t.Fatal(err)
	}
	if st.src == nil {
		t.Fatal("NewHub did not register the presence source")
	}
	var subs []*Subscription[*frame]
	for _, c := range []string{"ann", "bob", "bob", "cid"} {
		s, _, err := h.Subscribe(context.Background(), "chat:room", &recorder{}, SubscribeOptions{ClientID: c})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, s)
	}
	if _, _, err := h.Subscribe(context.Background(), "news", &recorder{}, SubscribeOptions{ClientID: "x"}); err != nil {
		t.Fatal(err)
	}
	subs[0].Unsubscribe()
	if want := slices.Repeat([]string{"chat:room"}, 5); !slices.Equal(st.changed, want) {
		t.Fatalf("changes reported %v, want %v (untracked channels not reported)", st.changed, want)
	}
	if np := st.src("chat:room", 1); np.Count != 2 || np.Connections != 3 || len(np.Clients) != 1 {
		t.Fatalf("source with at most 1 client: %+v", np)
	}
	if np := st.src("chat:none", 10); np.Count != 0 || np.Connections != 0 || np.Clients == nil {
		t.Fatalf("source of an empty channel: %+v", np)
	}

	// bob is on another node too; dan's node lists 1 of its 3 clients.
	st.remote = []NodePresence{
		{Node: "n2", Clients: []string{"bob", "eve"}, Count: 2, Connections: 4},
		{Node: "n3", Clients: []string{"dan"}, Count: 3, Connections: 3},
	}
	p, err := h.Presence(context.Background(), "chat:room")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.Clients) != "[bob cid dan eve]" || p.Count != 6 || p.Connections != 10 {
		t.Fatalf("merged presence %+v, want clients [bob cid dan eve], count 4+2 unlisted, connections 3+4+3", p)
	}
	st.err = errors.New("store down")
	if _, err := h.Presence(context.Background(), "chat:room"); !errors.Is(err, st.err) {
		t.Fatalf("presence with the store failing: %v, want its error (never a partial answer)", err)
	}
	if _, err := h.Presence(context.Background(), "news"); err != ErrPresenceDisabled {
		t.Fatalf("untracked namespace: %v", err)
	}
}
