package client

import "errors"

// Server-side subscriptions (docs/protocol.md): the server subscribes the
// client to a channel on the backend's behalf and says so with a push. The
// client keeps such a subscription like its own (position, exactly-once
// delivery) and resumes it after a reconnect with "server":true, which
// fails with not_subscribed when the backend ended it meanwhile.

// subscribedInfo is a subscribed push's body.
type subscribedInfo = SubscribeResult

// handleServerSub starts tracking a subscription the server made, on the
// run goroutine. A channel the client holds already (its own, or one being
// resumed after a reconnect) is governed by its own subscribe's answer.
func (c *Client) handleServerSub(cn *conn, m *incoming) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.subs[m.Channel] != nil || c.closing {
		return
	}
	r := *m.Subscribed
	s := &subscription{channel: m.Channel, first: make(chan struct{}), server: true,
		pos: Position{Offset: r.Offset, Epoch: r.Epoch}, hasPos: true, gen: cn.gen, live: true}
	s.succeed(r)
	c.subs[m.Channel] = s
	c.serverSubEventLocked(m.Channel, true)
}

// handleServerUnsub drops channel's subscription, whoever made it.
func (c *Client) handleServerUnsub(cn *conn, m *incoming) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.subs[m.Channel]
	if s == nil || s.gen != cn.gen {
		return
	}
	delete(c.subs, m.Channel)
	s.fail(ErrUnsubscribed)
	c.serverSubEventLocked(m.Channel, false)
}

// serverSubEnded reports whether err, the answer to a resumed server-side
// subscription, says the backend ended it: not an error, an unsubscribe.
func serverSubEnded(s *subscription, err error) bool {
	var se *ServerError
	return s.server && errors.As(err, &se) && se.Code == "not_subscribed"
}

func (c *Client) serverSubEventLocked(channel string, subscribed bool) {
	if c.opts.OnServerSubscription != nil {
		c.events.push(event{kind: evServerSub, channel: channel, recovered: subscribed})
	}
}
