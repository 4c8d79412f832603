package client

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/wsproto"
)

const tokenSecret = "client-test-secret"

// startTokenNode is startNode with connection tokens required; it returns
// the /ws handler too, for its counters.
func startTokenNode(t *testing.T) (*wsdNode, *wsproto.Handler) {
	t.Helper()
	return startTokenNodeNS(t, nil)
}

// startTokenNodeNS is startTokenNode with namespaces.
func startTokenNodeNS(t *testing.T, ns pubsub.Namespaces) (*wsdNode, *wsproto.Handler) {
	t.Helper()
	return startWSNode(t, server.Options{}, ns, wsproto.Config{TokenSecret: tokenSecret})
}

// stateLog records OnState calls.
type stateLog struct {
	mu   sync.Mutex
	errs []error // the errors of Disconnected states
}

func (l *stateLog) on(s State, err error) {
	if s == StateDisconnected {
		l.mu.Lock()
		l.errs = append(l.errs, err)
		l.mu.Unlock()
	}
}

func (l *stateLog) disconnects() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// A 2 s token refreshed through TokenFunc keeps the connection: two
// refreshes go by without a reconnect, and the channel still works.
func TestTokenRefreshKeepsConnection(t *testing.T) {
	n, h := startTokenNode(t)
	var calls atomic.Int32
	var states stateLog
	rec := newRecorder()
	o := rec.options(fast())
	o.OnState = states.on
	o.TokenFunc = func(context.Context) (string, error) {
		calls.Add(1)
		return wsproto.NewToken(tokenSecret, "alice", []string{"*"}, 2*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, n.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two refreshes", func() bool { return h.Stats().Refreshes >= 2 })
	if _, err := c.Publish(ctx, "news", "still here"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the publication", func() bool { return rec.count("news") == 1 })
	st := h.Stats()
	if c.Reconnects() != 0 || st.TokenExpired != 0 || len(states.disconnects()) != 0 || calls.Load() < 3 {
		t.Fatalf("reconnects %d, expired %d, disconnects %v, TokenFunc calls %d",
			c.Reconnects(), st.TokenExpired, states.disconnects(), calls.Load())
	}
}

// When the refresh fails (TokenFunc errs), the server closes at exp with
// 3000 "token expired" and the client reconnects with a fresh token,
// subscriptions included.
func TestTokenExpiredReconnects(t *testing.T) {
	n, h := startTokenNode(t)
	var calls atomic.Int32
	var states stateLog
	refreshErrs := make(chan error, 4)
	rec := newRecorder()
	o := rec.options(fast())
	o.OnState = states.on
	o.OnError = func(err error) { refreshErrs <- err }
	backendDown := errors.New("token backend down")
	o.TokenFunc = func(context.Context) (string, error) {
		switch calls.Add(1) {
		case 1:
			return wsproto.NewToken(tokenSecret, "alice", []string{"*"}, 2*time.Second)
		case 2:
			return "", backendDown
		}
		return wsproto.NewToken(tokenSecret, "alice", []string{"*"}, time.Hour)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, n.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-refreshErrs:
		var re *RefreshError
		if !errors.As(err, &re) || !errors.Is(err, backendDown) {
			t.Fatalf("OnError got %v, want a RefreshError", err)
		}
	case <-ctx.Done():
		t.Fatal("no refresh error reported")
	}
	waitFor(t, "the reconnect", func() bool { return c.Reconnects() == 1 && c.State() == StateConnected })
	d := states.disconnects()
	var ce *CloseError
	if len(d) != 1 || !errors.As(d[0], &ce) || ce.Code != wsproto.CloseTokenExpired || ce.Reason != "token expired" {
		t.Fatalf("disconnects %v, want one close 3000 token expired", d)
	}
	if st := h.Stats(); st.TokenExpired != 1 || st.RefreshNotices != 1 {
		t.Fatalf("stats %+v", st)
	}
	// The subscription came back with the new connection.
	if _, err := c.Publish(ctx, "news", "after"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the publication", func() bool { return rec.count("news") == 1 })
}

// ChannelTokenFunc gives the channel token of a private channel, fetched
// again for the resubscribe after a reconnect (a channel token is checked
// at subscribe time and may have expired by then).
func TestChannelTokenFunc(t *testing.T) {
	ns := pubsub.Namespaces{"": pubsub.DefaultNamespaceOptions(), "team": {HistorySize: 10, Presence: true, Private: true}}
	n, h := startTokenNodeNS(t, ns)
	var calls, chanCalls atomic.Int32
	rec := newRecorder()
	o := rec.options(fast())
	o.TokenFunc = func(context.Context) (string, error) {
		if calls.Add(1) == 2 {
			return "", errors.New("no refresh: let the connection expire")
		}
		return wsproto.NewToken(tokenSecret, "alice", nil, 2*time.Second)
	}
	o.ChannelTokenFunc = func(_ context.Context, channel string) (string, error) {
		chanCalls.Add(1)
		return wsproto.NewChannelToken(tokenSecret, "alice", channel, 2*time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Dial(ctx, n.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Subscribe(ctx, "team:x"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reconnect", func() bool { return c.Reconnects() == 1 && c.State() == StateConnected })
	if _, err := c.Publish(ctx, "team:x", "after"); err != nil { // allowed: subscribed with the channel token
		t.Fatalf("publish after the resubscribe: %v", err)
	}
	waitFor(t, "the publication", func() bool { return rec.count("team:x") == 1 })
	if st := h.Stats(); st.TokenExpired != 1 || st.Errors["bad_token"] != 0 || st.Errors["forbidden"] != 0 {
		t.Fatalf("stats %+v", st)
	}
	if chanCalls.Load() < 2 {
		t.Fatalf("ChannelTokenFunc called %d times", chanCalls.Load())
	}
}
