package pubsub

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/wsdhq/wsd/internal/wire"
)

// Subscriber receives a channel's publications, each encoded once per
// publication and shared by every subscriber (never modify a frame).
// Deliver is called from the publisher's goroutine (or the broker's) while
// the channel is locked: it must not block and must not call the Hub about
// the same channel. For one subscription, frames arrive one at a time, in
// offset order, each once.
type Subscriber[F any] interface {
	Deliver(frame F)
}

// HubOptions configure a Hub.
type HubOptions[F any] struct {
	// Encode turns a push (the JSON of AppendPush, in a new slice that
	// Encode may keep) into the value every subscriber's Deliver gets,
	// e.g. func(b []byte) *server.Prepared { return srv.Prepare(server.Text, b) }.
	// Required.
	Encode func(push []byte) F
	// EncodeBinary, if set, turns the push of a binary publication (the
	// bytes of AppendBinaryPush, in a new slice it may keep) into a frame,
	// e.g. a binary WebSocket frame. When nil, Encode gets those pushes
	// too (they start with BinaryPushKind, a JSON push with '{').
	EncodeBinary func(push []byte) F
	// Namespaces maps namespace names to their options ("" = default).
	Namespaces Namespaces
	// StrictNamespaces refuses channels of namespaces not in Namespaces
	// (ErrUnknownNamespace); otherwise they get the default namespace's
	// options.
	StrictNamespaces bool
}

// Hub is a node's pub/sub front: it keeps this process's subscriptions,
// fans each publication out to them (encoded once), tracks presence, and
// replays missed publications on subscribe. Publications flow through the
// Broker. Create it with NewHub; it needs no closing. All methods are safe
// for concurrent use.
type Hub[F any] struct {
	broker   Broker
	presence PresenceStore // the broker's, when it shares presence; else nil
	bus      JoinLeaveBus  // the broker's, when it carries joins and leaves and a namespace uses them; else nil
	enc      func([]byte) F
	tag      string // this hub's random prefix of publication origins
	encBin   func([]byte) F
	ns       Namespaces
	strict   bool

	seed     maphash.Seed
	subLocks [64]sync.Mutex // serialise broker (un)subscription per channel name

	mu    sync.RWMutex
	chans map[string]*channel[F] // channels with local subscriptions

	published, fanouts, deliveries, encodes atomic.Uint64
	recovered, notRecovered, replayed       atomic.Uint64
	joinLeaves, joinLeaveCapped             atomic.Uint64
	subscriptions                           atomic.Int64
}

type channel[F any] struct {
	name         string
	refs         int  // subscriptions, pending ones included; under Hub.mu
	brokerSub    bool // under the name's subLock
	busSub       bool // subscribed to the bus's join/leave events; under the name's subLock
	joinLeave    bool // the namespace pushes joins and leaves (set at creation)
	joinLeaveMax int
	count        atomic.Int64

	mu      sync.Mutex
	subs    []*Subscription[F]
	clients map[string]int      // client ID → subscriptions; presence only
	remote  map[string][]string // client ID → the other nodes holding it, as their events said; join/leave only
}

// Subscription is one subscriber's membership in one channel.
type Subscription[F any] struct {
	hub     *Hub[F]
	ch      *channel[F]
	sub     Subscriber[F]
	client  string
	origin  string // SubscribeOptions.Origin
	idx     int    // in ch.subs; -1 once removed; under ch.mu
	pending bool   // subscribing: live frames are held in held
	held    []heldFrame[F]
}

type heldFrame[F any] struct {
	pos   StreamPosition
	frame F
}

// NewHub returns a hub on b and registers itself as b's handler.
func NewHub[F any](b Broker, opts HubOptions[F]) (*Hub[F], error) {
	if opts.Encode == nil {
		return nil, errorString("pubsub: HubOptions.Encode is required")
	}
	if err := opts.Namespaces.Validate(); err != nil {
		return nil, err
	}
	encBin := opts.EncodeBinary
	if encBin == nil {
		encBin = opts.Encode
	}
	h := &Hub[F]{broker: b, enc: opts.Encode, encBin: encBin, tag: randomEpoch(), ns: opts.Namespaces, strict: opts.StrictNamespaces,
		seed: maphash.MakeSeed(), chans: map[string]*channel[F]{}}
	b.SetHandler(h.handle)
	if ps, ok := b.(PresenceStore); ok {
		h.presence = ps
		ps.SetPresenceSource(h.localPresence)
	}
	if bus, ok := b.(JoinLeaveBus); ok && opts.Namespaces.joinLeaveOn() {
		h.bus = bus
		bus.SetJoinLeaveHandler(h.remoteJoinLeave, h.nodeGone)
	}
	return h, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

// Broker returns the hub's broker.
func (h *Hub[F]) Broker() Broker { return h.broker }

// Namespace returns the options that apply to channel.
func (h *Hub[F]) Namespace(channel string) (NamespaceOptions, error) {
	if !ValidChannel(channel) {
		return NamespaceOptions{}, ErrBadChannel
	}
	ns := NamespaceOf(channel)
	o, ok := h.ns[ns]
	if !ok {
		if ns != "" && h.strict {
			return NamespaceOptions{}, ErrUnknownNamespace
		}
		o = h.ns[""]
	}
	return o, nil
}

// Publish publishes data (JSON; not retained) to channel with the
// channel's namespace settings and returns its position. Local subscribers
// of channel receive it before Publish returns when the broker is Memory.
// Permission checks (NamespaceOptions.Publish) are the caller's: the hub
// publishes whatever it is asked to.
func (h *Hub[F]) Publish(ctx context.Context, channel string, data []byte) (StreamPosition, error) {
	return h.PublishWith(ctx, channel, data, PublishParams{})
}

// PublishParams are a publisher's options for one publication.
type PublishParams struct {
	// Origin is set by a publisher that does not want its own copy
	// (skip-self): the subscriptions on this hub whose
	// SubscribeOptions.Origin is Origin do not receive the publication
	// live; every other subscription, on any node, does. Recoveries replay
	// it to everyone (history does not keep the origin).
	Origin string
	// IdempotencyKey makes a retry safe (PublishOptions.IdempotencyKey):
	// a second publication with the key within DedupWindow is not made,
	// and its position is the first one's.
	IdempotencyKey string
	// Binary marks data as raw bytes, not JSON (not checked): subscribers
	// get a binary push (AppendBinaryPush), encoded once with
	// HubOptions.EncodeBinary.
	Binary bool
}

// PublishBinary publishes data (raw bytes, any content; not retained) to
// channel like Publish, marked binary (PublishParams.Binary).
func (h *Hub[F]) PublishBinary(ctx context.Context, channel string, data []byte) (StreamPosition, error) {
	return h.PublishWith(ctx, channel, data, PublishParams{Binary: true})
}

// PublishWith is Publish with the publisher's options.
func (h *Hub[F]) PublishWith(ctx context.Context, channel string, data []byte, p PublishParams) (StreamPosition, error) {
	o, err := h.Namespace(channel)
	if err != nil {
		return StreamPosition{}, err
	}
	if !p.Binary && !json.Valid(data) {
		return StreamPosition{}, ErrBadData
	}
	popts := PublishOptions{HistorySize: o.HistorySize, HistoryTTL: o.HistoryTTL, IdempotencyKey: p.IdempotencyKey, Binary: p.Binary}
	if p.Origin != "" {
		popts.Origin = h.tag + "/" + p.Origin // unique in the cluster: the tag is this hub's
	}
	pos, err := h.broker.Publish(ctx, channel, data, popts)
	if err == nil {
		h.published.Add(1)
	}
	return pos, err
}

// History returns up to limit of channel's newest kept publications (all
// of them when limit < 0), oldest first, and the latest position.
func (h *Hub[F]) History(ctx context.Context, channel string, limit int) ([]Publication, StreamPosition, error) {
	if !ValidChannel(channel) {
		return nil, StreamPosition{}, ErrBadChannel
	}
	return h.broker.History(ctx, channel, HistoryOptions{Limit: limit})
}

// SubscribeOptions are a subscription's details.
type SubscribeOptions struct {
	// ClientID names the subscriber in presence (several subscriptions may
	// share one: a user with two tabs).
	ClientID string
	// Since asks for the publications after this position (recovery).
	Since *StreamPosition
	// Origin names the subscriber as a publisher for skip-self (see
	// PublishWith), e.g. a connection's ID; it needs to be unique on this
	// hub only. "" never matches.
	Origin string
	// Latest asks for the channel's newest publication, if history still
	// keeps it: it is delivered right after OnSubscribed, before any live
	// frame, encoded with AppendLatestPush. Ignored with Since (recovery
	// delivers what was missed instead).
	Latest bool
	// OnSubscribed, if set, is called once the subscription is in place,
	// before the first frame (replayed or live) is delivered, under the
	// channel's lock (same rules as Deliver). A protocol sends its
	// subscribe reply here so that the reply precedes every push.
	OnSubscribed func(SubscribeResult)
}

// SubscribeResult tells where a new subscription starts.
type SubscribeResult struct {
	// Position is the channel's latest position when the subscription
	// started: live frames are those after it.
	Position StreamPosition
	// Recovered is true when Since was given, its epoch is the stream's
	// current one, and every publication after it was still kept: they
	// are delivered (Replayed of them) before any live one. When false,
	// nothing is replayed: the subscriber missed publications it cannot
	// get from here (or asked for none).
	Recovered bool
	Replayed  int
	// Latest is true when the newest publication (at Position) was
	// delivered for SubscribeOptions.Latest.
	Latest bool
}

// Subscribe adds sub to channel. With opts.Since it first delivers the
// publications sub missed, if they can all be recovered (see
// SubscribeResult.Recovered), then live ones: each exactly once, in
// order, even while others publish concurrently. A subscriber may hold
// several subscriptions, to different channels or the same one.
func (h *Hub[F]) Subscribe(ctx context.Context, channel string, sub Subscriber[F], opts SubscribeOptions) (*Subscription[F], SubscribeResult, error) {
	o, err := h.Namespace(channel)
	if err != nil {
		return nil, SubscribeResult{}, err
	}
	ch, err := h.acquire(channel, o)
	if err != nil {
		return nil, SubscribeResult{}, err
	}
	s := &Subscription[F]{hub: h, ch: ch, sub: sub, client: opts.ClientID, origin: opts.Origin, pending: true}
	ch.mu.Lock()
	s.idx = len(ch.subs)
	ch.subs = append(ch.subs, s)
	ch.count.Add(1)
	tracked := ch.clients != nil
	if tracked {
		if ch.clients[s.client]++; ch.clients[s.client] == 1 && ch.joinLeave {
			h.localJoinLeaveLocked(ch, s.client, true)
		}
	}
	ch.mu.Unlock()
	h.subscriptions.Add(1)
	if tracked {
		h.presenceChanged(ch.name)
	}

	// The subscription now holds every live frame; the history read below
	// says where live begins, and held frames up to there are dropped.
	hopts := HistoryOptions{}
	if opts.Since != nil {
		hopts = HistoryOptions{Since: opts.Since, Limit: -1}
	} else if opts.Latest {
		hopts.Limit = 1
	}
	pubs, latest, err := h.broker.History(ctx, channel, hopts)
	if err != nil {
		s.Unsubscribe()
		return nil, SubscribeResult{}, err
	}
	res := SubscribeResult{Position: latest}
	var newest *Publication
	if opts.Since == nil && len(pubs) == 1 && pubs[0].Offset == latest.Offset {
		newest, res.Latest = &pubs[0], true
	}
	if since := opts.Since; since != nil {
		res.Recovered = recoverable(*since, latest, pubs)
		if res.Recovered {
			res.Replayed = len(pubs)
			h.recovered.Add(1)
			h.replayed.Add(uint64(len(pubs)))
		} else {
			h.notRecovered.Add(1)
		}
	}

	ch.mu.Lock()
	defer ch.mu.Unlock()
	if s.idx < 0 {
		return nil, res, ErrUnsubscribed
	}
	if opts.OnSubscribed != nil {
		opts.OnSubscribed(res)
	}
	n := 0
	if newest != nil {
		// Its own encoding (marked), for this subscriber only. Held frames
		// are after latest, so it is never delivered twice.
		h.encodes.Add(1)
		if newest.Binary {
			b := AppendBinaryPush(make([]byte, 0, BinaryPushSize(newest)), newest)
			b[0] = wire.LatestPushKind
			sub.Deliver(h.encBin(b))
		} else {
			sub.Deliver(h.enc(AppendLatestPush(make([]byte, 0, PushSize(newest)+len(latestMark)), newest)))
		}
		n++
	}
	if res.Recovered {
		for i := range pubs {
			sub.Deliver(h.encode(&pubs[i]))
			n++
		}
	}
	for _, f := range s.held {
		if f.pos.Epoch != latest.Epoch || f.pos.Offset > latest.Offset {
			sub.Deliver(f.frame)
			n++
		}
	}
	s.held, s.pending = nil, false
	h.deliveries.Add(uint64(n))
	return s, res, nil
}

// recoverable reports whether pubs are exactly the publications after since
// up to latest.
func recoverable(since, latest StreamPosition, pubs []Publication) bool {
	if since.Epoch != latest.Epoch || since.Offset > latest.Offset {
		return false
	}
	missed := latest.Offset - since.Offset
	if uint64(len(pubs)) != missed {
		return false
	}
	return missed == 0 || pubs[0].Offset == since.Offset+1 && pubs[len(pubs)-1].Offset == latest.Offset
}

// Channel returns the subscription's channel.
func (s *Subscription[F]) Channel() string { return s.ch.name }

// Unsubscribe ends the subscription: no frame is delivered after it
// returns. Later calls do nothing. It must not be called from Deliver or
// OnSubscribed.
func (s *Subscription[F]) Unsubscribe() {
	h, ch := s.hub, s.ch
	ch.mu.Lock()
	if s.idx < 0 {
		ch.mu.Unlock()
		return
	}
	last := len(ch.subs) - 1
	if s.idx != last {
		moved := ch.subs[last]
		ch.subs[s.idx], moved.idx = moved, s.idx
	}
	ch.subs[last] = nil
	ch.subs = ch.subs[:last]
	if len(ch.subs) == 0 {
		ch.subs = nil
	}
	s.idx, s.held = -1, nil
	ch.count.Add(-1)
	tracked := ch.clients != nil
	if tracked {
		if ch.clients[s.client]--; ch.clients[s.client] <= 0 {
			delete(ch.clients, s.client)
			if ch.joinLeave {
				h.localJoinLeaveLocked(ch, s.client, false)
			}
		}
	}
	ch.mu.Unlock()
	h.subscriptions.Add(-1)
	h.release(ch)
	if tracked {
		h.presenceChanged(ch.name)
	}
}

// presenceChanged tells a cluster presence store; called after the change,
// without locks, so the store's next read of the source sees it.
func (h *Hub[F]) presenceChanged(channel string) {
	if h.presence != nil {
		h.presence.PresenceChanged(channel)
	}
}

func (h *Hub[F]) subLock(name string) *sync.Mutex {
	return &h.subLocks[maphash.String(h.seed, name)%uint64(len(h.subLocks))]
}

// acquire returns name's channel with one more reference, subscribing the
// broker (and the join/leave bus) when it is the first.
func (h *Hub[F]) acquire(name string, o NamespaceOptions) (*channel[F], error) {
	l := h.subLock(name)
	l.Lock()
	defer l.Unlock()
	h.mu.Lock()
	ch := h.chans[name]
	if ch == nil {
		ch = &channel[F]{name: name}
		if o.Presence {
			ch.clients = map[string]int{}
		}
		if o.JoinLeave && o.Presence {
			ch.joinLeave, ch.joinLeaveMax, ch.remote = true, o.JoinLeaveMax, map[string][]string{}
		}
		h.chans[name] = ch
	}
	ch.refs++
	h.mu.Unlock()
	if err := h.subscribeLocked(ch); err != nil {
		h.mu.Lock()
		if ch.refs--; ch.refs == 0 {
			delete(h.chans, name)
		}
		h.mu.Unlock()
		h.unsubscribeLocked(ch)
		return nil, err
	}
	return ch, nil
}

// subscribeLocked subscribes the broker and the bus to ch where not yet
// done. The name's subLock held.
func (h *Hub[F]) subscribeLocked(ch *channel[F]) error {
	if !ch.brokerSub {
		if err := h.broker.Subscribe(ch.name); err != nil {
			return err
		}
		ch.brokerSub = true
	}
	if ch.joinLeave && h.bus != nil && !ch.busSub {
		if err := h.bus.SubscribeJoinLeave(ch.name); err != nil {
			return err
		}
		ch.busSub = true
	}
	return nil
}

// unsubscribeLocked undoes subscribeLocked when ch has no reference left.
// The name's subLock held.
func (h *Hub[F]) unsubscribeLocked(ch *channel[F]) {
	h.mu.RLock()
	used := ch.refs > 0
	h.mu.RUnlock()
	if used {
		return
	}
	// Failures are the broker's own problem to log: nothing to do here.
	if ch.brokerSub {
		ch.brokerSub = false
		_ = h.broker.Unsubscribe(ch.name)
	}
	if ch.busSub {
		ch.busSub = false
		_ = h.bus.UnsubscribeJoinLeave(ch.name)
	}
}

// release drops a reference; the last one unsubscribes the broker.
func (h *Hub[F]) release(ch *channel[F]) {
	l := h.subLock(ch.name)
	l.Lock()
	defer l.Unlock()
	h.mu.Lock()
	if ch.refs--; ch.refs == 0 {
		delete(h.chans, ch.name)
	}
	h.mu.Unlock()
	h.unsubscribeLocked(ch)
}

// handle is the broker's handler: one encoding, every local subscriber.
func (h *Hub[F]) handle(p Publication) {
	h.mu.RLock()
	ch := h.chans[p.Channel]
	h.mu.RUnlock()
	if ch == nil || ch.count.Load() == 0 {
		return
	}
	frame := h.encode(&p)
	self, skip := h.localOrigin(p.Origin)
	ch.mu.Lock()
	n := 0
	for _, s := range ch.subs {
		if skip && s.origin == self {
			continue // the publisher asked not to get its own copy
		}
		if s.pending {
			s.held = append(s.held, heldFrame[F]{pos: p.Position(), frame: frame})
			continue
		}
		s.sub.Deliver(frame)
		n++
	}
	ch.mu.Unlock()
	h.fanouts.Add(1)
	h.deliveries.Add(uint64(n))
}

// localOrigin returns the part of origin that PublishWith was given as Origin, when
// origin was made by this hub (without allocating); skip is false
// otherwise.
func (h *Hub[F]) localOrigin(origin string) (self string, skip bool) {
	if len(origin) <= len(h.tag)+1 || origin[len(h.tag)] != '/' || origin[:len(h.tag)] != h.tag {
		return "", false
	}
	return origin[len(h.tag)+1:], true
}

func (h *Hub[F]) encode(p *Publication) F {
	h.encodes.Add(1)
	if p.Binary {
		return h.encBin(AppendBinaryPush(make([]byte, 0, BinaryPushSize(p)), p))
	}
	return h.enc(AppendPush(make([]byte, 0, PushSize(p)), p))
}

// Presence is who is subscribed to a channel: on this node, or on every
// node when the broker is a PresenceStore.
type Presence struct {
	Clients     []string `json:"clients"`     // distinct client IDs, sorted
	Count       int      `json:"count"`       // distinct clients: len(Clients), more when another node's list was cut
	Connections int      `json:"connections"` // subscriptions (a client may hold several)
}

// Presence returns channel's subscribers: this node's, merged with the
// other nodes' when the broker is a PresenceStore (a failure to read them
// is returned, never a silently partial answer). It fails with
// ErrPresenceDisabled when the channel's namespace does not track it.
func (h *Hub[F]) Presence(ctx context.Context, channel string) (Presence, error) {
	o, err := h.Namespace(channel)
	if err != nil {
		return Presence{}, err
	}
	if !o.Presence {
		return Presence{}, ErrPresenceDisabled
	}
	local := h.localPresence(channel, -1)
	if h.presence == nil {
		return Presence{Clients: local.Clients, Count: local.Count, Connections: local.Connections}, nil
	}
	remote, err := h.presence.RemotePresence(ctx, channel)
	if err != nil {
		return Presence{}, err
	}
	return mergePresence(local, remote), nil
}

// ChannelInfo is one channel with subscribers on this node.
type ChannelInfo struct {
	Channel     string `json:"channel"`
	Subscribers int    `json:"subscribers"`
}

// Channels lists the channels with subscribers on this node, by name.
func (h *Hub[F]) Channels() []ChannelInfo {
	h.mu.RLock()
	out := make([]ChannelInfo, 0, len(h.chans))
	for name, ch := range h.chans {
		if n := ch.count.Load(); n > 0 {
			out = append(out, ChannelInfo{Channel: name, Subscribers: int(n)})
		}
	}
	h.mu.RUnlock()
	slices.SortFunc(out, func(a, b ChannelInfo) int {
		switch {
		case a.Channel < b.Channel:
			return -1
		case a.Channel > b.Channel:
			return 1
		}
		return 0
	})
	return out
}

// Subscribers returns how many subscriptions channel has on this node.
func (h *Hub[F]) Subscribers(channel string) int {
	h.mu.RLock()
	ch := h.chans[channel]
	h.mu.RUnlock()
	if ch == nil {
		return 0
	}
	return int(ch.count.Load())
}

// HubStats are a hub's counters (since NewHub) and gauges, for metrics.
type HubStats struct {
	Published     uint64 // publications accepted by Publish
	Fanouts       uint64 // publications delivered to this node's subscribers
	Deliveries    uint64 // frames handed to subscribers (live and replayed)
	Encodes       uint64 // pushes encoded (one per fan-out, one per replayed publication)
	Recovered     uint64 // subscriptions with Since that recovered
	NotRecovered  uint64 // subscriptions with Since that could not
	Replayed      uint64 // publications replayed by recoveries
	JoinLeaves    uint64 // join and leave pushes fanned out to this node's subscribers (each encoded once)
	JoinLeaveCap  uint64 // joins and leaves not pushed: the channel was over its namespace's join_leave_max here
	Subscriptions int64  // current subscriptions
	Channels      int    // current channels with subscriptions
}

// Stats returns the hub's counters. Safe from any goroutine.
func (h *Hub[F]) Stats() HubStats {
	h.mu.RLock()
	n := len(h.chans)
	h.mu.RUnlock()
	return HubStats{
		Published: h.published.Load(), Fanouts: h.fanouts.Load(), Deliveries: h.deliveries.Load(),
		Encodes: h.encodes.Load(), Recovered: h.recovered.Load(), NotRecovered: h.notRecovered.Load(),
		Replayed: h.replayed.Load(), JoinLeaves: h.joinLeaves.Load(), JoinLeaveCap: h.joinLeaveCapped.Load(), Subscriptions: h.subscriptions.Load(), Channels: n,
	}
}
