package natsbroker

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsdhq/wsd/pubsub"
)

// consumerIdle: the server deletes a live consumer this long after its
// node stopped pulling (a node that died without unsubscribing).
const consumerIdle = 30 * time.Second

// liveSub is one subscribed channel's ordered consumer.
type liveSub struct {
	b       *Broker
	channel string
	st      *nsStream

	mu      sync.Mutex // held while the handler runs: Unsubscribe waits for it
	stopped bool
	cons    jetstream.Consumer
	cc      jetstream.ConsumeContext
}

// Subscribe implements pubsub.Broker: it starts an ordered consumer on the
// channel's subject, right after its last message. Fails with
// ErrUnavailable while NATS is down.
func (b *Broker) Subscribe(channel string) error {
	if !pubsub.ValidChannel(channel) {
		return pubsub.ErrBadChannel
	}
	ctx, cancel, err := b.usable(context.Background())
	defer cancel()
	if err != nil {
		return err
	}
	s, err := b.startSub(ctx, channel, nil)
	if err != nil {
		return err
	}
	b.subsMu.Lock()
	old, closed := b.subs[channel], b.closed
	if !closed {
		b.subs[channel] = s
	}
	b.subsMu.Unlock()
	if old != nil {
		b.background(old.stop())
	}
	if closed {
		s.stop()()
		return ErrClosed
	}
	return nil
}

// startSub starts a consumer of channel after its last message, on the
// namespace's current stream (or a fresher one than stale).
func (b *Broker) startSub(ctx context.Context, channel string, stale *nsStream) (*liveSub, error) {
	ns := pubsub.NamespaceOf(channel)
	for attempt := 0; ; attempt++ {
		st, err := b.stream(ctx, ns, stale)
		if err != nil {
			return nil, err
		}
		subj := st.subjectOf(channel)
		last, err := b.lastOf(ctx, st, subj)
		if err == nil {
			return b.consume(ctx, channel, st, subj, last.seq+1)
		}
		if !isStreamGone(err) || attempt > 0 {
			return nil, err
		}
		stale = st
	}
}

func (b *Broker) consume(ctx context.Context, channel string, st *nsStream, subj string, from uint64) (*liveSub, error) {
	s := &liveSub{b: b, channel: channel, st: st}
	cons, err := b.js.OrderedConsumer(ctx, st.name, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subj},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		InactiveThreshold: consumerIdle,
	})
	if err != nil {
		return nil, b.unavailable(err)
	}
	cc, err := cons.Consume(s.deliver, jetstream.ConsumeErrHandler(s.consumeErr))
	if err != nil {
		return nil, b.unavailable(err)
	}
	s.cons, s.cc = cons, cc
	return s, nil
}

// deliver runs on nats.go's goroutine, one message at a time per consumer.
func (s *liveSub) deliver(m jetstream.Msg) {
	off, err := offsetOf(m.Headers())
	if err != nil {
		s.b.log.Warn("skipping a foreign message", "channel", s.channel, "err", err)
		return
	}
	p := pubsub.Publication{Channel: s.channel, Offset: off, Epoch: s.st.epoch, Data: m.Data(), Origin: originOf(m.Headers()), Binary: isBinary(m.Headers())}
	if md, err := m.Metadata(); err == nil {
		p.Time = md.Timestamp
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return
	}
	if h := s.b.handler.Load(); h != nil {
		(*h)(p)
	}
}

// consumeErr: nats.go recreates the consumer by itself after a reconnect
// or a missed heartbeat; a deleted consumer may mean a deleted stream,
// which it cannot recover from, so that case is checked here.
func (s *liveSub) consumeErr(_ jetstream.ConsumeContext, err error) {
	s.b.log.Debug("live consumer", "channel", s.channel, "err", err)
	if errors.Is(err, jetstream.ErrConsumerDeleted) || isStreamGone(err) {
		s.b.background(func() { s.b.checkStream(s) })
	}
}

// checkStream moves s to the namespace's new stream if its own is gone.
func (b *Broker) checkStream(s *liveSub) {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
	defer cancel()
	if _, err := b.js.Stream(ctx, s.st.name); !errors.Is(err, jetstream.ErrStreamNotFound) {
		return // still there (or unknown): the ordered consumer resets itself
	}
	b.subsMu.Lock()
	current := b.subs[s.channel] == s
	b.subsMu.Unlock()
	if !current {
		return
	}
	st, err := b.stream(ctx, s.st.ns, s.st)
	if err != nil {
		b.log.Warn("channel's stream is gone and none replaces it yet", "channel", s.channel, "err", err)
		return
	}
	// A new stream: everything of the channel in it is new to this node.
	fresh, err := b.consume(ctx, s.channel, st, st.subjectOf(s.channel), 1)
	if err != nil {
		b.log.Warn("resubscribing on the new stream", "channel", s.channel, "err", err)
		return
	}
	b.subsMu.Lock()
	if b.subs[s.channel] != s || b.closed {
		b.subsMu.Unlock()
		b.background(fresh.stop())
		return
	}
	b.subs[s.channel] = fresh
	b.subsMu.Unlock()
	b.background(s.stop())
	b.log.Info("channel moved to its namespace's new stream", "channel", s.channel, "stream", st.name)
}

// Unsubscribe implements pubsub.Broker: no publication of channel reaches
// the handler after it returns.
func (b *Broker) Unsubscribe(channel string) error {
	b.subsMu.Lock()
	s := b.subs[channel]
	delete(b.subs, channel)
	b.subsMu.Unlock()
	if s != nil {
		b.background(s.stop())
	}
	return nil
}

// stop ends delivery (waiting for a handler call in progress) and returns
// the deletion of the server's consumer, for the caller to run (the idle
// threshold removes it anyway if that fails). Later calls return a no-op.
func (s *liveSub) stop() func() {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return func() {}
	}
	s.stopped = true
	s.mu.Unlock()
	s.cc.Stop()
	info := s.cons.CachedInfo()
	return func() {
		if info == nil || !s.b.nc.IsConnected() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.b.opts.Timeout)
		defer cancel()
		_ = s.b.js.DeleteConsumer(ctx, s.st.name, info.Name)
	}
}

// background runs f on its own goroutine, which Close waits for; once
// Close has begun it does nothing.
func (b *Broker) background(f func()) {
	b.subsMu.Lock()
	defer b.subsMu.Unlock()
	if b.closed {
		return
	}
	b.cleanup.Add(1)
	go func() {
		defer b.cleanup.Done()
		f()
	}()
}

// originOf reads a message's origin header ("" when it has none).
func originOf(h nats.Header) string {
	if v := h[hdrOrigin]; len(v) > 0 {
		return v[0]
	}
	return ""
}
