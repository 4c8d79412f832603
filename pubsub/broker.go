package pubsub

import (
	"context"
	"errors"
	"time"
)

// StreamPosition is a place in a channel's stream: the offset of a
// publication (1 for the first one; 0 before any) and the epoch of the
// stream it belongs to. Offsets compare only within one epoch.
type StreamPosition struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// Publication is one message on a channel. Data is JSON, or raw bytes
// when Binary is set; it is immutable once published (brokers and
// subscribers share it, never modify it).
type Publication struct {
	Channel string
	Offset  uint64
	Epoch   string
	Data    []byte
	Time    time.Time // when the broker accepted it (history TTL counts from here)
	// Origin tags the publisher for skip-self (see Hub.PublishWith): the
	// broker carries it from Publish to every node's handler; "" when the
	// publisher asked for its own copy. History does not keep it.
	Origin string
	Binary bool // Data is raw bytes: pushed in a binary frame (AppendBinaryPush)
}

// Position returns where p sits in its channel's stream.
func (p *Publication) Position() StreamPosition {
	return StreamPosition{Offset: p.Offset, Epoch: p.Epoch}
}

// PublishOptions are the channel's namespace settings, passed with every
// publication so that a broker needs no configuration of its own (a broker
// may also have its own, e.g. a JetStream stream's limits).
type PublishOptions struct {
	HistorySize int           // publications kept; 0 keeps none
	HistoryTTL  time.Duration // how long each is kept; 0 = until pushed out by HistorySize
	// Origin is carried to the handlers as Publication.Origin (a cluster
	// broker sends it along with the message); "" for none.
	Origin string

	// IdempotencyKey, when set, makes a retry safe: a publication to the
	// same channel with the same key within DedupWindow is not stored again
	// and Publish returns the first one's position (offset 0 when it is no
	// longer kept and the broker cannot tell it).
	IdempotencyKey string

	// Binary marks data as raw bytes, not JSON: the broker keeps the mark
	// with the publication (history included) and hands it back in
	// Publication.Binary.
	Binary bool
}

// DedupWindow is how long a publication's IdempotencyKey is remembered.
const DedupWindow = 2 * time.Minute

// HistoryOptions select what History returns.
type HistoryOptions struct {
	// Since, when set, asks for the publications after it: those with a
	// larger offset, if Since.Epoch is the stream's current epoch (none
	// otherwise). When nil, History returns the newest Limit publications.
	Since *StreamPosition
	// Limit caps the publications returned: 0 returns none (only the
	// position), a negative value means no cap. With Since, the oldest
	// Limit after it are returned; without, the newest Limit.
	Limit int
}

// Broker stores channels' streams and carries publications to the nodes
// that subscribe to them. The in-process Memory broker is the default; a
// cluster broker (NATS JetStream, see the package doc) implements the same
// contract. All methods are safe for concurrent use.
type Broker interface {
	// SetHandler registers the function that receives every publication
	// on a channel this node subscribed to with Subscribe. For one channel
	// it is called once per publication, one call at a time, in offset
	// order; calls for different channels may run concurrently. h must not
	// call back into the broker for the same channel. A Hub calls
	// SetHandler once, before any other method; a broker serves one Hub.
	SetHandler(h func(Publication))

	// Subscribe starts delivery of channel's publications to the handler:
	// every publication whose Publish returns after Subscribe returns is
	// delivered. Unsubscribe stops it. The Hub calls them when the first
	// local subscriber of a channel arrives and when the last one leaves,
	// never twice in a row for one channel.
	Subscribe(channel string) error
	Unsubscribe(channel string) error

	// Publish appends data (JSON, or raw bytes with opts.Binary; not
	// retained: the broker copies it) to
	// channel's stream and returns its position. The stream's offset grows
	// by exactly one per publication; its epoch changes whenever the
	// stream's history is lost as a whole (a restart of an in-memory
	// broker, a deleted stream).
	Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (StreamPosition, error)

	// History returns publications of channel's stream still kept,
	// oldest first, selected by opts, and the stream's latest position
	// (read atomically with them: every publication after it reaches the
	// handler of a subscribed node). Evicted publications (history size,
	// TTL) are simply missing: the caller compares offsets to notice.
	History(ctx context.Context, channel string, opts HistoryOptions) ([]Publication, StreamPosition, error)
}

// Errors.
var (
	ErrBadChannel       = errors.New("pubsub: invalid channel name")
	ErrUnknownNamespace = errors.New("pubsub: unknown namespace")
	ErrBadData          = errors.New("pubsub: data is not valid JSON")
	ErrPresenceDisabled = errors.New("pubsub: presence is off in this channel's namespace")
	ErrUnsubscribed     = errors.New("pubsub: unsubscribed while subscribing")
)
