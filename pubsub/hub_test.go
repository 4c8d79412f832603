package pubsub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// frame stands in for *server.Prepared.
type frame struct{ b []byte }

type push struct {
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	Data    json.RawMessage `json:"data"`
}

// recorder is a Subscriber that keeps every frame and the events' order.
type recorder struct {
	mu     sync.Mutex
	frames []*frame
	events []string // "reply" or "push"
}

func (r *recorder) Deliver(f *frame) {
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.events = append(r.events, "push")
	r.mu.Unlock()
}

func (r *recorder) onSubscribed(SubscribeResult) {
	r.mu.Lock()
	r.events = append(r.events, "reply")
	r.mu.Unlock()
}

func (r *recorder) pushes(t testing.TB) []push {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]push, len(r.frames))
	for i, f := range r.frames {
		if err := json.Unmarshal(f.b, &out[i]); err != nil {
			t.Fatalf("push %d %q: %v", i, f.b, err)
		}
	}
	return out
}

// offsets reads each push's offset (cheaper than decoding them all).
func (r *recorder) offsets() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]uint64, len(r.frames))
	for i, f := range r.frames {
		out[i] = offsetOf(f.b)
	}
	return out
}

func offsetOf(b []byte) uint64 {
	i := bytes.Index(b, []byte(`"offset":`)) + len(`"offset":`)
	var n uint64
	for ; b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + uint64(b[i]-'0')
	}
	return n
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func newHub(t testing.TB, m *Memory, ns Namespaces) *Hub[*frame] {
	t.Helper()
	if m == nil {
		m = NewMemory(MemoryOptions{})
	}
	if ns == nil {
		ns = Namespaces{"": DefaultNamespaceOptions()}
	}
	h, err := NewHub(m, HubOptions[*frame]{Encode: func(b []byte) *frame { return &frame{b} }, Namespaces: ns})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func pub(t testing.TB, h *Hub[*frame], ch string, v any) StreamPosition {
	t.Helper()
	b, _ := json.Marshal(v)
	pos, err := h.Publish(context.Background(), ch, b)
	if err != nil {
		t.Fatalf("Publish(%s): %v", ch, err)
	}
	return pos
}

func sub(t testing.TB, h *Hub[*frame], ch string, r *recorder, since *StreamPosition) (*Subscription[*frame], SubscribeResult) {
	t.Helper()
	s, res, err := h.Subscribe(context.Background(), ch, r, SubscribeOptions{ClientID: fmt.Sprintf("%p", r), Since: since, OnSubscribed: r.onSubscribed})
	if err != nil {
		t.Fatalf("Subscribe(%s): %v", ch, err)
	}
	return s, res
}

func TestOffsetsAndOrder(t *testing.T) {
	h := newHub(t, nil, nil)
	r := &recorder{}
	_, res := sub(t, h, "news", r, nil)
	if res.Position.Offset != 0 || res.Position.Epoch == "" || res.Recovered {
		t.Fatalf("fresh channel: %+v", res)
	}
	for i := 1; i <= 10; i++ {
		pos := pub(t, h, "news", map[string]int{"n": i})
		if pos.Offset != uint64(i) || pos.Epoch != res.Position.Epoch {
			t.Fatalf("publish %d: %+v", i, pos)
		}
	}
	ps := r.pushes(t)
	if len(ps) != 10 {
		t.Fatalf("got %d pushes", len(ps))
	}
	for i, p := range ps {
		if p.Channel != "news" || p.Offset != uint64(i+1) || p.Epoch != res.Position.Epoch || string(p.Data) != fmt.Sprintf(`{"n":%d}`, i+1) {
			t.Fatalf("push %d: %+v", i, p)
		}
	}
	// Other channels have their own offsets and epochs.
	pos := pub(t, h, "other", 1)
	if pos.Offset != 1 || pos.Epoch == res.Position.Epoch {
		t.Fatalf("other channel: %+v", pos)
	}
	if got := string(r.frames[0].b); got != `{"channel":"news","offset":1,"epoch":"`+res.Position.Epoch+`","data":{"n":1}}` {
		t.Fatalf("push bytes %s", got)
	}
}

func TestFanOutSharesOneFrame(t *testing.T) {
	h := newHub(t, nil, nil)
	rs := make([]*recorder, 200)
	for i := range rs {
		rs[i] = &recorder{}
		sub(t, h, "ticker", rs[i], nil)
	}
	before := h.Stats().Encodes
	pub(t, h, "ticker", "tick")
	if n := h.Stats().Encodes - before; n != 1 {
		t.Fatalf("encoded %d times for one publication", n)
	}
	first := rs[0].frames[0]
	for i, r := range rs {
		if len(r.frames) != 1 {
			t.Fatalf("subscriber %d got %d frames", i, len(r.frames))
		}
		if r.frames[0] != first || &r.frames[0].b[0] != &first.b[0] {
			t.Fatalf("subscriber %d got a different frame (pointer or backing array)", i)
		}
	}
	if st := h.Stats(); st.Deliveries != 200 || st.Fanouts != 1 || st.Subscriptions != 200 || st.Channels != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestEpochs(t *testing.T) {
	// A restart is a new broker: every channel gets a new epoch.
	a := newHub(t, nil, nil)
	b := newHub(t, nil, nil)
	pa, pb := pub(t, a, "news", 1), pub(t, b, "news", 1)
	if pa.Epoch == pb.Epoch || pa.Offset != 1 || pb.Offset != 1 {
		t.Fatalf("two processes: %+v %+v", pa, pb)
	}
	// Recovery across the restart fails honestly.
	r := &recorder{}
	_, res := sub(t, b, "news", r, &pa)
	if res.Recovered || len(r.frames) != 0 || res.Position != pb {
		t.Fatalf("after restart: %+v frames=%d", res, len(r.frames))
	}

	// A stream unused for StreamTTL is forgotten: new epoch, offsets restart.
	clk := newClock()
	m := NewMemory(MemoryOptions{Now: clk.Now, StreamTTL: time.Hour})
	h := newHub(t, m, nil)
	p1 := pub(t, h, "room", 1)
	pub(t, h, "room", 2)
	clk.Advance(30 * time.Minute)
	if p := pub(t, h, "room", 3); p.Epoch != p1.Epoch || p.Offset != 3 {
		t.Fatalf("within TTL: %+v", p)
	}
	clk.Advance(2 * time.Hour)
	pub(t, h, "other", 1) // triggers the sweep
	if st := m.Stats(); st.Streams != 1 || st.HistoryEntries != 1 {
		t.Fatalf("after sweep: %+v", st)
	}
	p := pub(t, h, "room", 4)
	if p.Epoch == p1.Epoch || p.Offset != 1 {
		t.Fatalf("after expiry: %+v (old epoch %s)", p, p1.Epoch)
	}
	// A subscribed stream is never forgotten.
	r2 := &recorder{}
	s, res2 := sub(t, h, "room", r2, nil)
	clk.Advance(48 * time.Hour)
	pub(t, h, "other", 2)
	if q := pub(t, h, "room", 5); q.Epoch != res2.Position.Epoch || q.Offset != 2 {
		t.Fatalf("subscribed stream changed: %+v vs %+v", q, res2.Position)
	}
	s.Unsubscribe()
}

func TestHistorySizeEviction(t *testing.T) {
	h := newHub(t, nil, Namespaces{"": {HistorySize: 5}})
	var last StreamPosition
	for i := 1; i <= 10; i++ {
		last = pub(t, h, "news", i)
	}
	cases := []struct {
		since     StreamPosition
		recovered bool
		offsets   []uint64
	}{
		{StreamPosition{10, last.Epoch}, true, nil},
		{StreamPosition{7, last.Epoch}, true, []uint64{8, 9, 10}},
		{StreamPosition{5, last.Epoch}, true, []uint64{6, 7, 8, 9, 10}},
		{StreamPosition{4, last.Epoch}, false, nil}, // 5 was evicted
		{StreamPosition{0, last.Epoch}, false, nil},
		{StreamPosition{7, "other"}, false, nil},
		{StreamPosition{11, last.Epoch}, false, nil}, // from the future
	}
	for _, c := range cases {
		r := &recorder{}
		s, res := sub(t, h, "news", r, &c.since)
		if res.Recovered != c.recovered || res.Position != last || res.Replayed != len(c.offsets) {
			t.Errorf("since %+v: %+v", c.since, res)
		}
		ps := r.pushes(t)
		if len(ps) != len(c.offsets) {
			t.Errorf("since %+v: %d pushes, want %v", c.since, len(ps), c.offsets)
			continue
		}
		for i, p := range ps {
			if p.Offset != c.offsets[i] || string(p.Data) != fmt.Sprint(c.offsets[i]) {
				t.Errorf("since %+v: push %d = %+v", c.since, i, p)
			}
		}
		s.Unsubscribe()
	}
	if st := h.Broker().(*Memory).Stats(); st.HistoryEntries != 5 || st.HistoryBytes != 5+1 {
		t.Fatalf("memory stats %+v", st)
	}
}

func TestHistoryTTL(t *testing.T) {
	clk := newClock()
	h := newHub(t, NewMemory(MemoryOptions{Now: clk.Now}), Namespaces{"": {HistorySize: 100, HistoryTTL: time.Minute}})
	for i := 1; i <= 3; i++ {
		pub(t, h, "news", i)
	}
	clk.Advance(30 * time.Second)
	pub(t, h, "news", 4)
	last := pub(t, h, "news", 5)
	clk.Advance(40 * time.Second) // 1..3 are 70 s old, 4..5 are 40 s old

	r := &recorder{}
	_, res := sub(t, h, "news", r, &StreamPosition{3, last.Epoch})
	if !res.Recovered || len(r.pushes(t)) != 2 || r.pushes(t)[0].Offset != 4 {
		t.Fatalf("since 3: %+v %+v", res, r.pushes(t))
	}
	r2 := &recorder{}
	_, res = sub(t, h, "news", r2, &StreamPosition{2, last.Epoch})
	if res.Recovered || len(r2.frames) != 0 {
		t.Fatalf("since 2 (3 expired): %+v", res)
	}
	pubs, pos, err := h.History(context.Background(), "news", -1)
	if err != nil || len(pubs) != 2 || pos != last {
		t.Fatalf("History: %v %+v %v", len(pubs), pos, err)
	}
	clk.Advance(time.Minute)
	pubs, _, _ = h.History(context.Background(), "news", -1)
	if len(pubs) != 0 {
		t.Fatalf("all expired, got %d", len(pubs))
	}
	if st := h.Broker().(*Memory).Stats(); st.HistoryEntries != 0 || st.HistoryBytes != 0 {
		t.Fatalf("memory stats %+v", st)
	}
	// Offsets and epoch survive the expiry of every entry.
	if p := pub(t, h, "news", 6); p.Offset != 6 || p.Epoch != last.Epoch {
		t.Fatalf("after expiry: %+v", p)
	}
}

func TestHistoryLimit(t *testing.T) {
	h := newHub(t, nil, nil)
	for i := 1; i <= 10; i++ {
		pub(t, h, "c", i)
	}
	pubs, pos, _ := h.History(context.Background(), "c", 3)
	if len(pubs) != 3 || pubs[0].Offset != 8 || pubs[2].Offset != 10 || pos.Offset != 10 {
		t.Fatalf("newest 3: %+v", pubs)
	}
	pubs, _, _ = h.Broker().History(context.Background(), "c", HistoryOptions{Since: &pos, Limit: -1})
	if len(pubs) != 0 {
		t.Fatal("since latest should be empty")
	}
	since := StreamPosition{2, pos.Epoch}
	pubs, _, _ = h.Broker().History(context.Background(), "c", HistoryOptions{Since: &since, Limit: 2})
	if len(pubs) != 2 || pubs[0].Offset != 3 || pubs[1].Offset != 4 {
		t.Fatalf("since 2 limit 2: %+v", pubs)
	}
}

func TestReplyBeforePushes(t *testing.T) {
	h := newHub(t, nil, Namespaces{"": {HistorySize: 1000}})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ctx.Err() == nil; i++ {
			_, _ = h.Publish(ctx, "busy", []byte(`1`))
		}
	}()
	defer func() { cancel(); wg.Wait() }()
	for i := 0; i < 200; i++ {
		r := &recorder{}
		s, _ := sub(t, h, "busy", r, nil)
		r.mu.Lock()
		if r.events[0] != "reply" {
			t.Fatalf("events %v", r.events)
		}
		r.mu.Unlock()
		s.Unsubscribe()
	}
}

// TestRecoveryExactlyOnceConcurrent: subscribers leave and come back with
// Since while many goroutines publish; in the end each has seen every
// offset from its first subscription on, once, in order.
func TestRecoveryExactlyOnceConcurrent(t *testing.T) {
	const publishers, perPublisher, subscribers = 8, 500, 16
	h := newHub(t, nil, Namespaces{"": {HistorySize: publishers * perPublisher}})
	start := pub(t, h, "c", 0)

	var pubWG, subWG sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, subscribers)
	for range publishers {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for i := range perPublisher {
				if _, err := h.Publish(context.Background(), "c", []byte(fmt.Sprint(i))); err != nil {
					panic(err)
				}
			}
		}()
	}
	recs := make([]*recorder, subscribers)
	for k := range subscribers {
		recs[k] = &recorder{}
		subWG.Add(1)
		go func(r *recorder) {
			defer subWG.Done()
			since := start
			for cycle := 0; ; cycle++ {
				s, res, err := h.Subscribe(context.Background(), "c", r, SubscribeOptions{Since: &since})
				if err != nil || !res.Recovered {
					errs <- fmt.Errorf("cycle %d: recovered=%v err=%v", cycle, res.Recovered, err)
					return
				}
				time.Sleep(time.Duration(cycle%3) * time.Millisecond)
				s.Unsubscribe()
				r.mu.Lock()
				if n := len(r.frames); n > 0 {
					since.Offset = offsetOf(r.frames[n-1].b)
				}
				r.mu.Unlock()
				select {
				case <-stop:
					// One last time, after the publishers: catch up.
					s, res, err := h.Subscribe(context.Background(), "c", r, SubscribeOptions{Since: &since})
					if err != nil || !res.Recovered {
						errs <- fmt.Errorf("final: recovered=%v err=%v", res.Recovered, err)
						return
					}
					s.Unsubscribe()
					return
				default:
				}
			}
		}(recs[k])
	}
	pubWG.Wait()
	close(stop)
	subWG.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := uint64(publishers * perPublisher)
	for k, r := range recs {
		offs := r.offsets()
		if uint64(len(offs)) != total {
			t.Fatalf("subscriber %d: %d pushes, want %d", k, len(offs), total)
		}
		for i, o := range offs {
			if o != start.Offset+uint64(i)+1 {
				t.Fatalf("subscriber %d: push %d has offset %d, want %d", k, i, o, start.Offset+uint64(i)+1)
			}
		}
	}
	if st := h.Stats(); st.Subscriptions != 0 || st.Channels != 0 || st.NotRecovered != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLiveSubscribersUnderConcurrentPublish: subscribers joining with and
// without Since while publishing goes on never see a gap or a duplicate.
func TestJoinWhilePublishing(t *testing.T) {
	h := newHub(t, nil, Namespaces{"": {HistorySize: 10000}})
	start := pub(t, h, "c", 0)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				_, _ = h.Publish(context.Background(), "c", []byte(`0`))
				if i%20 == 0 {
					time.Sleep(100 * time.Microsecond) // let subscribers join in between
				}
			}
		}()
	}
	type joined struct {
		r   *recorder
		res SubscribeResult
		s   *Subscription[*frame]
	}
	var js []joined
	for i := range 50 {
		r := &recorder{}
		time.Sleep(time.Duration(i%3) * 200 * time.Microsecond)
		var since *StreamPosition
		if i%2 == 0 {
			since = &start
		}
		s, res := sub(t, h, "c", r, since)
		js = append(js, joined{r, res, s})
	}
	wg.Wait()
	for i, j := range js {
		from := j.res.Position.Offset
		if j.res.Recovered {
			from = start.Offset
		}
		offs := j.r.offsets()
		if uint64(len(offs)) != 4001-from {
			t.Fatalf("subscriber %d (from %d, %+v): %d pushes", i, from, j.res, len(offs))
		}
		for k, o := range offs {
			if o != from+uint64(k)+1 {
				t.Fatalf("subscriber %d: push %d offset %d", i, k, o)
			}
		}
		j.s.Unsubscribe()
	}
}

func TestPresence(t *testing.T) {
	h := newHub(t, nil, Namespaces{"": {}, "chat": {Presence: true}})
	mk := func(ch, client string) *Subscription[*frame] {
		s, _, err := h.Subscribe(context.Background(), ch, &recorder{}, SubscribeOptions{ClientID: client})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a1, a2, b := mk("chat:room", "alice"), mk("chat:room", "alice"), mk("chat:room", "bob")
	mk("chat:other", "carol")
	p, err := h.Presence(context.Background(), "chat:room")
	if err != nil || p.Count != 2 || p.Connections != 3 || fmt.Sprint(p.Clients) != "[alice bob]" {
		t.Fatalf("presence %+v %v", p, err)
	}
	a1.Unsubscribe()
	a1.Unsubscribe() // idempotent
	p, _ = h.Presence(context.Background(), "chat:room")
	if p.Count != 2 || p.Connections != 2 {
		t.Fatalf("after one alice left: %+v", p)
	}
	a2.Unsubscribe()
	b.Unsubscribe()
	p, _ = h.Presence(context.Background(), "chat:room")
	if p.Count != 0 || p.Connections != 0 || p.Clients == nil {
		t.Fatalf("empty room: %+v", p)
	}
	if _, err := h.Presence(context.Background(), "news"); err != ErrPresenceDisabled {
		t.Fatalf("presence off: %v", err)
	}
	if got := h.Channels(); len(got) != 1 || got[0] != (ChannelInfo{"chat:other", 1}) {
		t.Fatalf("channels %+v", got)
	}
}

func TestNamespaces(t *testing.T) {
	ns := Namespaces{"": {HistorySize: 10}, "live": {HistorySize: 0}}
	h := newHub(t, nil, ns)
	r := &recorder{}
	s, res := sub(t, h, "live:scores", r, nil)
	s.Unsubscribe()
	pub(t, h, "live:scores", 1) // missed, and no history
	_, res = sub(t, h, "live:scores", &recorder{}, &res.Position)
	if res.Recovered {
		t.Fatal("recovered without history")
	}
	if o, err := h.Namespace("unknown:x"); err != nil || o.HistorySize != 10 {
		t.Fatalf("lenient unknown namespace: %+v %v", o, err)
	}
	strict, _ := NewHub(NewMemory(MemoryOptions{}), HubOptions[*frame]{Encode: func(b []byte) *frame { return &frame{b} }, Namespaces: ns, StrictNamespaces: true})
	if _, err := strict.Publish(context.Background(), "unknown:x", []byte(`1`)); err != ErrUnknownNamespace {
		t.Fatalf("strict: %v", err)
	}
	for _, bad := range []string{"", "a b", `a"b`, "a*", "chat:*", ":x", "ünï", string(make([]byte, 256))} {
		if _, err := h.Publish(context.Background(), bad, []byte(`1`)); err != ErrBadChannel {
			t.Errorf("channel %q: %v", bad, err)
		}
	}
	if _, err := h.Publish(context.Background(), "ok", []byte(`{bad`)); err != ErrBadData {
		t.Fatalf("bad JSON: %v", err)
	}
	if err := (Namespaces{"a b": {}}).Validate(); err == nil {
		t.Fatal("bad namespace name accepted")
	}
	if err := (Namespaces{"x": {HistorySize: -1}}).Validate(); err == nil {
		t.Fatal("negative history accepted")
	}
	var p PublishPolicy
	if err := p.UnmarshalText([]byte("subscribers")); err != nil || p != PublishSubscribers || p.String() != "subscribers" {
		t.Fatal(p, err)
	}
	if err := p.UnmarshalText([]byte("some")); err == nil {
		t.Fatal("bad policy accepted")
	}
}

func TestUnsubscribeCleansUp(t *testing.T) {
	m := NewMemory(MemoryOptions{})
	h := newHub(t, m, nil)
	r := &recorder{}
	s, _ := sub(t, h, "c", r, nil)
	pub(t, h, "c", 1)
	s.Unsubscribe()
	pub(t, h, "c", 2)
	if len(r.frames) != 1 {
		t.Fatalf("delivered after Unsubscribe: %d", len(r.frames))
	}
	if len(h.Channels()) != 0 || h.Subscribers("c") != 0 {
		t.Fatal("channel kept")
	}
	m.mu.RLock()
	subscribed := m.streams["c"].subscribed
	m.mu.RUnlock()
	if subscribed {
		t.Fatal("broker still subscribed")
	}
}

func TestAppendJSONString(t *testing.T) {
	for in, want := range map[string]string{
		"plain":       `"plain"`,
		"q\"b\\":      `"q\"b\\"`,
		"nl\n\t\x01":  `"nl\n\t\u0001"`,
		"héllo":       `"héllo"`,
		"bad\xffutf8": `"bad\ufffdutf8"`,
	} {
		got := string(AppendJSONString(nil, in))
		if got != want {
			t.Errorf("%q: %s, want %s", in, got, want)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("%q: %v", in, err)
		}
	}
}

// TestRaces runs everything at once on a few channels for -race.
func TestRaces(t *testing.T) {
	h := newHub(t, nil, Namespaces{"": {HistorySize: 50, Presence: true}})
	chans := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &recorder{}
			var since *StreamPosition
			for i := range 300 {
				ch := chans[(g+i)%len(chans)]
				switch i % 5 {
				case 0, 1:
					_, _ = h.Publish(context.Background(), ch, []byte(`"x"`))
				case 2:
					s, res, err := h.Subscribe(context.Background(), ch, r, SubscribeOptions{ClientID: fmt.Sprint(g), Since: since})
					if err == nil {
						since = &res.Position
						s.Unsubscribe()
					}
				case 3:
					_, _ = h.Presence(context.Background(), ch)
					_ = h.Channels()
				case 4:
					_ = h.Stats()
					_ = h.Broker().(*Memory).Stats()
				}
			}
		}()
	}
	wg.Wait()
	if st := h.Stats(); st.Subscriptions != 0 || st.Channels != 0 {
		t.Fatalf("leftovers: %+v", st)
	}
}

// racyBroker publishes on the channel from inside History, before and
// after reading it, to force the two overlap cases of Subscribe: a live
// frame already covered by the replay (dropped) and one after it (kept).
type racyBroker struct {
	*Memory
	before, after int
}

func (b *racyBroker) History(ctx context.Context, ch string, o HistoryOptions) ([]Publication, StreamPosition, error) {
	for range b.before {
		_, _ = b.Memory.Publish(ctx, ch, []byte(`"before"`), PublishOptions{HistorySize: 100})
	}
	pubs, pos, err := b.Memory.History(ctx, ch, o)
	for range b.after {
		_, _ = b.Memory.Publish(ctx, ch, []byte(`"after"`), PublishOptions{HistorySize: 100})
	}
	return pubs, pos, err
}

func TestSubscribeOverlap(t *testing.T) {
	for _, since := range []bool{false, true} {
		rb := &racyBroker{Memory: NewMemory(MemoryOptions{})}
		h, _ := NewHub[*frame](rb, HubOptions[*frame]{Encode: func(b []byte) *frame { return &frame{b} }, Namespaces: Namespaces{"": {HistorySize: 100}}})
		first := pub(t, h, "c", "first")
		rb.before, rb.after = 3, 2
		r := &recorder{}
		var sp *StreamPosition
		if since {
			sp = &first
		}
		_, res := sub(t, h, "c", r, sp)
		if res.Position.Offset != 4 || res.Recovered != since {
			t.Fatalf("since=%v: %+v", since, res)
		}
		var want []uint64
		if since {
			want = []uint64{2, 3, 4} // replayed ("before" ones, also held live: dropped)
		}
		want = append(want, 5, 6) // live, held during the history read
		if got := r.offsets(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("since=%v: offsets %v, want %v", since, got, want)
		}
		if r.events[0] != "reply" {
			t.Fatalf("reply not first: %v", r.events)
		}
	}
}

func TestNamespaceSet(t *testing.T) {
	o := DefaultNamespaceOptions()
	for k, v := range map[string]string{"history_size": "5", "history_ttl": "90s", "publish": "none", "presence": "false"} {
		if err := o.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if o != (NamespaceOptions{HistorySize: 5, HistoryTTL: 90 * time.Second, Publish: PublishNone}) {
		t.Fatalf("%+v", o)
	}
	if err := o.Set("history_ttl", "300"); err != nil || o.HistoryTTL != 5*time.Minute {
		t.Fatal(o.HistoryTTL, err)
	}
	for k, v := range map[string]string{"history_size": "-1", "history_ttl": "soon", "publish": "all", "presence": "maybe", "colour": "red"} {
		if err := o.Set(k, v); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}
