package natsbroker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsdhq/wsd/pubsub"
)

// Presence defaults and bounds.
const (
	defaultPresenceTTL        = 30 * time.Second
	defaultPresenceMaxClients = 1000
	// maxEntryBytes bounds one node's entry for one channel (the bucket's
	// MaxValueSize too): client IDs past it are counted, not listed.
	maxEntryBytes = 64 << 10
	// presenceBatch bounds the writes in flight at once.
	presenceBatch = 256
)

var _ pubsub.PresenceStore = (*Broker)(nil)

// presence shares this node's presence through a KV bucket: one key per
// channel and node, "<base64url(channel)>.<node>", holding a
// pubsub.NodePresence. The bucket's TTL (MaxAge) drops every entry not
// rewritten for that long, and each node rewrites all of its entries every
// TTL/3, so a node that dies without cleaning up leaves the cluster's
// presence within one TTL.
type presence struct {
	b          *Broker
	node       string
	bucket     string
	ttl        time.Duration // wanted; the bucket's own TTL wins when it exists
	maxClients int

	src atomic.Pointer[func(string, int) pubsub.NodePresence]

	mu    sync.Mutex
	dirty map[string]struct{} // channels whose entry must be rewritten
	wake  chan struct{}       // 1 slot: dirty is not empty

	// Owned by the writer goroutine.
	kv      jetstream.KeyValue
	kvTTL   time.Duration     // the bucket's TTL, read when opened
	entries map[string][]byte // channel → this node's entry as last written

	flightMu sync.Mutex
	flights  map[flightKey]*flight // shared reads in progress, by channel and kind
	readKV   jetstream.KeyValue    // the bucket for reads; nil until opened, or after a failed read; under flightMu

	start   sync.Once
	stop    chan struct{}
	done    chan struct{}
	abandon atomic.Bool // stop without deleting the entries (tests: a killed node)
}

// flightKey names a shared read: a channel's entries with their client
// lists, or only their counts.
type flightKey struct {
	channel string
	counts  bool
}

// flight is one RemotePresence read that concurrent callers share.
type flight struct {
	done  chan struct{}
	parts []pubsub.NodePresence
	err   error
}

func newPresence(b *Broker) *presence {
	o := b.opts
	return &presence{
		b: b, node: o.NodeID, bucket: o.StreamPrefix + "_presence", ttl: o.PresenceTTL, maxClients: o.PresenceMaxClients,
		dirty: map[string]struct{}{}, wake: make(chan struct{}, 1), entries: map[string][]byte{},
		flights: map[flightKey]*flight{}, stop: make(chan struct{}), done: make(chan struct{}),
	}
}

// NodeID returns this node's ID in presence entries. Safe from any
// goroutine.
func (b *Broker) NodeID() string { return b.opts.NodeID }

// SetPresenceSource implements pubsub.PresenceStore; it starts the
// goroutine that writes this node's entries (until Close).
func (b *Broker) SetPresenceSource(src func(channel string, maxClients int) pubsub.NodePresence) {
	p := b.presence
	p.src.Store(&src)
	p.start.Do(func() {
		b.subsMu.Lock()
		closed := b.closed
		b.subsMu.Unlock()
		if closed {
			close(p.done)
			return
		}
		go p.run()
	})
}

// PresenceChanged implements pubsub.PresenceStore. Safe from any
// goroutine; never blocks.
func (b *Broker) PresenceChanged(channel string) {
	p := b.presence
	p.mu.Lock()
	p.dirty[channel] = struct{}{}
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// RemotePresence implements pubsub.PresenceStore: the other nodes' entries
// for channel, read from the bucket. Concurrent calls for one channel share
// one read. Safe from any goroutine.
func (b *Broker) RemotePresence(ctx context.Context, channel string) ([]pubsub.NodePresence, error) {
	return b.presence.shared(ctx, flightKey{channel: channel})
}

var _ pubsub.PresenceCounter = (*Broker)(nil)

// RemotePresenceCounts implements pubsub.PresenceCounter: like
// RemotePresence, but the entries' client lists are skipped, not decoded.
// Safe from any goroutine.
func (b *Broker) RemotePresenceCounts(ctx context.Context, channel string) (clients, connections int, err error) {
	parts, err := b.presence.shared(ctx, flightKey{channel: channel, counts: true})
	for _, np := range parts {
		clients += np.Count
		connections += np.Connections
	}
	return clients, connections, err
}

// shared runs k's read, or joins the one in progress.
func (p *presence) shared(ctx context.Context, k flightKey) ([]pubsub.NodePresence, error) {
	p.flightMu.Lock()
	f := p.flights[k]
	if f == nil {
		f = &flight{done: make(chan struct{})}
		p.flights[k] = f
		go func() {
			f.parts, f.err = p.read(k.channel, k.counts)
			p.flightMu.Lock()
			delete(p.flights, k)
			p.flightMu.Unlock()
			close(f.done)
		}()
	}
	p.flightMu.Unlock()
	select {
	case <-f.done:
		return f.parts, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// read collects channel's entries of the other nodes. It has its own
// timeout: callers that joined the read must not depend on the first
// caller's context.
// With counts, Clients stays nil.
func (p *presence) read(channel string, counts bool) ([]pubsub.NodePresence, error) {
	ctx, cancel, err := p.b.usable(context.Background())
	if err != nil {
		return nil, err
	}
	defer cancel()
	p.flightMu.Lock()
	kv := p.readKV
	p.flightMu.Unlock()
	if kv == nil {
		if kv, err = p.open(ctx); err != nil {
			return nil, p.b.unavailable(err)
		}
		p.flightMu.Lock()
		p.readKV = kv
		p.flightMu.Unlock()
	}
	w, err := kv.Watch(ctx, channelKey(channel)+".*", jetstream.IgnoreDeletes())
	if err != nil {
		p.flightMu.Lock()
		p.readKV = nil // reopen next time: the bucket may have been recreated
		p.flightMu.Unlock()
		return nil, p.b.unavailable(fmt.Errorf("reading the presence of %q: %w", channel, err))
	}
	defer func() { _ = w.Stop() }()
	var parts []pubsub.NodePresence
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				return parts, nil // every current entry seen
			}
			np, err := decodeEntry(e.Value(), counts)
			if err != nil {
				p.b.log.Warn("presence: unreadable entry", "key", e.Key(), "err", err)
				continue
			}
			if np.Node != p.node && np.Connections > 0 {
				parts = append(parts, np)
			}
		case <-ctx.Done():
			return nil, p.b.unavailable(fmt.Errorf("reading the presence of %q: %w", channel, ctx.Err()))
		}
	}
}

// entryCounts is an entry without its client list: decoding into it skips
// the list's strings.
type entryCounts struct {
	Node        string `json:"node"`
	Count       int    `json:"count"`
	Connections int    `json:"connections"`
}

func decodeEntry(b []byte, counts bool) (pubsub.NodePresence, error) {
	if !counts {
		var np pubsub.NodePresence
		err := json.Unmarshal(b, &np)
		return np, err
	}
	var ec entryCounts
	err := json.Unmarshal(b, &ec)
	return pubsub.NodePresence{Node: ec.Node, Count: ec.Count, Connections: ec.Connections}, err
}

// validNodeID: the node ID is a key token (see channelKey).
func validNodeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// channelKey is channel's part of a key: KV keys allow letters, digits,
// '-', '_', '=', '/' and '.', so the name is base64url, like subjects.
func channelKey(channel string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(channel))
}

// open returns the bucket, creating it the first time; it reads the
// bucket's TTL, which decides the refresh period. Writer goroutine and
// readers both call it; the bucket handle is cached by the writer only.
func (p *presence) open(ctx context.Context) (jetstream.KeyValue, error) {
	js := p.b.js
	kv, err := js.KeyValue(ctx, p.bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		storage := jetstream.FileStorage
		if p.b.opts.MemoryStorage {
			storage = jetstream.MemoryStorage
		}
		kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: p.bucket, Description: "wsd presence: one entry per channel and node",
			History: 1, TTL: p.ttl, MaxValueSize: maxEntryBytes, Storage: storage, Replicas: p.b.opts.Replicas,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = js.KeyValue(ctx, p.bucket) // another node created it first
		}
	}
	if err != nil {
		return nil, fmt.Errorf("presence bucket %s: %w", p.bucket, err)
	}
	return kv, nil
}

// run is the writer: it writes dirty entries as soon as they change (a
// burst of changes while a write is in flight becomes one write) and
// rewrites every entry each refresh period.
func (p *presence) run() {
	defer close(p.done)
	every := p.ttl / 3
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			if !p.abandon.Load() {
				p.removeAll()
			}
			return
		case <-p.wake:
			p.flush()
		case <-tick.C:
			p.flush()
			p.refresh()
		}
		if p.kv != nil && p.kvTTL/3 != every {
			every = p.kvTTL / 3 // the bucket's TTL, which its creator chose, rules
			tick.Reset(every)
		}
	}
}

// writer ensures the bucket is open; false when it cannot be (NATS down):
// the work stays to do and the next tick retries.
func (p *presence) writer(ctx context.Context) bool {
	if p.kv != nil {
		return true
	}
	kv, err := p.open(ctx)
	if err != nil {
		p.b.log.Warn("presence: cannot open the bucket", "err", err)
		return false
	}
	st, err := kv.Status(ctx)
	if err != nil {
		p.b.log.Warn("presence: cannot read the bucket's status", "err", err)
		return false
	}
	if st.TTL() <= 0 {
		p.b.log.Warn("presence: the bucket has no TTL; a dead node's entries would stay", "bucket", p.bucket)
		return false
	}
	if st.TTL() != p.ttl {
		p.b.log.Info("presence: using the bucket's TTL", "bucket", p.bucket, "ttl", st.TTL(), "configured", p.ttl)
	}
	p.kv, p.kvTTL = kv, st.TTL()
	return true
}

// flush writes the entries of the channels marked dirty.
func (p *presence) flush() {
	p.mu.Lock()
	dirty := p.dirty
	if len(dirty) == 0 {
		p.mu.Unlock()
		return
	}
	p.dirty = map[string]struct{}{}
	p.mu.Unlock()

	srcp := p.src.Load()
	ctx, cancel, err := p.b.usable(context.Background())
	if err != nil || !p.writer(ctx) {
		cancel()
		p.redo(dirty)
		return
	}
	defer cancel()
	var ops []presenceOp
	for channel := range dirty {
		np := (*srcp)(channel, p.maxClients)
		if np.Connections == 0 {
			if _, ok := p.entries[channel]; ok {
				ops = append(ops, presenceOp{channel: channel})
			}
			continue
		}
		np.Node = p.node
		ops = append(ops, presenceOp{channel: channel, value: encodeEntry(np)})
	}
	if failed := p.write(ctx, ops); len(failed) > 0 {
		p.redo(failed)
	}
}

// refresh rewrites every entry, so none reaches the bucket's TTL while
// this node lives.
func (p *presence) refresh() {
	if failed := p.writeAll(false); len(failed) > 0 {
		p.redo(failed)
	}
}

// removeAll deletes this node's entries (a clean stop), within the
// broker's timeout; what it cannot delete expires with the TTL.
func (p *presence) removeAll() { p.writeAll(true) }

// writeAll writes (or deletes) every entry of this node and returns the
// channels whose write failed.
func (p *presence) writeAll(del bool) map[string]struct{} {
	if len(p.entries) == 0 {
		return nil
	}
	ctx, cancel, err := p.b.usable(context.Background())
	if err != nil || !p.writer(ctx) {
		cancel()
		return nil
	}
	defer cancel()
	ops := make([]presenceOp, 0, len(p.entries))
	for channel, v := range p.entries {
		if del {
			v = nil
		}
		ops = append(ops, presenceOp{channel: channel, value: v})
	}
	return p.write(ctx, ops)
}

// redo marks channels dirty again after a failed write; the next tick
// retries them (not at once: NATS is likely down).
func (p *presence) redo(channels map[string]struct{}) {
	p.mu.Lock()
	for c := range channels {
		p.dirty[c] = struct{}{}
	}
	p.mu.Unlock()
}

// presenceOp writes value as this node's entry for channel, or deletes it
// when value is nil.
type presenceOp struct {
	channel string
	value   []byte
}

// write sends ops in batches of asynchronous publishes and returns the
// channels whose write failed. p.entries follows what was written.
func (p *presence) write(ctx context.Context, ops []presenceOp) map[string]struct{} {
	failed := map[string]struct{}{}
	prefix := "$KV." + p.bucket + "."
	for len(ops) > 0 {
		batch := ops[:min(len(ops), presenceBatch)]
		ops = ops[len(batch):]
		futures := make([]jetstream.PubAckFuture, len(batch))
		for i, op := range batch {
			m := nats.NewMsg(prefix + channelKey(op.channel) + "." + p.node)
			if op.value == nil {
				m.Header.Set("KV-Operation", "DEL")
			} else {
				m.Data = op.value
			}
			f, err := p.b.js.PublishMsgAsync(m)
			if err != nil {
				failed[op.channel] = struct{}{}
				continue
			}
			futures[i] = f
		}
		for i, f := range futures {
			op := batch[i]
			if f == nil {
				continue
			}
			select {
			case <-f.Ok():
				if op.value == nil {
					delete(p.entries, op.channel)
				} else {
					p.entries[op.channel] = op.value
				}
			case err := <-f.Err():
				p.b.log.Warn("presence: write failed", "channel", op.channel, "err", err)
				failed[op.channel] = struct{}{}
				p.kv = nil // reopen next time: the bucket may be gone (NATS restarted without its store)
			case <-ctx.Done():
				failed[op.channel] = struct{}{}
			}
		}
	}
	return failed
}

// encodeEntry is np as JSON, no larger than maxEntryBytes: client IDs that
// do not fit are left out of the list (Count still counts them).
func encodeEntry(np pubsub.NodePresence) []byte {
	size := 128 + len(np.Node)
	for i, c := range np.Clients {
		size += len(c) + 8 // quotes, comma and room for escapes of short IDs
		if size > maxEntryBytes/2 {
			np.Clients = np.Clients[:i]
			break
		}
	}
	for {
		b, _ := json.Marshal(np) // strings and ints: never fails
		if len(b) <= maxEntryBytes || len(np.Clients) == 0 {
			return b
		}
		np.Clients = np.Clients[:len(np.Clients)/2] // IDs full of escapes: halve until it fits
	}
}

// close stops the writer, which deletes this node's entries first.
func (p *presence) close() {
	p.start.Do(func() { close(p.done) }) // never started: nothing to stop
	select {
	case <-p.done:
		return
	default:
	}
	close(p.stop)
	<-p.done
}
