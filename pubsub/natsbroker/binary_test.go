package natsbroker_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

// Binary publications keep their mark through NATS: live, in history, and
// share the channel's offsets with JSON ones.
func TestBinaryPublications(t *testing.T) {
	srv := natstest.Start(t)
	b, rec := connect(t, srv.URL)
	const ch = "game:board"
	if err := b.Subscribe(ch); err != nil {
		t.Fatal(err)
	}
	raw := []byte{0x00, 0xff, '{', 0x80, '\n'} // not JSON, not UTF-8
	publish(t, b, ch, 1)
	pos, err := b.Publish(context.Background(), ch, raw, pubsub.PublishOptions{Binary: true})
	if err != nil || pos.Offset != 2 {
		t.Fatalf("binary publish: %+v %v", pos, err)
	}
	publish(t, b, ch, 3)
	check := func(where string, pubs []pubsub.Publication) {
		t.Helper()
		if !slices.Equal(offsets(pubs), []uint64{1, 2, 3}) {
			t.Fatalf("%s: offsets %v", where, offsets(pubs))
		}
		if pubs[0].Binary || !pubs[1].Binary || pubs[2].Binary || !bytes.Equal(pubs[1].Data, raw) {
			t.Fatalf("%s: %+v", where, pubs)
		}
	}
	check("live", rec.waitFor(t, ch, 3))
	all, _ := history(t, b, ch, pubsub.HistoryOptions{Limit: -1})
	check("history", all)
	since, _ := history(t, b, ch, pubsub.HistoryOptions{Since: &pubsub.StreamPosition{Offset: 1, Epoch: pos.Epoch}, Limit: 1})
	if len(since) != 1 || !since[0].Binary || !bytes.Equal(since[0].Data, raw) {
		t.Fatalf("since 1: %+v", since)
	}
}
