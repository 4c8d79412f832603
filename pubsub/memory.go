package pubsub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"sync"
	"sync/atomic"
	"time"
)

// MemoryOptions configure a Memory broker. Zero values take the defaults
// given.
type MemoryOptions struct {
	// Now is the clock (history TTL, stream expiry); default time.Now.
	Now func() time.Time
	// StreamTTL is how long a channel's stream (offset, epoch, history)
	// outlives its last publication while no node subscribes to it; after
	// it the stream is forgotten and the next one starts with a new epoch.
	// Default 24 h.
	StreamTTL time.Duration
	// NewEpoch makes a new stream's epoch; default 8 random URL-safe
	// characters. Epochs of one channel must never repeat.
	NewEpoch func() string
}

// sweepEvery is how often Publish and Subscribe look for expired streams.
const sweepEvery = time.Minute

// Memory is the in-process Broker: every channel's stream lives in this
// process's memory, and a restart loses it (each channel then starts over
// with a new epoch). Create it with NewMemory.
type Memory struct {
	now       func() time.Time
	streamTTL time.Duration
	newEpoch  func() string

	handler atomic.Pointer[func(Publication)]

	mu        sync.RWMutex
	streams   map[string]*stream
	lastSweep time.Time // under mu

	entries atomic.Int64
	bytes   atomic.Int64

	users userSubs // server-side subscriptions (usersubs.go)
}

type stream struct {
	mu         sync.Mutex
	epoch      string
	offset     uint64
	hist       ring
	size       int
	ttl        time.Duration
	subscribed bool
	touched    time.Time // last publication or (un)subscription
	removed    bool      // dropped from the map: callers retry with a new stream
	keys       dedup     // idempotency keys of the last DedupWindow
}

var _ Broker = (*Memory)(nil)

// NewMemory returns an empty in-process broker.
func NewMemory(opts MemoryOptions) *Memory {
	m := &Memory{now: opts.Now, streamTTL: opts.StreamTTL, newEpoch: opts.NewEpoch, streams: map[string]*stream{}}
	if m.now == nil {
		m.now = time.Now
	}
	if m.streamTTL <= 0 {
		m.streamTTL = 24 * time.Hour
	}
	if m.newEpoch == nil {
		m.newEpoch = randomEpoch
	}
	m.lastSweep = m.now()
	return m
}

func randomEpoch() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// SetHandler implements Broker.
func (m *Memory) SetHandler(h func(Publication)) { m.handler.Store(&h) }

// lock returns channel's stream, locked, creating it when missing.
func (m *Memory) lock(channel string, now time.Time) *stream {
	for {
		m.mu.RLock()
		s := m.streams[channel]
		m.mu.RUnlock()
		if s == nil {
			m.mu.Lock()
			if s = m.streams[channel]; s == nil {
				s = &stream{epoch: m.newEpoch(), touched: now}
				m.streams[channel] = s
			}
			m.mu.Unlock()
		}
		s.mu.Lock()
		if !s.removed {
			return s
		}
		s.mu.Unlock()
	}
}

// Subscribe implements Broker.
func (m *Memory) Subscribe(channel string) error {
	now := m.now()
	m.maybeSweep(now)
	s := m.lock(channel, now)
	s.subscribed, s.touched = true, now
	s.mu.Unlock()
	return nil
}

// Unsubscribe implements Broker.
func (m *Memory) Unsubscribe(channel string) error {
	m.mu.RLock()
	s := m.streams[channel]
	m.mu.RUnlock()
	if s != nil {
		s.mu.Lock()
		s.subscribed, s.touched = false, m.now()
		s.mu.Unlock()
	}
	return nil
}

// Publish implements Broker. The handler runs before Publish returns, on
// the publisher's goroutine, under the channel's lock: publications of one
// channel reach it one at a time and in offset order.
func (m *Memory) Publish(ctx context.Context, channel string, data []byte, opts PublishOptions) (StreamPosition, error) {
	if err := ctx.Err(); err != nil {
		return StreamPosition{}, err
	}
	now := m.now()
	m.maybeSweep(now)
	s := m.lock(channel, now)
	defer s.mu.Unlock()
	if off, dup := s.keys.seen(opts.IdempotencyKey, now); dup {
		return StreamPosition{Offset: off, Epoch: s.epoch}, nil
	}
	s.offset++
	s.keys.add(opts.IdempotencyKey, s.offset, now)
	p := Publication{Channel: channel, Offset: s.offset, Epoch: s.epoch, Data: append([]byte(nil), data...), Time: now, Binary: opts.Binary}
	s.size, s.ttl, s.touched = opts.HistorySize, opts.HistoryTTL, now
	m.trim(s, now)
	if s.size > 0 {
		s.hist.push(p, s.size) // without the origin: replays go to everyone
		m.entries.Add(1)
		m.bytes.Add(int64(len(p.Data)))
	}
	if s.subscribed {
		if h := m.handler.Load(); h != nil {
			p.Origin = opts.Origin
			(*h)(p)
		}
	}
	return p.Position(), nil
}

// trim drops what the size and TTL no longer allow; room is left for one
// more publication.
func (m *Memory) trim(s *stream, now time.Time) {
	var n, b int64
	for s.hist.len() > 0 && (s.hist.len() >= s.size || s.ttl > 0 && now.Sub(s.hist.front().Time) >= s.ttl) {
		b += int64(s.hist.popFront())
		n++
	}
	if s.hist.len() == 0 {
		s.hist.reset()
	}
	if n > 0 {
		m.entries.Add(-n)
		m.bytes.Add(-b)
	}
}

// expire drops publications older than the TTL (not the size: trim makes
// room for a push, expire only reads).
func (m *Memory) expire(s *stream, now time.Time) {
	if s.ttl <= 0 {
		return
	}
	var n, b int64
	for s.hist.len() > 0 && now.Sub(s.hist.front().Time) >= s.ttl {
		b += int64(s.hist.popFront())
		n++
	}
	if s.hist.len() == 0 {
		s.hist.reset()
	}
	if n > 0 {
		m.entries.Add(-n)
		m.bytes.Add(-b)
	}
}

// History implements Broker.
func (m *Memory) History(ctx context.Context, channel string, opts HistoryOptions) ([]Publication, StreamPosition, error) {
	if err := ctx.Err(); err != nil {
		return nil, StreamPosition{}, err
	}
	now := m.now()
	s := m.lock(channel, now)
	defer s.mu.Unlock()
	m.expire(s, now)
	latest := StreamPosition{Offset: s.offset, Epoch: s.epoch}
	n := s.hist.len()
	if opts.Limit == 0 || n == 0 {
		return nil, latest, nil
	}
	first := s.hist.front().Offset
	from, to := 0, n // indexes into the ring
	if opts.Since != nil {
		if opts.Since.Epoch != s.epoch || opts.Since.Offset >= s.offset {
			return nil, latest, nil
		}
		if opts.Since.Offset >= first {
			from = int(opts.Since.Offset - first + 1)
		}
		if opts.Limit > 0 && to-from > opts.Limit {
			to = from + opts.Limit
		}
	} else if opts.Limit > 0 && n > opts.Limit {
		from = n - opts.Limit
	}
	out := make([]Publication, 0, to-from)
	for i := from; i < to; i++ {
		out = append(out, *s.hist.at(i))
	}
	return out, latest, nil
}

// maybeSweep forgets streams nobody subscribes to and nobody published to
// for StreamTTL, at most once per sweepEvery. Streams busy right now are
// skipped (they are not idle anyway).
func (m *Memory) maybeSweep(now time.Time) {
	m.mu.RLock()
	due := now.Sub(m.lastSweep) >= sweepEvery
	m.mu.RUnlock()
	if !due {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastSweep) < sweepEvery {
		return
	}
	m.lastSweep = now
	for name, s := range m.streams {
		if !s.mu.TryLock() {
			continue
		}
		m.expire(s, now)
		if !s.subscribed && now.Sub(s.touched) >= m.streamTTL {
			s.removed = true
			m.entries.Add(-int64(s.hist.len()))
			for s.hist.len() > 0 {
				m.bytes.Add(-int64(s.hist.popFront()))
			}
			s.hist.reset()
			delete(m.streams, name)
		}
		s.mu.Unlock()
	}
}

// MemoryStats are a Memory broker's gauges.
type MemoryStats struct {
	Streams        int   // channels with a stream (offset and epoch)
	HistoryEntries int64 // publications kept for recovery, all channels
	HistoryBytes   int64 // their data bytes
}

// Stats returns the current gauges. Safe from any goroutine.
func (m *Memory) Stats() MemoryStats {
	m.mu.RLock()
	n := len(m.streams)
	m.mu.RUnlock()
	return MemoryStats{Streams: n, HistoryEntries: m.entries.Load(), HistoryBytes: m.bytes.Load()}
}
