package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mrand "math/rand/v2"
)

// Client is a connection to a wsd server's /ws endpoint that reconnects on
// its own. Create one with New or Dial and end it with Close. All methods
// are safe for concurrent use.
type Client struct {
	targets []target // the URL given to New, then Options.Endpoints
	ep      int      // the one dialled next; touched only by the run goroutine
	opts    Options

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	runDone  chan struct{} // the run goroutine ended
	dispDone chan struct{} // the callback goroutine ended
	dispGID  atomic.Uint64 // the callback goroutine's id
	events   eventQueue
	queued   atomic.Int64 // publishes in flight (publish.go)

	mu         sync.Mutex
	state      State
	stateErr   error         // the error given with the last state change
	lastErr    error         // the last non-nil one
	changed    chan struct{} // closed and replaced at every state change
	closing    bool          // Close was called
	closed     chan struct{} // closed when the client is closed for good
	cur        *conn         // nil while not connected
	gen        uint64        // connections made so far
	reconnects int           // connections made after the first
	nextID     uint64
	pending    map[uint64]*call
	subs       map[string]*subscription
}

// New returns a client for url (ws://, wss://, or http(s):// for the same)
// and starts connecting in the background. It fails only on a bad URL or
// header; connection problems are reported through OnState and retried.
func New(url string, opts Options) (*Client, error) {
	var targets []target
	for _, u := range append([]string{url}, opts.Endpoints...) {
		t, err := parseTarget(u)
		if err != nil {
			return nil, err
		}
		targets = append(targets, t)
	}
	for name, vs := range opts.Header {
		for _, v := range append([]string{name}, vs...) {
			if strings.ContainsAny(v, "\r\n") {
				return nil, fmt.Errorf("wsd client: header %q contains a line break", name)
			}
		}
	}
	opts.setDefaults()
	c := &Client{
		targets:  targets,
		opts:     opts,
		runDone:  make(chan struct{}),
		dispDone: make(chan struct{}),
		changed:  make(chan struct{}),
		closed:   make(chan struct{}),
		pending:  map[uint64]*call{},
		subs:     map[string]*subscription{},
	}
	c.events.wake = make(chan struct{}, 1)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run()
	go c.dispatch()
	return c, nil
}

// Dial is New followed by waiting until the client is connected. It
// returns an error (and closes the client) when ctx ends first or when the
// server refuses the upgrade for good (*HandshakeError); failed attempts
// before that are retried with backoff as usual.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	c, err := New(url, opts)
	if err != nil {
		return nil, err
	}
	for {
		c.mu.Lock()
		st, stErr, lastErr, ch := c.state, c.stateErr, c.lastErr, c.changed
		c.mu.Unlock()
		switch st {
		case StateConnected:
			return c, nil
		case StateClosed:
			_ = c.Close(ctx)
			if stErr == nil {
				stErr = ErrClosed
			}
			return nil, stErr
		}
		select {
		case <-ch:
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_ = c.Close(cctx)
			cancel()
			if lastErr != nil {
				return nil, fmt.Errorf("%w (last attempt: %v)", ctx.Err(), lastErr)
			}
			return nil, ctx.Err()
		}
	}
}

// State returns the current connection state.
func (c *Client) State() State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Reconnects returns how many times the client has connected again after
// its first connection.
func (c *Client) Reconnects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reconnects
}

// Close ends the client: it stops reconnecting, sends a close frame (1000)
// if connected and waits for the server's answer, then waits for the
// callbacks still queued to run, the last one being OnState(StateClosed).
// When ctx ends first the connection is cut at once and Close returns
// ctx.Err(); the client is closed either way. Requests waiting for a reply
// fail with ErrClosed. Calling Close again waits the same way. Called from
// a callback, Close does not wait for the callbacks (it would wait for
// itself): the remaining ones run after the callback returns.
func (c *Client) Close(ctx context.Context) error {
	c.mu.Lock()
	first := !c.closing
	c.closing = true
	cn := c.cur
	c.mu.Unlock()
	if first {
		c.cancel()
		if cn != nil {
			_ = cn.sendClose(1000, "")
		}
	}
	var err error
	select {
	case <-c.runDone:
	case <-ctx.Done():
		err = ctx.Err()
		c.mu.Lock()
		if c.cur != nil {
			_ = c.cur.nc.Close()
		}
		c.mu.Unlock()
		<-c.runDone // prompt now: the connection is gone and ctx cancelled
	}
	if c.dispGID.Load() == goid() {
		return err
	}
	select {
	case <-c.dispDone:
	case <-ctx.Done():
		err = ctx.Err() // a callback is still running
	}
	return err
}

// run dials, reads and sleeps between attempts until Close.
func (c *Client) run() {
	defer close(c.runDone)
	var final error
	attempt := 0
	for {
		c.setState(StateConnecting, nil)
		cn, rest, err := c.dial(c.ctx)
		if c.ctx.Err() != nil {
			if cn != nil {
				_ = cn.nc.Close()
			}
			break
		}
		if err != nil {
			if c.permanent(err) {
				final = err
				break
			}
			c.setState(StateDisconnected, err)
		} else {
			start := time.Now()
			c.renewChannelTokens() // token_channel.go
			if !c.attach(cn) {
				_ = cn.nc.Close()
				break
			}
			err = c.readLoop(cn, rest)
			_ = cn.nc.Close()
			c.detach(cn)
			if c.ctx.Err() != nil {
				break
			}
			if c.permanent(err) {
				final = err
				break
			}
			if time.Since(start) >= c.opts.HealthyAfter {
				attempt = 0
			}
			c.setState(StateDisconnected, err)
		}
		d := c.retryDelay(err, backoff(attempt, c.opts.MinBackoff, c.opts.MaxBackoff))
		if c.opts.testHookBackoff != nil {
			c.opts.testHookBackoff(attempt, d)
		}
		if nodeGone(err) {
			c.ep = (c.ep + 1) % len(c.targets)
		}
		attempt++
		t := time.NewTimer(d)
		select {
		case <-t.C:
			continue
		case <-c.ctx.Done():
			t.Stop()
		}
		break
	}
	c.finish(final)
}

// permanent reports whether err ends the client instead of a retry: an
// upgrade refused with a 4xx that retrying cannot fix (a 401 can be when a
// TokenFunc may bring a fresh token), or a close for abuse.
func (c *Client) permanent(err error) bool {
	var he *HandshakeError
	if errors.As(err, &he) {
		return he.Permanent() && !(he.Status == 401 && c.opts.TokenFunc != nil)
	}
	var ce *CloseError
	return errors.As(err, &ce) && ce.Permanent()
}

// backoff is the delay before attempt (0-based): uniform in
// [0, min(max, min·2^attempt)] — "full jitter".
func backoff(attempt int, min, max time.Duration) time.Duration {
	d := max
	if attempt < 62 {
		if s := min << attempt; s > 0 && s < max {
			d = s
		}
	}
	if d <= 0 {
		return 0
	}
	return mrand.N(d + 1)
}

func (c *Client) setState(s State, err error) {
	c.mu.Lock()
	c.setStateLocked(s, err)
	c.mu.Unlock()
}

func (c *Client) setStateLocked(s State, err error) {
	c.state, c.stateErr = s, err
	if err != nil {
		c.lastErr = err
	}
	close(c.changed)
	c.changed = make(chan struct{})
	if c.opts.OnState != nil {
		c.events.push(event{kind: evState, state: s, err: err})
	}
}

// attach makes cn the current connection and subscribes again to every
// channel, with since where a position is known. It reports false when
// Close came first.
func (c *Client) attach(cn *conn) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	c.gen++
	cn.gen = c.gen
	if c.gen > 1 {
		c.reconnects++
	}
	c.cur = cn
	c.setStateLocked(StateConnected, nil)
	var frames [][]byte
	for _, s := range c.subs {
		frames = append(frames, c.subscribeFrameLocked(cn, s))
	}
	c.mu.Unlock()
	if len(frames) > 0 {
		_ = cn.write(opText, frames...) // on failure the read loop ends and we reconnect
	}
	return true
}

// detach forgets cn: requests waiting on it fail with ErrConnectionLost,
// subscriptions wait for the next connection.
func (c *Client) detach(cn *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == cn {
		c.cur = nil
	}
	for id, p := range c.pending {
		if p.gen != cn.gen {
			continue
		}
		delete(c.pending, id)
		if p.done != nil {
			p.done <- reply{err: ErrConnectionLost}
		}
	}
	for _, s := range c.subs {
		if s.gen == cn.gen {
			s.gen, s.reqID, s.live, s.early = 0, 0, false, nil
		}
	}
}

// finish closes the client for good.
func (c *Client) finish(err error) {
	c.mu.Lock()
	c.closing = true
	c.cur = nil
	for id, p := range c.pending {
		delete(c.pending, id)
		if p.done != nil {
			p.done <- reply{err: ErrClosed}
		}
	}
	for ch, s := range c.subs {
		delete(c.subs, ch)
		s.fail(ErrClosed)
	}
	c.setStateLocked(StateClosed, err)
	close(c.closed)
	c.mu.Unlock()
	c.cancel()
	c.events.close()
}

// waitConn returns the current connection, waiting for one unless
// FailFast. Called without c.mu.
func (c *Client) waitConn(ctx context.Context) (*conn, error) {
	for {
		c.mu.Lock()
		cn, closing, ch := c.cur, c.closing, c.changed
		c.mu.Unlock()
		switch {
		case closing:
			return nil, ErrClosed
		case cn != nil:
			return cn, nil
		case c.opts.FailFast:
			return nil, ErrNotConnected
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// handleMessage processes one text message from the server, on the run
// goroutine.
func (c *Client) handleMessage(cn *conn, p []byte) {
	var m incoming
	if err := json.Unmarshal(p, &m); err != nil {
		c.asyncError(fmt.Errorf("wsd client: bad message from the server: %w", err))
		return
	}
	if m.ID == nil {
		if m.Error != nil {
			c.asyncError(m.Error)
			return
		}
		switch {
		case m.Refresh != nil:
			c.onRefreshNotice(cn)
		case m.Channel == "":
		case m.Join != nil || m.Leave != nil:
			c.handleJoinLeave(cn, &m)
		case m.Subscribed != nil:
			c.handleServerSub(cn, &m)
		case m.Unsubscribed != nil:
			c.handleServerUnsub(cn, &m)
		default:
			c.handlePublication(cn, &m)
		}
		return
	}
	c.mu.Lock()
	p2 := c.pending[*m.ID]
	delete(c.pending, *m.ID)
	if p2 == nil {
		c.mu.Unlock()
		return
	}
	var err error
	if m.Error != nil {
		err = m.Error
	}
	if p2.op == opSubscribe {
		writes := c.subscribeReplyLocked(cn, p2, m.Result, err)
		c.mu.Unlock()
		c.writeFrames(cn, writes)
		return
	}
	c.mu.Unlock()
	if p2.done != nil {
		p2.done <- reply{result: m.Result, err: err}
	}
}

func (c *Client) asyncError(err error) {
	if c.opts.OnError != nil {
		c.events.push(event{kind: evError, err: err})
	}
}

func (c *Client) writeFrames(cn *conn, frames [][]byte) {
	if len(frames) > 0 {
		_ = cn.write(opText, frames...)
	}
}

// goid returns the calling goroutine's id, parsed from the first line of
// its stack trace ("goroutine 123 [running]:"). Used only by Close, to
// notice that it runs inside a callback.
func goid() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b, ok := bytes.CutPrefix(b, []byte("goroutine "))
	if !ok {
		return 0
	}
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}
