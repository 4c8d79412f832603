package wsproto

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"
)

// expOf reads a token's exp (Unix seconds) without checking it.
func expOf(t *testing.T, tok string) int64 {
	t.Helper()
	var c Claims
	if _, _, err := jwt.NewParser().ParseUnverified(tok, &c); err != nil || c.ExpiresAt == nil {
		t.Fatalf("token %q: %v", tok, err)
	}
	return c.ExpiresAt.Unix()
}

// refreshNotice reads the next message, which must be a refresh notice,
// and returns its exp.
func (c *client) refreshNotice() int64 {
	c.t.Helper()
	f, err := c.c.ReadData()
	if err != nil {
		c.t.Fatalf("waiting for a refresh notice: %v", err)
	}
	var p struct {
		Refresh *RefreshInfo `json:"refresh"`
		ID      any          `json:"id"`
	}
	if err := json.Unmarshal(f.Payload, &p); err != nil || p.Refresh == nil || p.ID != nil {
		c.t.Fatalf("want a refresh notice, got %q (%v)", f.Payload, err)
	}
	return p.Refresh.Exp
}

func TestTokenExpiryNoticeRefreshAndClose(t *testing.T) {
	e := start(t, Config{TokenSecret: secret}, nil)
	tok := token(t, "alice", []string{"news"}, 2*time.Second)
	a := e.dial(t, "Authorization: Bearer "+tok)
	a.c.Timeout = 10 * time.Second

	// The notice comes before exp, for exp.
	exp := expOf(t, tok)
	if got := a.refreshNotice(); got != exp {
		t.Fatalf("notice for exp %d, token exp %d", got, exp)
	}
	if now := time.Now(); !now.Before(time.Unix(exp, 0)) {
		t.Fatalf("notice at %v, after exp %v", now, time.Unix(exp, 0))
	}

	// Bad refreshes are error replies and change nothing.
	a.fails(`{"id":1,"op":"refresh","token":"garbage"}`, CodeBadToken)
	a.fails(fmt.Sprintf(`{"id":2,"op":"refresh","token":%q}`, token(t, "bob", []string{"*"}, time.Hour)), CodeBadToken)
	a.fails(`{"id":3,"op":"refresh"}`, CodeBadRequest)

	// A good one moves the deadline and the channels.
	tok2 := token(t, "alice", []string{"news", "chat:*"}, 3*time.Second)
	var res RefreshInfo
	a.ok(fmt.Sprintf(`{"id":4,"op":"refresh","token":%q}`, tok2), &res)
	if res.Exp != expOf(t, tok2) {
		t.Fatalf("refresh result exp %d, token exp %d", res.Exp, expOf(t, tok2))
	}
	a.ok(`{"id":5,"op":"subscribe","channel":"chat:x"}`, nil)

	// Still up after the first exp: the next message is the second notice.
	if got := a.refreshNotice(); got != expOf(t, tok2) {
		t.Fatalf("second notice for exp %d, want %d", got, expOf(t, tok2))
	}
	if time.Now().Unix() < exp {
		t.Fatal("second notice came before the first token's exp")
	}

	// Not refreshed: closed with 3000 at exp, not before.
	code, reason, err := a.c.ExpectClose()
	if err != nil || code != CloseTokenExpired || reason != "token expired" {
		t.Fatalf("close %d %q %v", code, reason, err)
	}
	if now := time.Now(); now.Before(time.Unix(expOf(t, tok2), 0)) {
		t.Fatalf("closed at %v, before exp %v", now, time.Unix(expOf(t, tok2), 0))
	}
	st := e.h.Stats()
	if st.RefreshNotices != 2 || st.Refreshes != 1 || st.TokenExpired != 1 || st.Errors[CodeBadToken] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A connection that closes before its token's exp leaves the wheel empty:
// its entries are dropped and the wheel's goroutine stops (goleak checks
// the latter at the end of the package).
func TestTokenExpiryForgetsClosedConnections(t *testing.T) {
	e := start(t, Config{TokenSecret: secret}, nil)
	a := e.dial(t, "Authorization: Bearer "+token(t, "alice", nil, time.Hour))
	b := e.dialPath(t, "/ws?token="+token(t, "bob", nil, 0)) // no exp: not scheduled
	b.c.Close()
	a.ok(`{"id":1,"op":"ping"}`, nil)
	if n := e.h.expiry.pending(); n != 1 {
		t.Fatalf("%d entries pending, want 1", n)
	}
	a.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.h.expiry.pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries still pending after the close", e.h.expiry.pending())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The notice lead is a quarter of the token's lifetime, at least 1 s (at
// most half the lifetime), at most 30 s.
func TestRefreshLead(t *testing.T) {
	var at time.Time
	h := &Handler{now: time.Now}
	h.expiry = newExpiryWheel(time.Now, func(expiryEntry) {})
	now := time.Now().Add(time.Hour).Truncate(time.Second) // ahead of the wheel
	for _, c := range []struct {
		ttl, lead time.Duration
	}{{1 * time.Second, 500 * time.Millisecond}, {2 * time.Second, time.Second}, {3 * time.Second, time.Second},
		{8 * time.Second, 2 * time.Second}, {time.Minute, 15 * time.Second}, {time.Hour, 30 * time.Second}} {
		s := &session{}
		h.setDeadline(s, now.Add(c.ttl), now)
		h.expiry.mu.Lock()
		for k, b := range h.expiry.buckets {
			for _, e := range b {
				if e.s == s {
					at = h.expiry.timeOf(uint32(k))
				}
			}
		}
		h.expiry.mu.Unlock()
		if want := now.Add(c.ttl - c.lead); !at.Equal(want) {
			t.Errorf("ttl %v: notice at %v, want %v", c.ttl, at, want)
		}
		h.clearDeadline(s)
	}
}

// The expiry deadline lives in the padding after the session's bools: a /ws
// connection's session stays in the 96-byte allocation class it had before
// tokens expired while connected.
func TestSessionSizeBudget(t *testing.T) {
	if s := unsafe.Sizeof(session{}); s > 96 {
		t.Fatalf("session is %d bytes, budget 96", s)
	}
}
