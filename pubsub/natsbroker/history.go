package natsbroker

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsdhq/wsd/pubsub"
)

// History implements pubsub.Broker. The latest position is the subject's
// last message read from the stream leader; the publications are read up
// to it (see the package doc). The namespace's HistorySize and HistoryTTL
// are applied here. Fails with ErrUnavailable while NATS is down.
func (b *Broker) History(ctx context.Context, channel string, opts pubsub.HistoryOptions) ([]pubsub.Publication, pubsub.StreamPosition, error) {
	if !pubsub.ValidChannel(channel) {
		return nil, pubsub.StreamPosition{}, pubsub.ErrBadChannel
	}
	ctx, cancel, err := b.usable(ctx)
	defer cancel()
	if err != nil {
		return nil, pubsub.StreamPosition{}, err
	}
	ns := pubsub.NamespaceOf(channel)
	var st *nsStream
	var last lastPos
	for attempt := 0; ; attempt++ {
		if st, err = b.stream(ctx, ns, st); err != nil {
			return nil, pubsub.StreamPosition{}, err
		}
		if last, err = b.lastOf(ctx, st, st.subjectOf(channel)); err == nil {
			break
		}
		if !isStreamGone(err) || attempt > 0 {
			return nil, pubsub.StreamPosition{}, err
		}
	}
	latest := pubsub.StreamPosition{Offset: last.offset, Epoch: st.epoch}
	since := opts.Since
	switch {
	case opts.Limit == 0 || st.size == 0 || last.offset == 0:
		return nil, latest, nil
	case since != nil && (since.Epoch != st.epoch || since.Offset >= last.offset):
		return nil, latest, nil
	}
	pubs, err := b.read(ctx, channel, st, last)
	if err != nil {
		return nil, latest, err
	}
	from, to := 0, len(pubs)
	if since != nil {
		for from < to && pubs[from].Offset <= since.Offset {
			from++
		}
		if opts.Limit > 0 && to-from > opts.Limit {
			to = from + opts.Limit
		}
	} else if opts.Limit > 0 && to > opts.Limit {
		from = to - opts.Limit
	}
	return pubs[from:to], latest, nil
}

// read returns the channel's kept publications up to last (inclusive)
// that the namespace's size and TTL still allow, oldest first.
func (b *Broker) read(ctx context.Context, channel string, st *nsStream, last lastPos) ([]pubsub.Publication, error) {
	subj := st.subjectOf(channel)
	cons, err := b.js.OrderedConsumer(ctx, st.name, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subj},
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		InactiveThreshold: consumerIdle,
	})
	if err != nil {
		return nil, b.unavailable(err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(max(st.size, 1), 1000)))
	if err != nil {
		return nil, b.unavailable(err)
	}
	defer func() {
		it.Stop()
		if info := cons.CachedInfo(); info != nil {
			b.background(func() {
				dctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
				defer cancel()
				_ = b.js.DeleteConsumer(dctx, st.name, info.Name)
			})
		}
	}()
	var cutoff time.Time
	if st.ttl > 0 {
		cutoff = time.Now().Add(-st.ttl)
	}
	minOffset := uint64(1)
	if last.offset > uint64(st.size) {
		minOffset = last.offset - uint64(st.size) + 1
	}
	var out []pubsub.Publication
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return nil, b.unavailable(fmt.Errorf("natsbroker: reading the history of %q: %w", channel, err))
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		off, err := offsetOf(m.Headers())
		if err != nil {
			return nil, err
		}
		if off >= minOffset && off <= last.offset && !md.Timestamp.Before(cutoff) {
			out = append(out, pubsub.Publication{Channel: channel, Offset: off, Epoch: st.epoch, Data: m.Data(), Time: md.Timestamp, Binary: isBinary(m.Headers())})
		}
		if md.Sequence.Stream >= last.seq {
			return out, nil
		}
	}
}
