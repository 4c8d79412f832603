package client

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"time"
)

// Exactly-once publishing across reconnects: every publish carries an
// idempotency key, and one whose connection dropped before the reply is
// sent again with the same key on the next connection. The server (its
// broker) remembers keys for two minutes, so the resend is either the
// publication or an answer with the first one's position — never a second
// copy. Resends stop after resendWindow, within the server's.

// resendWindow: how long after its first send a publish is still resent
// (the server's deduplication window is 2 minutes).
const resendWindow = 100 * time.Second

func newKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// publishRetrying sends r until it is answered, resending it after a
// dropped connection. While no connection is up it counts against
// MaxQueuedPublishes.
func (c *Client) publishRetrying(ctx context.Context, r request) ([]byte, error) {
	if r.IdempotencyKey == "" {
		r.IdempotencyKey = newKey()
	}
	start := time.Now()
	for {
		if err := c.enqueue(); err != nil {
			return nil, err
		}
		res, err := c.do(ctx, r)
		c.queued.Add(-1)
		if !errors.Is(err, ErrConnectionLost) || time.Since(start) > resendWindow || ctx.Err() != nil {
			return res, err
		}
	}
}

// enqueue counts a publish against the queue bound while disconnected.
func (c *Client) enqueue() error {
	n := c.queued.Add(1)
	c.mu.Lock()
	up := c.cur != nil
	c.mu.Unlock()
	if !up && n > int64(c.opts.MaxQueuedPublishes) {
		c.queued.Add(-1)
		return ErrQueueFull
	}
	return nil
}
