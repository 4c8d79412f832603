package client

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/wsdhq/wsd/codec"
)

const opText = codec.OpText

// Operation names of the /ws protocol.
const (
	opSubscribe   = "subscribe"
	opUnsubscribe = "unsubscribe"
	opPublish     = "publish"
	opPresence    = "presence"
)

// Position is a place in a channel's history: the offset of a publication
// and the epoch of the history it belongs to.
type Position struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// SubscribeResult is the server's answer to a subscribe.
type SubscribeResult struct {
	Epoch     string `json:"epoch"`
	Offset    uint64 `json:"offset"`    // the channel's latest offset
	Recovered bool   `json:"recovered"` // with since: every missed publication follows
}

// PublishResult is where a publication landed in its channel's history.
type PublishResult struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// PresenceResult is the server's answer to a presence request (the node's
// subscribers, or the whole cluster's with the NATS broker; see
// docs/protocol.md). Raw is the whole result as the server sent it, for
// fields this type does not know.
type PresenceResult struct {
	Channel     string          `json:"channel"`
	Clients     []string        `json:"clients"`     // distinct client IDs, sorted
	Count       int             `json:"count"`       // distinct clients (more than len(Clients) on a big cluster channel)
	Connections int             `json:"connections"` // subscriptions (a client may hold several)
	Raw         json.RawMessage `json:"-"`
}

// request is a client → server message.
type request struct {
	ID      uint64          `json:"id"`
	Op      string          `json:"op"`
	Channel string          `json:"channel"`
	Since   *Position       `json:"since,omitempty"`
	Data    json.RawMessage `json:"data,omitempty"`
	Method  string          `json:"method,omitempty"` // rpc
	Token   string          `json:"token,omitempty"`  // refresh (token.go)
	Server  bool            `json:"server,omitempty"` // subscribe: resume a server-side subscription (serversubs.go)
	Latest  bool            `json:"latest,omitempty"` // subscribe: the newest publication first (ops.go)
	Limit   *int            `json:"limit,omitempty"`  // history (ops.go)

	SkipSelf bool `json:"skip_self,omitempty"` // publish (ops.go)

	IdempotencyKey string `json:"idempotency_key,omitempty"` // publish (publish.go)

	binary []byte // PublishBinary's data: the request goes as a binary frame (binary.go)
}

// incoming is any server → client message: a reply (with id) or a push
// (with channel): a publication, a join or a leave.
type incoming struct {
	ID      *uint64         `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *ServerError    `json:"error"`
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	Data    json.RawMessage `json:"data"`
	Latest  bool            `json:"latest"` // the publication a subscribe with latest asked for
	Join    *member         `json:"join"`
	Leave   *member         `json:"leave"`
	Refresh *refreshNotice  `json:"refresh"` // token.go

	Subscribed   *subscribedInfo `json:"subscribed"`   // server-side subscription (serversubs.go)
	Unsubscribed *struct{}       `json:"unsubscribed"` // its end

	binary bool // a binary push: Data is raw bytes (binary.go)
}

// member is a join or leave push's subject.
type member struct {
	Client string `json:"client"`
}

// call is a request waiting for its reply.
type call struct {
	id      uint64
	op      string
	channel string
	gen     uint64     // the connection it was sent on
	done    chan reply // nil for subscribes and fire-and-forget requests
}

type reply struct {
	result json.RawMessage
	err    error
}

// subscription is the client's memory of one subscribed channel.
type subscription struct {
	channel string
	pos     Position // last delivered publication (or the latest at subscribe time)
	hasPos  bool
	gen     uint64     // connection the current subscribe was sent on; 0: not sent
	reqID   uint64     // id of the subscribe in flight; 0: none
	live    bool       // the subscribe on connection gen was answered
	resyncs int        // gap repairs since the last in-order publication
	early   []incoming // publications that came before the subscribe's answer
	token   string     // channel token sent with the subscribe (token_channel.go)
	server  bool       // made by the server (serversubs.go): resumed with "server":true
	latest  bool       // subscribe with "latest" while there is no position to resume from
	// latestDue: the subscribe on connection gen asked for the latest
	// publication, whose push (at the answer's offset) is still to come.
	latestDue bool
	// Skip-self publishes (ops.go): their offsets never arrive, so they
	// must not look like gaps. selfPending counts those in flight, skipped
	// holds the offsets they got (in pos's epoch), stash the pushes past a
	// gap that wait for them.
	selfPending int
	skipped     []uint64
	stash       []incoming
	stashGen    uint64

	first     chan struct{} // closed at the first answer (or failure)
	firstDone bool
	res       SubscribeResult
	err       error
}

func (s *subscription) fail(err error) {
	if !s.firstDone {
		s.firstDone, s.err = true, err
		close(s.first)
	}
}

func (s *subscription) succeed(r SubscribeResult) {
	if !s.firstDone {
		s.firstDone, s.res = true, r
		close(s.first)
	}
}

func (c *Client) newCallLocked(cn *conn, op, channel string, wait bool) *call {
	c.nextID++
	p := &call{id: c.nextID, op: op, channel: channel, gen: cn.gen}
	if wait {
		p.done = make(chan reply, 1)
	}
	c.pending[p.id] = p
	return p
}

func encode(r request) []byte {
	b, err := json.Marshal(r)
	if err != nil { // only Data can fail, and it was marshalled before
		panic(err)
	}
	return b
}

// subscribeFrameLocked registers a subscribe for s on cn and returns it.
func (c *Client) subscribeFrameLocked(cn *conn, s *subscription) []byte {
	p := c.newCallLocked(cn, opSubscribe, s.channel, false)
	s.gen, s.reqID, s.live, s.early = cn.gen, p.id, false, nil
	r := request{ID: p.id, Op: opSubscribe, Channel: s.channel, Token: s.token, Server: s.server}
	if s.hasPos {
		pos := s.pos
		r.Since = &pos
	}
	// With a position, the server recovers from it instead.
	r.Latest = s.latest && !s.hasPos
	s.latestDue = r.Latest
	return encode(r)
}

// unsubscribeFrameLocked registers an unsubscribe whose reply nobody waits for.
func (c *Client) unsubscribeFrameLocked(cn *conn, channel string) []byte {
	p := c.newCallLocked(cn, opUnsubscribe, channel, false)
	return encode(request{ID: p.id, Op: opUnsubscribe, Channel: channel})
}

// subscribeReplyLocked applies the answer to a subscribe.
func (c *Client) subscribeReplyLocked(cn *conn, p *call, result json.RawMessage, err error) [][]byte {
	s := c.subs[p.channel]
	if s == nil || s.reqID != p.id || s.gen != cn.gen {
		return nil // unsubscribed meanwhile (an unsubscribe follows it) or superseded
	}
	s.reqID = 0
	early := s.early
	s.early = nil
	var r SubscribeResult
	if err == nil {
		if jerr := json.Unmarshal(result, &r); jerr != nil {
			err = fmt.Errorf("wsd client: bad subscribe result: %w", jerr)
		}
	}
	if err != nil {
		delete(c.subs, s.channel)
		if serverSubEnded(s, err) {
			c.serverSubEventLocked(s.channel, false)
			return nil
		}
		if s.firstDone {
			c.asyncErrorLocked(&SubscriptionError{Channel: s.channel, Err: err})
		} else {
			s.fail(err)
		}
		return nil
	}
	s.live = true
	if !s.hasPos {
		s.pos, s.hasPos = Position{Offset: r.Offset, Epoch: r.Epoch}, true
		r.Recovered = false
	} else {
		r.Recovered = r.Recovered && r.Epoch == s.pos.Epoch && r.Offset >= s.pos.Offset
		if !r.Recovered {
			s.pos = Position{Offset: r.Offset, Epoch: r.Epoch}
		}
		if c.opts.OnRecover != nil {
			c.events.push(event{kind: evRecover, channel: s.channel, recovered: r.Recovered, epoch: r.Epoch})
		}
	}
	s.succeed(r)
	// Publications that overtook the answer (a server may replay before
	// answering) count only where they continue the sequence: the others
	// are older than the answer's position or will be replayed after it.
	for i := range early {
		if m := &early[i]; m.Epoch == s.pos.Epoch && m.Offset == s.pos.Offset+1 {
			c.deliverLocked(s, m)
		}
	}
	return nil
}

func (c *Client) deliverLocked(s *subscription, m *incoming) {
	s.pos = Position{Offset: m.Offset, Epoch: m.Epoch}
	s.resyncs, s.latestDue = 0, false
	switch {
	case m.binary:
		if c.opts.OnBinaryPublication != nil {
			c.events.push(event{kind: evBinaryPublication, channel: m.Channel, offset: m.Offset, epoch: m.Epoch, data: m.Data})
		}
	case c.opts.OnPublication != nil:
		c.events.push(event{kind: evPublication, channel: m.Channel, offset: m.Offset, epoch: m.Epoch, data: m.Data})
	}
}

// maxEarly bounds the publications kept while a subscribe is unanswered.
const maxEarly = 4096

// handlePublication delivers m exactly once and in order, on the run goroutine.
func (c *Client) handlePublication(cn *conn, m *incoming) {
	c.mu.Lock()
	s := c.subs[m.Channel]
	if s == nil || s.gen != cn.gen {
		c.mu.Unlock()
		return
	}
	if !s.live {
		if s.reqID != 0 && len(s.early) < maxEarly {
			s.early = append(s.early, *m)
		}
		c.mu.Unlock()
		return
	}
	frames := c.publicationLocked(cn, s, m)
	c.mu.Unlock()
	c.writeFrames(cn, frames)
}

// publicationLocked delivers m on live subscription s, or repairs a gap
// before it (the frames to send).
func (c *Client) publicationLocked(cn *conn, s *subscription, m *incoming) [][]byte {
	var frames [][]byte
	deliver := false
	if m.Epoch == s.pos.Epoch && m.Offset > s.pos.Offset+1 {
		c.skipOwnLocked(s) // maybe no gap: our own skip-self publications
		if m.Offset > s.pos.Offset+1 && s.selfPending > 0 && len(s.stash) < maxEarly {
			if len(s.stash) == 0 {
				s.stashGen = cn.gen
			}
			s.stash = append(s.stash, *m) // until the publish replies say
			return nil
		}
	}
	switch {
	case m.Epoch != s.pos.Epoch: // the history was reset under a live subscription
		c.recoverLostLocked(s, m.Epoch)
		s.skipped = nil
		deliver = true
	case m.Latest && s.latestDue && m.Offset == s.pos.Offset:
		// The latest publication is at the answer's offset, which the
		// answer made the position: delivered once, not taken as a repeat.
		deliver = true
	case m.Offset <= s.pos.Offset: // already delivered
	case m.Offset == s.pos.Offset+1:
		deliver = true
	case s.resyncs == 0: // a gap: ask the server to fill it
		s.resyncs++
		if !s.server { // a server-side one restarts in place: an unsubscribe would end it
			frames = append(frames, c.unsubscribeFrameLocked(cn, s.channel))
		}
		frames = append(frames, c.subscribeFrameLocked(cn, s))
	default: // the server could not fill it
		c.recoverLostLocked(s, m.Epoch)
		deliver = true
	}
	if deliver {
		c.deliverLocked(s, m)
	}
	return frames
}

// skipOwnLocked moves s's position over the offsets of its own skip-self
// publications that come next.
func (c *Client) skipOwnLocked(s *subscription) {
	for {
		i := slices.Index(s.skipped, s.pos.Offset+1)
		if i < 0 {
			break
		}
		s.pos.Offset++
		s.skipped = slices.Delete(s.skipped, i, i+1)
	}
	s.skipped = slices.DeleteFunc(s.skipped, func(o uint64) bool { return o <= s.pos.Offset })
}

// handleJoinLeave reports a join or leave on a channel this connection is
// subscribed to, on the run goroutine.
func (c *Client) handleJoinLeave(cn *conn, m *incoming) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s := c.subs[m.Channel]; s == nil || s.gen != cn.gen {
		return // unsubscribed meanwhile, or a former connection's
	}
	switch {
	case m.Join != nil && c.opts.OnJoin != nil:
		c.events.push(event{kind: evJoin, channel: m.Channel, client: m.Join.Client})
	case m.Leave != nil && c.opts.OnLeave != nil:
		c.events.push(event{kind: evLeave, channel: m.Channel, client: m.Leave.Client})
	}
}

func (c *Client) recoverLostLocked(s *subscription, epoch string) {
	if c.opts.OnRecover != nil {
		c.events.push(event{kind: evRecover, channel: s.channel, recovered: false, epoch: epoch})
	}
}

func (c *Client) asyncErrorLocked(err error) {
	if c.opts.OnError != nil {
		c.events.push(event{kind: evError, err: err})
	}
}

// Subscribe subscribes to channel and returns the server's answer. From
// then on every publication on channel goes to OnPublication, and the
// subscription survives reconnects (see the package documentation) until
// Unsubscribe or Close. Subscribing to a channel already subscribed returns
// the first answer again. If ctx ends first, the subscription is dropped.
func (c *Client) Subscribe(ctx context.Context, channel string) (SubscribeResult, error) {
	return c.subscribe(ctx, channel, SubscribeOptions{})
}

// SubscribeSince is Subscribe starting after a position the application
// kept (e.g. across restarts of the process): the server pushes the
// publications after since, and OnRecover reports whether it could.
func (c *Client) SubscribeSince(ctx context.Context, channel string, since Position) (SubscribeResult, error) {
	return c.subscribe(ctx, channel, SubscribeOptions{Since: &since})
}

func (c *Client) subscribe(ctx context.Context, channel string, o SubscribeOptions) (SubscribeResult, error) {
	if err := ctx.Err(); err != nil { // as in do: nothing is sent
		return SubscribeResult{}, err
	}
	since := o.Since
	token, err := c.channelToken(ctx, channel)
	if err != nil {
		return SubscribeResult{}, &RefreshError{err}
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return SubscribeResult{}, ErrClosed
	}
	s := c.subs[channel]
	created := s == nil
	if !created {
		s.server = false // the application's own from now on: kept if the backend ends it
	}
	var cn *conn
	var frame []byte
	if created {
		if c.cur == nil && c.opts.FailFast {
			c.mu.Unlock()
			return SubscribeResult{}, ErrNotConnected
		}
		s = &subscription{channel: channel, first: make(chan struct{}), token: token, latest: o.Latest}
		if since != nil {
			s.pos, s.hasPos = *since, true
		}
		c.subs[channel] = s
		if c.cur != nil {
			cn = c.cur
			frame = c.subscribeFrameLocked(cn, s)
		}
	}
	c.mu.Unlock()
	if frame != nil {
		_ = cn.write(opText, frame) // on failure it is sent again on the next connection
	}
	select {
	case <-s.first:
		return s.res, s.err
	case <-ctx.Done():
	}
	if !created {
		return SubscribeResult{}, ctx.Err()
	}
	// Give up, unless the answer came meanwhile.
	c.mu.Lock()
	if s.firstDone {
		c.mu.Unlock()
		return s.res, s.err
	}
	s.fail(ctx.Err())
	if c.subs[channel] == s {
		delete(c.subs, channel)
		if c.cur != nil && s.gen == c.cur.gen {
			cn, frame = c.cur, c.unsubscribeFrameLocked(c.cur, channel)
		}
	}
	c.mu.Unlock()
	if frame != nil {
		_ = cn.write(opText, frame)
	}
	return SubscribeResult{}, ctx.Err()
}

// Unsubscribe ends the subscription to channel: no publication of it
// received after Unsubscribe starts is delivered (ones already queued for
// OnPublication still are). It waits for the server's reply when
// connected (bounded by ctx); while disconnected there is nothing to tell
// the server and it returns at once. Unsubscribing from a channel not
// subscribed is not an error.
func (c *Client) Unsubscribe(ctx context.Context, channel string) error {
	c.mu.Lock()
	s := c.subs[channel]
	if s == nil {
		c.mu.Unlock()
		return nil
	}
	delete(c.subs, channel)
	s.fail(ErrUnsubscribed)
	cn := c.cur
	if cn == nil || s.gen != cn.gen {
		c.mu.Unlock()
		return nil
	}
	p := c.newCallLocked(cn, opUnsubscribe, channel, true)
	frame := encode(request{ID: p.id, Op: opUnsubscribe, Channel: channel})
	c.mu.Unlock()
	if err := cn.write(opText, frame); err != nil {
		c.forget(p.id)
		return nil // the connection is gone, and the subscription with it
	}
	select {
	case r := <-p.done:
		if r.err == ErrConnectionLost || r.err == ErrClosed {
			return nil
		}
		return r.err
	case <-ctx.Done():
		c.forget(p.id)
		return ctx.Err()
	}
}

// Publish publishes data (marshalled with encoding/json; pass a
// json.RawMessage for JSON already encoded) to channel and returns where it
// landed. It is made exactly once even when the connection drops before
// the reply: the client sends it again, with the same idempotency key, on
// the next connection (publish.go). While disconnected it waits for a
// connection (bounded by ctx and Options.MaxQueuedPublishes) unless
// FailFast. Safe from any goroutine; publications of one goroutine keep
// their order.
func (c *Client) Publish(ctx context.Context, channel string, data any) (PublishResult, error) {
	return c.PublishWith(ctx, channel, data, PublishOptions{})
}

// PublishWith is Publish with options (see PublishOptions).
func (c *Client) PublishWith(ctx context.Context, channel string, data any, o PublishOptions) (PublishResult, error) {
	b, err := json.Marshal(data)
	if err != nil {
		return PublishResult{}, fmt.Errorf("wsd client: encoding the publication: %w", err)
	}
	var s *subscription
	if o.SkipSelf {
		s = c.selfPublishing(channel)
	}
	res, err := c.publishRetrying(ctx, request{Op: opPublish, Channel: channel, Data: b, SkipSelf: o.SkipSelf, IdempotencyKey: o.IdempotencyKey})
	var r PublishResult
	if err == nil {
		if jerr := json.Unmarshal(res, &r); jerr != nil {
			err = fmt.Errorf("wsd client: bad publish result: %w", jerr)
		}
	}
	if s != nil {
		c.selfPublished(channel, s, r, err)
	}
	if err != nil {
		return PublishResult{}, err
	}
	return r, nil
}

// Presence asks who is subscribed to channel.
func (c *Client) Presence(ctx context.Context, channel string) (PresenceResult, error) {
	res, err := c.request(ctx, opPresence, channel, nil)
	if err != nil {
		return PresenceResult{}, err
	}
	var r PresenceResult
	if err := json.Unmarshal(res, &r); err != nil {
		return PresenceResult{}, fmt.Errorf("wsd client: bad presence result: %w", err)
	}
	if r.Count == 0 {
		r.Count = len(r.Clients)
	}
	r.Raw = res
	return r, nil
}

// request sends a request and waits for its reply.
func (c *Client) request(ctx context.Context, op, channel string, data json.RawMessage) (json.RawMessage, error) {
	return c.do(ctx, request{Op: op, Channel: channel, Data: data})
}

// do sends r with a fresh id and waits for its reply. A context that
// already ended sends nothing: once sent, the reply and ctx.Done() race.
func (c *Client) do(ctx context.Context, r request) (json.RawMessage, error) {
	op, channel := r.Op, r.Channel
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cn, err := c.waitConn(ctx)
		if err != nil {
			return nil, err
		}
		c.mu.Lock()
		if c.closing {
			c.mu.Unlock()
			return nil, ErrClosed
		}
		if c.cur != cn { // it dropped meanwhile
			c.mu.Unlock()
			continue
		}
		p := c.newCallLocked(cn, op, channel, true)
		c.mu.Unlock()
		r.ID = p.id
		if err := cn.write(r.frame()); err != nil {
			c.forget(p.id)
			return nil, fmt.Errorf("%w: %v", ErrConnectionLost, err)
		}
		select {
		case r := <-p.done:
			return r.result, r.err
		case <-ctx.Done():
			c.forget(p.id)
			return nil, ctx.Err()
		}
	}
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}
