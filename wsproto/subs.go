package wsproto

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
)

// A session's subscriptions: a subscribe proxy's answer arrives off the
// handler's callbacks, so unlike the rest of the session they are guarded
// by session.subsMu. A channel whose subscribe is under way (reserved,
// counted) maps to nil.

// reserve marks channel as being subscribed, or says why it cannot be.
func (s *session) reserve(channel string, max int) *Error {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if _, ok := s.subs[channel]; ok {
		return &Error{CodeAlreadySubscribed, "already subscribed to " + channel}
	}
	if len(s.subs) >= max {
		return &Error{CodeTooManySubs, fmt.Sprintf("at most %d subscriptions per connection", max)}
	}
	if s.subs == nil {
		s.subs = map[string]*pubsub.Subscription[*server.Prepared]{}
	}
	s.subs[channel] = nil
	return nil
}

// commit turns a reservation into sub (nil: the subscribe failed). It
// reports false when the connection closed meanwhile: the caller undoes
// sub.
func (s *session) commit(channel string, sub *pubsub.Subscription[*server.Prepared]) bool {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	if sub == nil || s.closed {
		delete(s.subs, channel)
		return sub == nil
	}
	s.subs[channel] = sub
	return true
}

func (s *session) subscribed(channel string) bool {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	return s.subs[channel] != nil
}

// take removes and returns channel's subscription (nil if none, or if its
// subscribe is still under way: that one stays reserved).
func (s *session) take(channel string) *pubsub.Subscription[*server.Prepared] {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	sub := s.subs[channel]
	if sub != nil {
		delete(s.subs, channel)
	}
	return sub
}

// closeSubs marks the session closed and returns its subscriptions (not
// the ones under way: commit undoes those).
func (s *session) closeSubs() []*pubsub.Subscription[*server.Prepared] {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	subs := make([]*pubsub.Subscription[*server.Prepared], 0, len(s.subs))
	for _, sub := range s.subs {
		if sub != nil {
			subs = append(subs, sub)
		}
	}
	s.subs, s.closed = nil, true
	return subs
}

// subscribeNow makes a reserved subscription and replies. Safe from any
// goroutine (the subscribe proxy calls it when the backend allows).
// With latest (and no since), the channel's newest kept publication
// follows the reply, marked "latest":true.
func (h *Handler) subscribeNow(c *server.Conn[Session], id json.RawMessage, channel string, since *pubsub.StreamPosition, latest bool) {
	s := c.Value.s
	sub, _, err := h.hub.Subscribe(context.Background(), channel, s, pubsub.SubscribeOptions{
		ClientID: s.clientID,
		Origin:   originOf(c),
		Since:    since,
		Latest:   latest,
		OnSubscribed: func(r pubsub.SubscribeResult) {
			// Under the channel's lock: the reply is queued before any push.
			h.reply(c, id, SubscribeResult{Epoch: r.Position.Epoch, Offset: r.Position.Offset, Recovered: r.Recovered})
		},
	})
	if err != nil {
		s.commit(channel, nil)
		h.fail(c, id, errorFor(err))
		return
	}
	if !s.commit(channel, sub) {
		sub.Unsubscribe()
	}
}

// originOf names c as a publisher for skip-self: its ID, unique on this
// server (the hub makes it unique in the cluster).
func originOf(c *server.Conn[Session]) string { return strconv.FormatUint(c.ID(), 10) }

// subscribeProxied asks the backend about a reserved subscription, then
// makes it or replies the refusal. It reports false when the channel's
// namespace is not proxied.
func (h *Handler) subscribeProxied(c *server.Conn[Session], req *Request) bool {
	p := h.px.subscribe
	if !p.covers(pubsub.NamespaceOf(req.Channel)) {
		return false
	}
	s := c.Value.s
	body := SubscribeProxyRequest{ConnInfo: h.connInfo(c), Channel: req.Channel}
	id, channel, since, latest := req.ID, req.Channel, req.Since, req.Latest
	h.ask(c, p, id, body, func() { s.commit(channel, nil) }, func(json.RawMessage) {
		h.subscribeNow(c, id, channel, since, latest)
	})
	return true
}
