package pubsub

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
)

func subWith(t testing.TB, h *Hub[*frame], ch string, r *recorder, o SubscribeOptions) (*Subscription[*frame], SubscribeResult) {
	t.Helper()
	o.OnSubscribed = r.onSubscribed
	s, res, err := h.Subscribe(context.Background(), ch, r, o)
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", ch, err)
	}
	return s, res
}

// A publication made with an origin skips the subscriptions with that
// origin only: another subscription of the same client, and one with
// another origin, get it; a later publication without origin reaches all.
// A pending subscription (its frames held) skips it too.
func TestSkipSelf(t *testing.T) {
	h := newHub(t, nil, nil)
	var own, sameUser, other recorder
	subWith(t, h, "c", &own, SubscribeOptions{ClientID: "ann", Origin: "1"})
	subWith(t, h, "c", &sameUser, SubscribeOptions{ClientID: "ann", Origin: "2"})
	subWith(t, h, "c", &other, SubscribeOptions{ClientID: "bob", Origin: "11"})
	if _, err := h.PublishWith(context.Background(), "c", []byte(`"mine"`), PublishParams{Origin: "1"}); err != nil {
		t.Fatal(err)
	}
	pub(t, h, "c", "everyone")
	for name, r := range map[string]*recorder{"own": &own, "sameUser": &sameUser, "other": &other} {
		want := []uint64{1, 2}
		if name == "own" {
			want = []uint64{2}
		}
		if got := r.offsets(); !slices.Equal(got, want) {
			t.Errorf("%s got offsets %v, want %v", name, got, want)
		}
	}
	if st := h.Stats(); st.Deliveries != 5 || st.Encodes != 2 {
		t.Errorf("stats %+v: want 5 deliveries of 2 encodings", st)
	}
}

// The origin is qualified by the hub's tag: a publication whose origin
// another hub made (another node, through a cluster broker) skips nobody
// here, even when the local parts are equal.
func TestSkipSelfOtherHub(t *testing.T) {
	h := newHub(t, nil, nil)
	var r recorder
	subWith(t, h, "c", &r, SubscribeOptions{Origin: "1"})
	for _, origin := range []string{"other/1", "1", h.tag + "1", h.tag + "/"} {
		h.handle(Publication{Channel: "c", Offset: 1, Epoch: "e", Data: []byte(`1`), Origin: origin})
	}
	h.handle(Publication{Channel: "c", Offset: 1, Epoch: "e", Data: []byte(`1`), Origin: h.tag + "/1"})
	if got := len(r.offsets()); got != 4 {
		t.Fatalf("got %d frames, want the 4 of foreign origins", got)
	}
}

// Latest: the newest publication follows the reply, marked, once; then
// live ones, unmarked. An empty channel, a namespace without history and a
// subscribe with since get none.
func TestLatestOnSubscribe(t *testing.T) {
	h := newHub(t, nil, Namespaces{"": {HistorySize: 10}, "nohist": {}})
	for i := 1; i <= 3; i++ {
		pub(t, h, "c", i)
	}
	var r recorder
	_, res := subWith(t, h, "c", &r, SubscribeOptions{Latest: true})
	if !res.Latest || res.Position.Offset != 3 {
		t.Fatalf("result %+v, want latest at offset 3", res)
	}
	pub(t, h, "c", 4)
	r.mu.Lock()
	events := slices.Clone(r.events)
	first, second := string(r.frames[0].b), string(r.frames[1].b)
	r.mu.Unlock()
	if !slices.Equal(events, []string{"reply", "push", "push"}) {
		t.Fatalf("events %v", events)
	}
	want := `{"channel":"c","offset":3,"epoch":"` + res.Position.Epoch + `","data":3,"latest":true}`
	if first != want {
		t.Fatalf("latest push %s, want %s", first, want)
	}
	if strings.Contains(second, "latest") || offsetOf([]byte(second)) != 4 {
		t.Fatalf("live push %s", second)
	}

	var empty, nohist, since recorder
	if _, res := subWith(t, h, "empty", &empty, SubscribeOptions{Latest: true}); res.Latest {
		t.Error("latest on an empty channel")
	}
	pub(t, h, "nohist:x", 1)
	if _, res := subWith(t, h, "nohist:x", &nohist, SubscribeOptions{Latest: true}); res.Latest || res.Position.Offset != 1 {
		t.Errorf("no history: %+v", res)
	}
	pos := StreamPosition{Offset: 2, Epoch: res.Position.Epoch}
	if _, res := subWith(t, h, "c", &since, SubscribeOptions{Latest: true, Since: &pos}); res.Latest || !res.Recovered {
		t.Errorf("with since: %+v", res)
	}
	if got := since.offsets(); !slices.Equal(got, []uint64{3, 4}) {
		t.Errorf("with since got %v, want the recovery 3 4", got)
	}
	if len(empty.offsets())+len(nohist.offsets()) != 0 {
		t.Error("pushes where no latest exists")
	}
}

// Latest while others publish: each subscriber's first push is the
// latest at the reply's offset, and then the offsets go on one by one:
// never the latest twice, no gap.
func TestLatestWhilePublishing(t *testing.T) {
	h := newHub(t, nil, Namespaces{"": {HistorySize: 100}})
	pub(t, h, "c", 0)
	const pubs, subs = 300, 20
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= pubs; i++ {
			if _, err := h.Publish(context.Background(), "c", []byte(`1`)); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	recs := make([]*recorder, subs)
	results := make([]SubscribeResult, subs)
	for i := range recs {
		recs[i] = &recorder{}
		_, results[i] = subWith(t, h, "c", recs[i], SubscribeOptions{Latest: true})
	}
	wg.Wait()
	for i, r := range recs {
		offs := r.offsets()
		if !results[i].Latest || len(offs) == 0 || offs[0] != results[i].Position.Offset {
			t.Fatalf("subscriber %d: result %+v, offsets start %v", i, results[i], offs[:min(3, len(offs))])
		}
		for j := 1; j < len(offs); j++ {
			if offs[j] != offs[j-1]+1 {
				t.Fatalf("subscriber %d: offsets %v…%v", i, offs[j-1], offs[j])
			}
		}
		if offs[len(offs)-1] != pubs+1 {
			t.Fatalf("subscriber %d ends at %d", i, offs[len(offs)-1])
		}
		r.mu.Lock()
		n := 0
		for _, f := range r.frames {
			if strings.HasSuffix(string(f.b), latestMark) {
				n++
			}
		}
		r.mu.Unlock()
		if n != 1 {
			t.Fatalf("subscriber %d got %d latest pushes", i, n)
		}
	}
}

func TestPresenceStats(t *testing.T) {
	h := newHub(t, nil, Namespaces{"": {Presence: true}, "np": {}})
	var a, b, c recorder
	subWith(t, h, "room", &a, SubscribeOptions{ClientID: "ann"})
	subWith(t, h, "room", &b, SubscribeOptions{ClientID: "ann"})
	s, _ := subWith(t, h, "room", &c, SubscribeOptions{ClientID: "bob"})
	if st, err := h.PresenceStats(context.Background(), "room"); err != nil || st != (PresenceStats{Count: 2, Connections: 3}) {
		t.Fatalf("stats %+v, %v", st, err)
	}
	s.Unsubscribe()
	if st, _ := h.PresenceStats(context.Background(), "room"); st != (PresenceStats{Count: 1, Connections: 2}) {
		t.Fatalf("after bob left: %+v", st)
	}
	if st, _ := h.PresenceStats(context.Background(), "nobody"); st != (PresenceStats{}) {
		t.Fatalf("empty channel: %+v", st)
	}
	if _, err := h.PresenceStats(context.Background(), "np:x"); err != ErrPresenceDisabled {
		t.Fatalf("presence off: %v", err)
	}
	if _, err := h.PresenceStats(context.Background(), "bad name"); err != ErrBadChannel {
		t.Fatalf("bad channel: %v", err)
	}
}
