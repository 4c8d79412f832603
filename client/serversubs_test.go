package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/wsproto"
)

// serverSubLog records OnServerSubscription calls and errors.
type serverSubLog struct {
	mu     sync.Mutex
	events []string
	errs   []error
}

func (l *serverSubLog) on(channel string, subscribed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, fmt.Sprintf("%s %v", channel, subscribed))
}

func (l *serverSubLog) onError(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *serverSubLog) list() ([]string, []error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.events), slices.Clone(l.errs)
}

// apiPost calls the node's HTTP API in process.
func apiPost(t *testing.T, api *wsproto.API, path, body string) {
	t.Helper()
	r := httptest.NewRequest("POST", path, strings.NewReader(body))
	r.Header.Set("Authorization", "apikey k")
	w := httptest.NewRecorder()
	api.ServeHTTP(w, r)
	if w.Code != 200 {
		t.Fatalf("%s %s: %d %s", path, body, w.Code, w.Body)
	}
}

// A server-side subscription reaches the Go client (OnServerSubscription,
// then OnPublication), survives reconnects with every publication exactly
// once and in order (resumed with since), and its end is reported — also
// when the backend ended it while the client was away, which is then no
// error.
func TestServerSubscriptionAcrossReconnects(t *testing.T) {
	n, h := startTokenNodeNS(t, pubsub.Namespaces{"": {HistorySize: 100}})
	api := wsproto.NewAPI(h.Hub(), wsproto.APIConfig{Key: "k", Users: h})
	rec := newRecorder()
	var log serverSubLog
	o := rec.options(fast())
	o.OnServerSubscription = log.on
	o.OnError = log.onError
	o.TokenFunc = func(context.Context) (string, error) {
		return wsproto.NewToken(tokenSecret, "alice", []string{"news"}, time.Hour)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, n.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	waitFor(t, "the connection indexed", func() bool { conns, _ := h.Connections(); return conns == 1 })

	apiPost(t, api, "/api/subscribe", `{"user":"alice","channel":"alerts"}`)
	waitFor(t, "the subscribed notice", func() bool { ev, _ := log.list(); return len(ev) == 1 })
	publish := func(from, to int) {
		for i := from; i <= to; i++ {
			apiPost(t, api, "/api/publish", fmt.Sprintf(`{"channel":"alerts","data":%d}`, i))
		}
	}
	publish(1, 3)
	waitFor(t, "1..3", func() bool { return rec.count("alerts") == 3 })

	// Away while 4..6 are published: the server's close hints a retry
	// after 300 ms.
	h.DisconnectUser("alice", 300*time.Millisecond)
	waitFor(t, "the disconnect", func() bool { conns, _ := h.Connections(); return conns == 0 })
	publish(4, 6)
	waitFor(t, "the reconnect", func() bool { return c.Reconnects() == 1 && c.State() == StateConnected })
	waitFor(t, "4..6 recovered", func() bool { return rec.count("alerts") == 6 })
	publish(7, 7)
	waitFor(t, "7 live", func() bool { return rec.count("alerts") == 7 })
	if got := rec.offsets("alerts"); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("offsets %v", got)
	}

	apiPost(t, api, "/api/unsubscribe", `{"user":"alice","channel":"alerts"}`)
	waitFor(t, "the unsubscribed notice", func() bool { ev, _ := log.list(); return len(ev) == 2 })
	publish(8, 8)
	if _, err := c.Publish(ctx, "news", 1); err != nil { // a round trip: 8 would have come before its reply
		t.Fatal(err)
	}

	// Subscribed again, then ended while the client is away.
	apiPost(t, api, "/api/subscribe", `{"user":"alice","channel":"alerts"}`)
	waitFor(t, "subscribed again", func() bool { ev, _ := log.list(); return len(ev) == 3 })
	h.DisconnectUser("alice", 300*time.Millisecond)
	waitFor(t, "the second disconnect", func() bool { conns, _ := h.Connections(); return conns == 0 })
	apiPost(t, api, "/api/unsubscribe", `{"user":"alice","channel":"alerts"}`)
	waitFor(t, "ended while away", func() bool { ev, _ := log.list(); return len(ev) == 4 })

	ev, errs := log.list()
	if want := []string{"alerts true", "alerts false", "alerts true", "alerts false"}; !slices.Equal(ev, want) {
		t.Fatalf("OnServerSubscription %q, want %q", ev, want)
	}
	if rl := rec.recoverList(); len(rl) != 1 || !rl[0].recovered {
		t.Fatalf("OnRecover calls %+v, want one recovered", rl)
	}
	if len(errs) != 0 {
		t.Fatalf("errors %v", errs)
	}
	if got := rec.offsets("alerts"); !slices.Equal(got, []uint64{1, 2, 3, 4, 5, 6, 7}) {
		t.Fatalf("offsets at the end %v", got)
	}
}

// A gap on a server-side subscription is repaired by restarting it in
// place ("server":true with since): an unsubscribe first would end the
// server's subscription, and a plain subscribe might not be allowed.
func TestServerSubscriptionGapRepairedInPlace(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.skipLive[2] = true })
	rec := newRecorder()
	var log serverSubLog
	o := rec.options(fast())
	o.OnServerSubscription = log.on
	c := dial(t, s, o)
	if _, err := c.Publish(ctxT(t), "other", 1); err != nil { // a round trip: the connection is registered
		t.Fatal(err)
	}
	s.serverSubscribe("alerts")
	waitFor(t, "the subscribed notice", func() bool { ev, _ := log.list(); return len(ev) == 1 })
	for i := 1; i <= 4; i++ {
		s.publish("alerts", fmt.Sprint(i))
	}
	waitFor(t, "1..4", func() bool { return rec.count("alerts") >= 4 })
	if got := rec.offsets("alerts"); !equalU64(got, seq(1, 4)) {
		t.Fatalf("offsets %v", got)
	}
	s.with(func() {
		if rs := s.requestsWith(`"unsubscribe"`); len(rs) > 0 {
			t.Errorf("the repair sent %q", rs)
		}
		last := s.requests[len(s.requests)-1]
		if !strings.Contains(last, `"server":true`) || !strings.Contains(last, `"since":{"offset":1,"epoch":"e1"}`) {
			t.Errorf("the repair request: %s", last)
		}
	})
}

// A publish whose connection drops after the server made it but before
// the reply is sent again with the same idempotency key on the next
// connection: Publish returns the one position, the channel has one
// publication.
func TestPublishExactlyOnceAcrossADrop(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.losePublish = 1 })
	c := dial(t, s, fast())
	res, err := c.Publish(ctxT(t), "news", "hello")
	if err != nil || res.Offset != 1 {
		t.Fatalf("Publish: %+v %v", res, err)
	}
	if c.Reconnects() != 1 {
		t.Fatalf("%d reconnects, want 1", c.Reconnects())
	}
	s.with(func() {
		if n := len(s.hist["news"]); n != 1 {
			t.Errorf("%d publications on the channel, want 1", n)
		}
		var keys []string
		for _, r := range s.requests {
			var m struct{ Op, Idempotency_key string }
			if json.Unmarshal([]byte(r), &m) == nil && m.Op == "publish" {
				keys = append(keys, m.Idempotency_key)
			}
		}
		if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
			t.Errorf("publish requests' keys %q, want the same key twice", keys)
		}
	})
}

// While disconnected, at most MaxQueuedPublishes publishes wait for a
// connection; one more fails at once with ErrQueueFull. The queued ones
// go out, in order, once a connection is up.
func TestPublishQueueBound(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.refuse = 503 })
	o := fast()
	o.MaxQueuedPublishes = 2
	c, err := New(s.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx := ctxT(t)
	results := make(chan uint64, 2)
	for i := range 2 {
		go func() {
			res, err := c.Publish(ctx, "news", i)
			if err != nil {
				t.Errorf("queued publish %d: %v", i, err)
			}
			results <- res.Offset
		}()
		waitFor(t, "the publish queued", func() bool { return c.queued.Load() == int64(i+1) })
	}
	if _, err := c.Publish(ctx, "news", 3); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("a third publish while disconnected: %v, want ErrQueueFull", err)
	}
	s.with(func() { s.refuse = 0 })
	got := map[uint64]bool{<-results: true, <-results: true}
	if !got[1] || !got[2] {
		t.Fatalf("offsets %v", got)
	}
}
