package natsbroker_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/pubsub/natsbroker"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

// Bug: nodes that used a namespace for the first time at the same moment
// each created a stream for it; nats-server accepted both despite their
// equal subjects, so the nodes published into different streams and one
// node's subscribers got nothing from the other (measured: 1,200 lost,
// 150 duplicated in a 2 s broadcast). Every node must end up on one
// stream: one epoch, offsets 1..N with no gap or duplicate.
func TestFirstUseAtOnceMakesOneStream(t *testing.T) {
	srv := natstest.Start(t)
	const nodes, trials = 4, 8
	for trial := range trials {
		prefix := fmt.Sprintf("race%d", trial)
		brokers := make([]*natsbroker.Broker, nodes)
		for i := range brokers {
			b, err := natsbroker.Connect(context.Background(), natsbroker.Options{URLs: []string{srv.URL},
				Namespaces: namespaces, Timeout: 10 * time.Second, StreamPrefix: "R" + prefix, SubjectPrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(b.Close)
			b.SetHandler(func(pubsub.Publication) {})
			brokers[i] = b
		}
		start := make(chan struct{})
		pos := make([]pubsub.StreamPosition, nodes)
		errs := make([]error, nodes)
		var wg sync.WaitGroup
		for i, b := range brokers {
			wg.Go(func() {
				<-start
				pos[i], errs[i] = b.Publish(context.Background(), "x", []byte(`{}`), pubsub.PublishOptions{HistorySize: 100})
			})
		}
		close(start)
		wg.Wait()
		seen := map[uint64]bool{}
		for i := range nodes {
			if errs[i] != nil {
				t.Fatalf("trial %d node %d: %v", trial, i, errs[i])
			}
			if pos[i].Epoch != pos[0].Epoch {
				t.Fatalf("trial %d: nodes got epochs %q and %q: two streams for one namespace", trial, pos[0].Epoch, pos[i].Epoch)
			}
			if seen[pos[i].Offset] || pos[i].Offset < 1 || pos[i].Offset > nodes {
				t.Fatalf("trial %d: offsets %v, want 1..%d once each", trial, pos, nodes)
			}
			seen[pos[i].Offset] = true
		}
		if n := streamsFor(t, srv.URL, prefix+".>"); n != 1 {
			t.Fatalf("trial %d: %d streams hold the namespace's subjects, want 1", trial, n)
		}
	}
}

func streamsFor(t *testing.T, url, subject string) int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	n := 0
	names := js.StreamNames(context.Background(), jetstream.WithStreamListSubject(subject))
	for range names.Name() {
		n++
	}
	if err := names.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}
