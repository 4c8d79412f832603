package client

import (
	"context"
)

// Channel tokens (docs/protocol.md, Private channels): in a private
// namespace the server wants a token from the application's backend with
// every subscribe. Options.ChannelTokenFunc provides it, before the first
// subscribe and again before each reconnect's resubscribe (a channel token
// is checked at subscribe time and may have expired since).

// channelToken asks ChannelTokenFunc for channel's token; "" without one.
func (c *Client) channelToken(ctx context.Context, channel string) (string, error) {
	if c.opts.ChannelTokenFunc == nil {
		return "", nil
	}
	return c.opts.ChannelTokenFunc(ctx, channel)
}

// renewChannelTokens gets a fresh token for every subscription before a
// connection resubscribes them. It runs on the connection goroutine,
// outside the lock, bounded by DialTimeout; a failure keeps the old token
// (the server then refuses the subscribe, and OnError gets a
// *SubscriptionError).
func (c *Client) renewChannelTokens() {
	if c.opts.ChannelTokenFunc == nil {
		return
	}
	c.mu.Lock()
	channels := make([]string, 0, len(c.subs))
	for ch := range c.subs {
		channels = append(channels, ch)
	}
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.DialTimeout)
	defer cancel()
	for _, ch := range channels {
		tok, err := c.opts.ChannelTokenFunc(ctx, ch)
		if err != nil {
			c.asyncError(&SubscriptionError{Channel: ch, Err: &RefreshError{err}})
			continue
		}
		c.mu.Lock()
		if s := c.subs[ch]; s != nil {
			s.token = tok
		}
		c.mu.Unlock()
	}
}
