package wsproto

import (
	"context"
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
)

// Server-side subscriptions (docs/protocol.md): channels the backend
// subscribes a user to, through POST /api/subscribe (kept by the broker
// until /api/unsubscribe, so every node applies them to the user's
// connections, now and when they reconnect) or through the connect proxy's
// answer (for that connection). The client is told with a push, and may
// restart such a subscription with a subscribe op (since: recovery), which
// is how clients resume them after a reconnect.

// SubscribedPush tells a client that the server subscribed it to Channel:
// {"channel":"news","subscribed":{"epoch":"e1","offset":41,"recovered":false}}.
// Publications after Offset follow.
type SubscribedPush struct {
	Channel    string          `json:"channel"`
	Subscribed SubscribeResult `json:"subscribed"`
}

// UnsubscribedPush tells a client that the server ended its subscription
// to Channel: {"channel":"news","unsubscribed":{}}. No push of Channel
// follows.
type UnsubscribedPush struct {
	Channel      string   `json:"channel"`
	Unsubscribed struct{} `json:"unsubscribed"`
}

// heldSubs marks the subscriptions the server made, per session: a
// subscribe op to one of them restarts it instead of being refused. Kept
// off the session, which most connections would pay for without using.
// Safe for concurrent use.
type heldSubs struct {
	mu sync.Mutex
	m  map[*session]map[string]struct{}
}

func (hs *heldSubs) add(s *session, channel string) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if hs.m == nil {
		hs.m = map[*session]map[string]struct{}{}
	}
	if hs.m[s] == nil {
		hs.m[s] = map[string]struct{}{}
	}
	hs.m[s][channel] = struct{}{}
}

func (hs *heldSubs) has(s *session, channel string) bool {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	_, ok := hs.m[s][channel]
	return ok
}

func (hs *heldSubs) remove(s *session, channel string) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	if set := hs.m[s]; set != nil {
		if delete(set, channel); len(set) == 0 {
			delete(hs.m, s)
		}
	}
}

func (hs *heldSubs) drop(s *session) {
	hs.mu.Lock()
	defer hs.mu.Unlock()
	delete(hs.m, s)
}

// watchUserSubs registers the handler for the broker's server-side
// subscriptions, if it keeps them.
func (h *Handler) watchUserSubs() error {
	if uc, ok := h.hub.Broker().(pubsub.UserCommands); ok {
		uc.WatchUserCommands(h.userCommandIn)
	}
	us, ok := h.hub.Broker().(pubsub.UserSubscriptions)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := us.WatchUserSubscriptions(ctx, h.userSubChanged); err != nil {
		return err
	}
	h.userSubs = us
	return nil
}

// userSubChanged applies a server-side subscription made or ended by any
// node to the user's connections here. A connection opening meanwhile is
// covered either way: it is indexed before it reads the user's channels,
// and the broker's copy changes before this runs.
func (h *Handler) userSubChanged(user, channel string, subscribed bool) {
	for _, s := range h.users.of(user) {
		if s.stream {
			continue // a stream's channels are its URL's
		}
		if subscribed {
			h.serverSubscribe(s, channel)
		} else {
			h.serverUnsubscribe(s, channel)
		}
	}
}

// openServerSubs subscribes a connection that just opened (or got its
// user from the connect proxy) to its user's server-side subscriptions and
// to extra (the connect proxy's).
func (h *Handler) openServerSubs(s *session, extra []string) {
	for _, ch := range extra {
		h.serverSubscribe(s, ch)
	}
	if h.userSubs != nil {
		for _, ch := range h.userSubs.UserChannels(s.clientID) {
			h.serverSubscribe(s, ch)
		}
	}
}

// serverSubscribe subscribes s to channel on the server's behalf: no
// access check and no subscription limit (the backend decided), and
// nothing to do when s is subscribed already, whoever asked.
func (h *Handler) serverSubscribe(s *session, channel string) {
	if s.reserve(channel, math.MaxInt) != nil {
		return
	}
	h.held.add(s, channel)
	c := s.conn
	sub, _, err := h.hub.Subscribe(context.Background(), channel, s, pubsub.SubscribeOptions{
		ClientID: s.clientID,
		Origin:   originOf(c),
		OnSubscribed: func(r pubsub.SubscribeResult) {
			// Under the channel's lock: the push precedes every publication.
			h.sendJSON(c, SubscribedPush{Channel: channel, Subscribed: SubscribeResult{Epoch: r.Position.Epoch, Offset: r.Position.Offset}})
		},
	})
	if err != nil {
		s.commit(channel, nil)
		h.held.remove(s, channel)
		h.cfg.Logger.Warn("ws: server-side subscription failed", "client", s.clientID, "channel", channel, "err", err)
		return
	}
	if !s.commit(channel, sub) {
		sub.Unsubscribe()
		h.held.remove(s, channel)
	}
}

// serverUnsubscribe ends s's subscription to channel, whoever made it,
// and tells the client.
func (h *Handler) serverUnsubscribe(s *session, channel string) {
	h.held.remove(s, channel)
	sub := s.take(channel)
	if sub == nil {
		return
	}
	sub.Unsubscribe()
	h.sendJSON(s.conn, UnsubscribedPush{Channel: channel})
}

// restartHeld answers a subscribe op to a channel the server subscribed
// the connection to: the subscription starts again from req.Since, and
// the reply and the pushes are a subscribe's. It reports false when the
// channel is not one of those.
func (h *Handler) restartHeld(c *server.Conn[Session], req *Request) bool {
	s := c.Value.s
	if !h.held.has(s, req.Channel) {
		return false
	}
	old, ok := s.rereserve(req.Channel)
	if !ok {
		h.fail(c, req.ID, &Error{CodeAlreadySubscribed, "a subscribe to " + req.Channel + " is under way"})
		return true
	}
	old.Unsubscribe()
	h.subscribeNow(c, req.ID, req.Channel, req.Since, req.Latest)
	return true
}

// rereserve turns channel's subscription back into a reservation and
// returns it; false when there is none, or its subscribe is under way.
func (s *session) rereserve(channel string) (*pubsub.Subscription[*server.Prepared], bool) {
	s.subsMu.Lock()
	defer s.subsMu.Unlock()
	sub := s.subs[channel]
	if sub == nil {
		return nil, false
	}
	s.subs[channel] = nil
	return sub, true
}

// sendJSON queues a push. Safe from any goroutine.
func (h *Handler) sendJSON(c *server.Conn[Session], v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // our own types
	}
	_ = c.Send(server.Text, b)
}
