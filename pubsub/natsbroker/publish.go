package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsdhq/wsd/pubsub"
)

// hdrOffset carries a publication's offset in its channel.
const hdrOffset = "Wsd-Offset"

// hdrOrigin carries a publication's origin (pubsub.Publication.Origin),
// when it has one.
const hdrOrigin = "Wsd-Origin"

// hdrBinary, set to "1", marks a binary publication (raw bytes, not JSON).
const hdrBinary = "Wsd-Binary"

// isBinary reads hdrBinary.
func isBinary(h nats.Header) bool { return h.Get(hdrBinary) == "1" }

// publishAttempts bounds the tries of one Publish that keeps losing the
// race for the next offset (each loss means another publication got it).
const publishAttempts = 32

const (
	numShards = 64
	// shardCacheMax bounds each shard's cache of last positions; past it the
	// shard forgets them all (a miss costs one read).
	shardCacheMax = 4096
)

var shardSeed = maphash.MakeSeed()

// shard serialises this node's publications to the channels hashed to it
// (they would only race each other for the same offset) and caches each
// channel's last position.
type shard struct {
	mu   sync.Mutex
	last map[string]lastPos
}

// lastPos is a channel's last message: its stream sequence and offset.
type lastPos struct {
	stream string
	seq    uint64
	offset uint64
}

func (b *Broker) shard(channel string) *shard {
	return &b.shards[maphash.String(shardSeed, channel)%numShards]
}

// Publish implements pubsub.Broker: it appends data with the channel's
// next offset (see the package doc) and returns once JetStream stored it.
// Of opts, Origin and Binary travel as headers and IdempotencyKey as
// JetStream's message ID (the stream's limits come from
// Options.Namespaces).
// Errors: ErrUnavailable while NATS is down, ErrContention, a context's
// error, or JetStream's.
func (b *Broker) Publish(ctx context.Context, channel string, data []byte, opts pubsub.PublishOptions) (pubsub.StreamPosition, error) {
	if !pubsub.ValidChannel(channel) {
		return pubsub.StreamPosition{}, pubsub.ErrBadChannel
	}
	ctx, cancel, err := b.usable(ctx)
	defer cancel()
	if err != nil {
		return pubsub.StreamPosition{}, err
	}
	ns := pubsub.NamespaceOf(channel)
	st, err := b.stream(ctx, ns, nil)
	if err != nil {
		return pubsub.StreamPosition{}, err
	}
	sh := b.shard(channel)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for range publishAttempts {
		subj := st.subjectOf(channel)
		last, ok := sh.last[channel]
		if !ok || last.stream != st.name {
			if last, err = b.lastOf(ctx, st, subj); err != nil {
				if !isStreamGone(err) {
					return pubsub.StreamPosition{}, err
				}
				if st, err = b.stream(ctx, ns, st); err != nil {
					return pubsub.StreamPosition{}, err
				}
				continue
			}
		}
		offset := last.offset + 1
		msg := &nats.Msg{Subject: subj, Header: nats.Header{hdrOffset: []string{strconv.FormatUint(offset, 10)}}, Data: data}
		if opts.IdempotencyKey != "" {
			// JetStream's deduplication (the stream's Duplicates window)
			// is per stream: the channel is part of the ID.
			msg.Header.Set(jetstream.MsgIDHeader, channel+"\x00"+opts.IdempotencyKey)
		}
		if opts.Origin != "" {
			msg.Header[hdrOrigin] = []string{opts.Origin}
		}
		if opts.Binary {
			msg.Header[hdrBinary] = []string{"1"}
		}
		ack, err := b.js.PublishMsg(ctx, msg, jetstream.WithExpectStream(st.name), jetstream.WithExpectLastSequencePerSubject(last.seq))
		switch {
		case err == nil && ack.Duplicate:
			return pubsub.StreamPosition{Offset: b.offsetAt(ctx, st, ack.Sequence), Epoch: st.epoch}, nil
		case err == nil:
			sh.remember(channel, lastPos{stream: st.name, seq: ack.Sequence, offset: offset})
			return pubsub.StreamPosition{Offset: offset, Epoch: st.epoch}, nil
		case isWrongLast(err):
			delete(sh.last, channel) // someone else published: read again
		case isStreamGone(err):
			delete(sh.last, channel)
			if st, err = b.stream(ctx, ns, st); err != nil {
				return pubsub.StreamPosition{}, err
			}
		default:
			// Maybe stored (a lost ack): the cache cannot be trusted.
			delete(sh.last, channel)
			return pubsub.StreamPosition{}, b.unavailable(fmt.Errorf("natsbroker: publish to %q: %w", channel, err))
		}
	}
	return pubsub.StreamPosition{}, ErrContention
}

// offsetAt is the offset of the message at stream sequence seq, 0 when it
// is no longer kept (or cannot be read now): a duplicate's original.
func (b *Broker) offsetAt(ctx context.Context, st *nsStream, seq uint64) uint64 {
	m, err := st.h.GetMsg(ctx, seq)
	if err != nil {
		return 0
	}
	off, _ := offsetOf(m.Header)
	return off
}

func (sh *shard) remember(channel string, p lastPos) {
	if len(sh.last) >= shardCacheMax {
		clear(sh.last)
	}
	sh.last[channel] = p
}

// lastOf reads subj's last message; a subject without one is at 0.
func (b *Broker) lastOf(ctx context.Context, st *nsStream, subj string) (lastPos, error) {
	m, err := b.lastMsg(ctx, st, subj)
	if err != nil || m == nil {
		return lastPos{stream: st.name}, err
	}
	off, err := offsetOf(m.Header)
	if err != nil {
		return lastPos{}, fmt.Errorf("natsbroker: last message of %s (seq %d): %w", subj, m.Sequence, err)
	}
	return lastPos{stream: st.name, seq: m.Sequence, offset: off}, nil
}

// lastMsg reads subj's last message from the stream leader (nil when the
// subject has none).
func (b *Broker) lastMsg(ctx context.Context, st *nsStream, subj string) (*jetstream.RawStreamMsg, error) {
	m, err := st.h.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	return m, b.unavailable(err)
}

// ErrBadMessage: a message on a wsd subject without a valid offset header
// (published by something else than wsd).
var ErrBadMessage = errors.New("natsbroker: message without a valid " + hdrOffset + " header")

func offsetOf(h nats.Header) (uint64, error) {
	off, err := strconv.ParseUint(h.Get(hdrOffset), 10, 64)
	if err != nil || off == 0 {
		return 0, ErrBadMessage
	}
	return off, nil
}

func isWrongLast(err error) bool {
	c := apiCode(err)
	return c == jetstream.JSErrCodeStreamWrongLastSequence || c == jetstream.JSErrCodeStreamWrongLastSequenceConstant
}

// codeStreamNotMatch: "expected stream does not match" (it was recreated).
const codeStreamNotMatch jetstream.ErrorCode = 10060

// isStreamGone: the stream we know was deleted (and perhaps recreated).
func isStreamGone(err error) bool {
	c := apiCode(err)
	return c == jetstream.JSErrCodeStreamNotFound || c == codeStreamNotMatch ||
		errors.Is(err, jetstream.ErrStreamNotFound) || errors.Is(err, jetstream.ErrNoStreamResponse)
}
