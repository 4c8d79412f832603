package natsbroker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/pubsub/natsbroker"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait on an event; generous for a loaded 2-core box.
const wait = 30 * time.Second

var namespaces = pubsub.Namespaces{
	"":      {HistorySize: 100},
	"small": {HistorySize: 3},
	"ttl":   {HistorySize: 100, HistoryTTL: 300 * time.Millisecond},
	"none":  {HistorySize: 0},
}

// recorder is a broker's handler: every publication, per channel, in
// arrival order.
type recorder struct {
	mu   sync.Mutex
	got  map[string][]pubsub.Publication
	cond chan struct{} // closed and replaced on every arrival
}

func newRecorder() *recorder {
	return &recorder{got: map[string][]pubsub.Publication{}, cond: make(chan struct{})}
}

func (r *recorder) handle(p pubsub.Publication) {
	r.mu.Lock()
	r.got[p.Channel] = append(r.got[p.Channel], p)
	close(r.cond)
	r.cond = make(chan struct{})
	r.mu.Unlock()
}

func (r *recorder) of(channel string) []pubsub.Publication {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got[channel])
}

// waitFor waits until channel has n publications.
func (r *recorder) waitFor(t *testing.T, channel string, n int) []pubsub.Publication {
	t.Helper()
	deadline := time.After(wait)
	for {
		r.mu.Lock()
		got, cond := slices.Clone(r.got[channel]), r.cond
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-cond:
		case <-deadline:
			t.Fatalf("%q: %d publications after %v, want %d", channel, len(got), wait, n)
		}
	}
}

func connect(t testing.TB, url string) (*natsbroker.Broker, *recorder) {
	t.Helper()
	b, err := natsbroker.Connect(context.Background(), natsbroker.Options{URLs: []string{url}, Namespaces: namespaces, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	r := newRecorder()
	b.SetHandler(r.handle)
	return b, r
}

func publish(t *testing.T, b pubsub.Broker, channel string, i int) pubsub.StreamPosition {
	t.Helper()
	pos, err := b.Publish(context.Background(), channel, fmt.Appendf(nil, `{"i":%d}`, i), pubsub.PublishOptions{})
	if err != nil {
		t.Fatalf("publish %d to %q: %v", i, channel, err)
	}
	return pos
}

func offsets(pubs []pubsub.Publication) []uint64 {
	out := make([]uint64, len(pubs))
	for i, p := range pubs {
		out[i] = p.Offset
	}
	return out
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func history(t *testing.T, b pubsub.Broker, channel string, o pubsub.HistoryOptions) ([]pubsub.Publication, pubsub.StreamPosition) {
	t.Helper()
	pubs, latest, err := b.History(context.Background(), channel, o)
	if err != nil {
		t.Fatalf("history of %q: %v", channel, err)
	}
	return pubs, latest
}

// waitState waits until the broker's connection is (or is not) up.
func waitState(t *testing.T, b *natsbroker.Broker, connected bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for b.State().Connected != connected {
		if time.Now().After(deadline) {
			t.Fatalf("broker state %+v, want connected=%v", b.State(), connected)
		}
		time.Sleep(10 * time.Millisecond) // polling a state, not synchronising
	}
}

// The pubsub.Broker contract, as Memory implements it: offsets +1 from 1,
// one epoch, History's Since and Limit, size limits, odd channel names.
func TestBrokerContract(t *testing.T) {
	srv := natstest.Start(t)
	b, _ := connect(t, srv.URL)
	for _, ch := range []string{"news", "chat:room.1>all", "small:a.b", "x:y:z"} {
		_, latest := history(t, b, ch, pubsub.HistoryOptions{})
		if latest.Offset != 0 || latest.Epoch == "" {
			t.Fatalf("%q before any publication: %+v", ch, latest)
		}
		var epoch string
		for i := 1; i <= 5; i++ {
			pos := publish(t, b, ch, i)
			if pos.Offset != uint64(i) || i > 1 && pos.Epoch != epoch {
				t.Fatalf("%q publication %d: %+v (epoch before %q)", ch, i, pos, epoch)
			}
			epoch = pos.Epoch
		}
		if epoch != latest.Epoch {
			t.Fatalf("%q: epoch %q before the first publication, %q after", ch, latest.Epoch, epoch)
		}
		all, latest := history(t, b, ch, pubsub.HistoryOptions{Limit: -1})
		if latest != (pubsub.StreamPosition{Offset: 5, Epoch: epoch}) {
			t.Fatalf("%q latest %+v", ch, latest)
		}
		want := seq(1, 5)
		if pubsub.NamespaceOf(ch) == "small" {
			want = seq(3, 5)
		}
		if !slices.Equal(offsets(all), want) {
			t.Fatalf("%q history %v, want %v", ch, offsets(all), want)
		}
		if string(all[len(all)-1].Data) != `{"i":5}` || all[0].Channel != ch || all[0].Epoch != epoch || all[0].Time.IsZero() {
			t.Fatalf("%q: publication %+v", ch, all[len(all)-1])
		}
		if pubs, _ := history(t, b, ch, pubsub.HistoryOptions{Limit: 2}); !slices.Equal(offsets(pubs), []uint64{4, 5}) {
			t.Fatalf("%q newest 2: %v", ch, offsets(pubs))
		}
		if pubs, _ := history(t, b, ch, pubsub.HistoryOptions{Limit: 0}); len(pubs) != 0 {
			t.Fatalf("%q limit 0: %v", ch, offsets(pubs))
		}
		since := &pubsub.StreamPosition{Offset: 3, Epoch: epoch}
		if pubs, _ := history(t, b, ch, pubsub.HistoryOptions{Since: since, Limit: -1}); !slices.Equal(offsets(pubs), []uint64{4, 5}) {
			t.Fatalf("%q since 3: %v", ch, offsets(pubs))
		}
		if pubs, _ := history(t, b, ch, pubsub.HistoryOptions{Since: since, Limit: 1}); !slices.Equal(offsets(pubs), []uint64{4}) {
			t.Fatalf("%q since 3 limit 1: %v", ch, offsets(pubs))
		}
		if pubs, _ := history(t, b, ch, pubsub.HistoryOptions{Since: &pubsub.StreamPosition{Offset: 1, Epoch: "other"}, Limit: -1}); len(pubs) != 0 {
			t.Fatalf("%q since another epoch: %v", ch, offsets(pubs))
		}
	}
	// History size 0 keeps none, but offsets still count.
	publish(t, b, "none:x", 1)
	if pubs, latest := history(t, b, "none:x", pubsub.HistoryOptions{Limit: -1}); len(pubs) != 0 || latest.Offset != 1 {
		t.Fatalf("none: %v %+v", offsets(pubs), latest)
	}
	if pos := publish(t, b, "none:x", 2); pos.Offset != 2 {
		t.Fatalf("none: second publication at %+v", pos)
	}
	if _, err := b.Publish(context.Background(), "bad channel", []byte(`1`), pubsub.PublishOptions{}); !errors.Is(err, pubsub.ErrBadChannel) {
		t.Fatalf("bad channel: %v", err)
	}
}

// When the TTL has expired every publication of a channel, its offsets
// still continue under the same epoch (JetStream keeps the last message;
// the TTL applies on read).
func TestTTLExpiryKeepsOffsets(t *testing.T) {
	srv := natstest.Start(t)
	b, _ := connect(t, srv.URL)
	var epoch string
	for i := 1; i <= 3; i++ {
		epoch = publish(t, b, "ttl:a", i).Epoch
	}
	deadline := time.Now().Add(wait)
	for {
		pubs, latest := history(t, b, "ttl:a", pubsub.HistoryOptions{Limit: -1})
		if latest != (pubsub.StreamPosition{Offset: 3, Epoch: epoch}) {
			t.Fatalf("latest %+v, want offset 3 epoch %q", latest, epoch)
		}
		if len(pubs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("TTL never applied: %v", offsets(pubs))
		}
		time.Sleep(50 * time.Millisecond) // polling the clock-driven TTL
	}
	if pos := publish(t, b, "ttl:a", 4); pos != (pubsub.StreamPosition{Offset: 4, Epoch: epoch}) {
		t.Fatalf("after expiry: %+v, want offset 4 epoch %q", pos, epoch)
	}
	if pubs, _ := history(t, b, "ttl:a", pubsub.HistoryOptions{Limit: -1}); !slices.Equal(offsets(pubs), []uint64{4}) {
		t.Fatalf("after expiry: history %v", offsets(pubs))
	}
}

// A new broker on the same JetStream (a wsd restart) keeps the epoch and
// continues the offsets; deleting the stream changes the epoch.
func TestEpochStableUntilStreamDeleted(t *testing.T) {
	srv := natstest.Start(t)
	b1, _ := connect(t, srv.URL)
	first := publish(t, b1, "chat:a", 1)
	publish(t, b1, "chat:a", 2)
	b1.Close()

	b2, _ := connect(t, srv.URL)
	if _, latest := history(t, b2, "chat:a", pubsub.HistoryOptions{}); latest != (pubsub.StreamPosition{Offset: 2, Epoch: first.Epoch}) {
		t.Fatalf("new broker: latest %+v, want offset 2 epoch %q", latest, first.Epoch)
	}
	if pos := publish(t, b2, "chat:a", 3); pos != (pubsub.StreamPosition{Offset: 3, Epoch: first.Epoch}) {
		t.Fatalf("new broker: %+v", pos)
	}

	nc, err := nats.Connect(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	name, err := js.StreamNameBySubject(ctx, "wsd.chat.*")
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(ctx, name); err != nil {
		t.Fatal(err)
	}
	pos := publish(t, b2, "chat:a", 4)
	if pos.Offset != 1 || pos.Epoch == first.Epoch || pos.Epoch == "" {
		t.Fatalf("after the stream was deleted: %+v (old epoch %q)", pos, first.Epoch)
	}
	if _, latest := history(t, b2, "chat:a", pubsub.HistoryOptions{}); latest != pos {
		t.Fatalf("after the stream was deleted: latest %+v, want %+v", latest, pos)
	}
}

// Three nodes publishing to one channel at once: offsets 1..N, no gaps, no
// duplicates, and a subscribed node receives them once, in order.
func TestConcurrentPublishersGapFree(t *testing.T) {
	srv := natstest.Start(t)
	const nodes, workers, each = 3, 4, 25
	const total = nodes * workers * each
	sub, rec := connect(t, srv.URL)
	if err := sub.Subscribe("race"); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []uint64
	epochs := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, nodes*workers)
	for range nodes {
		b, _ := connect(t, srv.URL)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					pos, err := b.Publish(context.Background(), "race", fmt.Appendf(nil, `%d`, i), pubsub.PublishOptions{})
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					got = append(got, pos.Offset)
					epochs[pos.Epoch] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, seq(1, total)) || len(epochs) != 1 {
		t.Fatalf("offsets returned: %d of them, epochs %v; want 1..%d gap-free: %v", len(got), epochs, total, got)
	}
	delivered := rec.waitFor(t, "race", total)
	if !slices.Equal(offsets(delivered), seq(1, total)) {
		t.Fatalf("delivered out of order or twice: %v", offsets(delivered))
	}
	all, _ := history(t, sub, "race", pubsub.HistoryOptions{Limit: -1})
	if !slices.Equal(offsets(all), seq(total-99, total)) {
		t.Fatalf("history: %v", offsets(all))
	}
}

// A node gets a channel's publications only between its Subscribe and
// Unsubscribe.
func TestInterestBasedDelivery(t *testing.T) {
	srv := natstest.Start(t)
	pub, _ := connect(t, srv.URL)
	a, ra := connect(t, srv.URL)
	b, rb := connect(t, srv.URL)
	publish(t, pub, "x", 1) // before anyone subscribed: nobody gets it
	for _, br := range []*natsbroker.Broker{a, b} {
		if err := br.Subscribe("marker"); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Subscribe("x"); err != nil {
		t.Fatal(err)
	}
	publish(t, pub, "x", 2)
	publish(t, pub, "marker", 1)
	if got := ra.waitFor(t, "x", 1); !slices.Equal(offsets(got), []uint64{2}) {
		t.Fatalf("subscribed node got %v, want [2]", offsets(got))
	}
	rb.waitFor(t, "marker", 1)
	if got := rb.of("x"); len(got) != 0 {
		t.Fatalf("node without a subscription got %v", offsets(got))
	}

	if err := a.Unsubscribe("x"); err != nil {
		t.Fatal(err)
	}
	publish(t, pub, "x", 3)
	publish(t, pub, "marker", 2)
	ra.waitFor(t, "marker", 2)
	if got := ra.of("x"); !slices.Equal(offsets(got), []uint64{2}) {
		t.Fatalf("after Unsubscribe: %v", offsets(got))
	}
	// Subscribing again starts after the latest publication.
	if err := a.Subscribe("x"); err != nil {
		t.Fatal(err)
	}
	publish(t, pub, "x", 4)
	if got := ra.waitFor(t, "x", 2); !slices.Equal(offsets(got), []uint64{2, 4}) {
		t.Fatalf("after subscribing again: %v", offsets(got))
	}
}

// JetStream on disk: history, epochs and offsets survive a nats-server
// restart, and live subscriptions resume.
func TestHistorySurvivesNATSRestart(t *testing.T) {
	srv := natstest.Start(t)
	b, rec := connect(t, srv.URL)
	if err := b.Subscribe("chat:r"); err != nil {
		t.Fatal(err)
	}
	var epoch string
	for i := 1; i <= 5; i++ {
		epoch = publish(t, b, "chat:r", i).Epoch
	}
	rec.waitFor(t, "chat:r", 5)
	srv.Restart()
	waitState(t, b, true)
	pubs, latest := history(t, b, "chat:r", pubsub.HistoryOptions{Limit: -1})
	if latest != (pubsub.StreamPosition{Offset: 5, Epoch: epoch}) || !slices.Equal(offsets(pubs), seq(1, 5)) {
		t.Fatalf("after the restart: %v %+v, want 1..5 epoch %q", offsets(pubs), latest, epoch)
	}
	if pos := publish(t, b, "chat:r", 6); pos != (pubsub.StreamPosition{Offset: 6, Epoch: epoch}) {
		t.Fatalf("after the restart: %+v", pos)
	}
	if got := rec.waitFor(t, "chat:r", 6); !slices.Equal(offsets(got), seq(1, 6)) {
		t.Fatalf("live delivery across the restart: %v", offsets(got))
	}
	fresh, _ := connect(t, srv.URL)
	if _, latest := history(t, fresh, "chat:r", pubsub.HistoryOptions{}); latest.Epoch != epoch {
		t.Fatalf("a new node sees epoch %q, want %q", latest.Epoch, epoch)
	}
}

// NATS lost while running: calls fail with ErrUnavailable (no silent
// drop), State says so; service resumes when NATS is back.
func TestNATSDownThenBack(t *testing.T) {
	srv := natstest.Start(t)
	b, rec := connect(t, srv.URL)
	if err := b.Subscribe("news"); err != nil {
		t.Fatal(err)
	}
	epoch := publish(t, b, "news", 1).Epoch
	rec.waitFor(t, "news", 1)

	srv.Stop()
	waitState(t, b, false)
	if st := b.State(); st.Status != "reconnecting" {
		t.Fatalf("state while down: %+v", st)
	}
	if _, err := b.Publish(context.Background(), "news", []byte(`2`), pubsub.PublishOptions{}); !errors.Is(err, natsbroker.ErrUnavailable) {
		t.Fatalf("publish while down: %v", err)
	}
	if _, _, err := b.History(context.Background(), "news", pubsub.HistoryOptions{}); !errors.Is(err, natsbroker.ErrUnavailable) {
		t.Fatalf("history while down: %v", err)
	}
	if err := b.Subscribe("other"); !errors.Is(err, natsbroker.ErrUnavailable) {
		t.Fatalf("subscribe while down: %v", err)
	}

	srv.Resume()
	waitState(t, b, true)
	if pos := publish(t, b, "news", 2); pos != (pubsub.StreamPosition{Offset: 2, Epoch: epoch}) {
		t.Fatalf("after NATS came back: %+v", pos)
	}
	if got := rec.waitFor(t, "news", 2); !slices.Equal(offsets(got), []uint64{1, 2}) {
		t.Fatalf("live delivery after NATS came back: %v", offsets(got))
	}
}

// Unreachable NATS at start: a ConnectError naming the URL.
func TestConnectUnreachable(t *testing.T) {
	_, err := natsbroker.Connect(context.Background(), natsbroker.Options{URLs: []string{"nats://127.0.0.1:1"}, ConnectTimeout: 2 * time.Second})
	var ce *natsbroker.ConnectError
	if !errors.As(err, &ce) || len(ce.URLs) != 1 {
		t.Fatalf("err = %v, want a ConnectError", err)
	}
}
