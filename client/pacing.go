package client

import (
	"errors"
	mrand "math/rand/v2"
	"time"
)

// retryDelay is the wait before the next attempt after err, given the
// backoff drawn for it. A close hint replaces the backoff: the server has
// already spread its clients, so only a little jitter is added (it never
// makes the wait shorter). A Retry-After is a floor: whole seconds are
// coarse, so up to a second of jitter keeps the clients it refused
// together from coming back in the same instant.
func (c *Client) retryDelay(err error, backoff time.Duration) time.Duration {
	var ce *CloseError
	if errors.As(err, &ce) {
		if h, ok := ce.RetryHint(); ok {
			return h + mrand.N(min(h/10, 250*time.Millisecond)+1)
		}
	}
	var he *HandshakeError
	if errors.As(err, &he) && he.RetryAfter > 0 {
		return max(backoff, he.RetryAfter+mrand.N(time.Second))
	}
	return backoff
}

// nodeGone reports whether err says the server node is going or gone, so
// that the next attempt goes to the next endpoint: any failed attempt
// (refused, 503, timeout), a close for restart, shutdown or overload
// (1012, 1001, 1013), or a connection lost without a close frame. Other
// closes (1008 slow consumer, 1011, ...) come from a node that is alive.
func nodeGone(err error) bool {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code == 1001 || ce.Code == 1012 || ce.Code == 1013
	}
	return err != nil
}
