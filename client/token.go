package client

import (
	"context"
	"fmt"
)

// Token refresh while connected (docs/protocol.md, Authentication): the
// server pushes {"refresh":{"exp":...}} some time before the connection's
// token expires, and the client answers with a refresh op carrying a token
// from Options.TokenFunc.

const opRefresh = "refresh"

// refreshNotice is the body of a refresh push.
type refreshNotice struct {
	Exp int64 `json:"exp"` // Unix seconds when the server closes without a refresh
}

// RefreshError is a token refresh that failed (see Options.OnError):
// TokenFunc failed or the server refused the new token. The server closes
// the connection at the old token's exp, and the client reconnects.
type RefreshError struct{ Err error }

func (e *RefreshError) Error() string {
	return fmt.Sprintf("wsd client: refreshing the token: %v", e.Err)
}

func (e *RefreshError) Unwrap() error { return e.Err }

// onRefreshNotice runs on the read loop: the refresh waits for a reply the
// read loop delivers, so it runs on a goroutine of its own, bounded by
// DialTimeout and by Close. Without TokenFunc there is nothing to send: the
// connection ends at exp.
func (c *Client) onRefreshNotice(cn *conn) {
	if c.opts.TokenFunc == nil {
		return
	}
	go c.refreshToken(cn)
}

func (c *Client) refreshToken(cn *conn) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.DialTimeout)
	defer cancel()
	tok, err := c.opts.TokenFunc(ctx)
	if err == nil {
		err = c.requestOn(ctx, cn, request{Op: opRefresh, Token: tok})
	}
	if err != nil && c.ctx.Err() == nil {
		c.asyncError(&RefreshError{err})
	}
}

// requestOn sends r on cn and waits for its reply. It does nothing when cn
// is no longer the current connection: a new one had a fresh token.
func (c *Client) requestOn(ctx context.Context, cn *conn, r request) error {
	if err := ctx.Err(); err != nil { // as in do: nothing is sent
		return err
	}
	c.mu.Lock()
	if c.closing || c.cur != cn {
		c.mu.Unlock()
		return nil
	}
	p := c.newCallLocked(cn, r.Op, "", true)
	c.mu.Unlock()
	r.ID = p.id
	if err := cn.write(opText, encode(r)); err != nil {
		c.forget(p.id)
		return fmt.Errorf("%w: %v", ErrConnectionLost, err)
	}
	select {
	case rep := <-p.done:
		return rep.err
	case <-ctx.Done():
		c.forget(p.id)
		return ctx.Err()
	}
}
