package wsproto

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
)

// subsState is a session's subscriptions. A subscribe proxy's answer
// arrives off the handler's callbacks, so unlike the rest of the session
// these are guarded by mu.
type subsState struct {
	mu      sync.Mutex
	subs    map[string]*pubsub.Subscription[*server.Prepared]
	pending map[string]bool // subscribes under way: counted, not yet in subs
	closed  bool            // OnClose ran: a late subscription is undone
}

// reserve marks channel as being subscribed, or says why it cannot be.
func (s *subsState) reserve(channel string, max int) *Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.subs[channel] != nil || s.pending[channel] {
		return &Error{CodeAlreadySubscribed, "already subscribed to " + channel}
	}
	if len(s.subs)+len(s.pending) >= max {
		return &Error{CodeTooManySubs, fmt.Sprintf("at most %d subscriptions per connection", max)}
	}
	if s.pending == nil {
		s.pending = map[string]bool{}
	}
	s.pending[channel] = true
	return nil
}

// commit turns a reservation into sub (nil: the subscribe failed). It
// reports false when the connection closed meanwhile: the caller undoes
// sub.
func (s *subsState) commit(channel string, sub *pubsub.Subscription[*server.Prepared]) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pending, channel)
	if sub == nil {
		return true
	}
	if s.closed {
		return false
	}
	if s.subs == nil {
		s.subs = map[string]*pubsub.Subscription[*server.Prepared]{}
	}
	s.subs[channel] = sub
	return true
}

func (s *subsState) subscribed(channel string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[channel] != nil
}

// take removes and returns channel's subscription (nil if none).
func (s *subsState) take(channel string) *pubsub.Subscription[*server.Prepared] {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs[channel]
	delete(s.subs, channel)
	return sub
}

// closeSubs marks the session closed and returns its subscriptions.
func (s *subsState) closeSubs() map[string]*pubsub.Subscription[*server.Prepared] {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs := s.subs
	s.subs, s.closed = nil, true
	return subs
}

// subscribeNow makes a reserved subscription and replies. Safe from any
// goroutine (the subscribe proxy calls it when the backend allows).
func (h *Handler) subscribeNow(c *server.Conn[Session], id json.RawMessage, channel string, since *pubsub.StreamPosition) {
	s := c.Value.s
	sub, _, err := h.hub.Subscribe(context.Background(), channel, s, pubsub.SubscribeOptions{
		ClientID: s.clientID,
		Since:    since,
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

// subscribeProxied asks the backend about a reserved subscription, then
// makes it or replies the refusal. It reports false when the channel's
// namespace is not proxied.
func (h *Handler) subscribeProxied(c *server.Conn[Session], req *Request) bool {
	p := h.px.subscribe
	if !p.covers(pubsub.NamespaceOf(req.Channel)) {
		return false
	}
	s := c.Value.s
	if !p.acquire() {
		s.commit(req.Channel, nil)
		h.fail(c, req.ID, errBusy)
		return true
	}
	body := SubscribeProxyRequest{ConnInfo: h.connInfo(c), Channel: req.Channel}
	id, channel, since := req.ID, req.Channel, req.Since
	go func() {
		defer p.release()
		ans, err := p.call(body)
		switch {
		case err != nil:
			s.commit(channel, nil)
			h.fail(c, id, err)
		case ans.Error != nil:
			s.commit(channel, nil)
			h.sendReply(c, Reply{ID: id, Error: ans.Error})
		default:
			h.subscribeNow(c, id, channel, since)
		}
	}()
	return true
}
