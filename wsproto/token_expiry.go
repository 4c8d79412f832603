package wsproto

import (
	"encoding/json"
	"math"
	"sync"
	"time"

	"github.com/wsdhq/wsd/server"
)

// Token expiry while connected (docs/protocol.md, Authentication): a
// connection whose token has an exp is pushed a refresh notice shortly
// before it, and is closed with CloseTokenExpired when no refresh op
// brought a newer token by then.
//
// No connection owns a timer: one wheel per Handler holds the due times in
// buckets of expiryTick, and one goroutine, running only while the wheel
// holds entries, walks the buckets that came due.

// CloseTokenExpired is the close code of a connection whose token expired
// without a refresh; the reason is "token expired". Clients reconnect with
// a fresh token.
const (
	CloseTokenExpired  = 3000
	closeReasonExpired = "token expired"
)

// expiryTick is the wheel's resolution: notices and closes happen within
// one tick after their time.
const expiryTick = 100 * time.Millisecond

// The refresh notice goes out a quarter of the token's lifetime before its
// deadline, but at least minRefreshLead (at most half the lifetime: a
// client of a short-lived token needs time for its backend round trip)
// and at most maxRefreshLead.
const (
	minRefreshLead = time.Second
	maxRefreshLead = 30 * time.Second
)

// refreshLead is how long before the deadline the notice goes, for a token
// with lifetime left when it was checked.
func refreshLead(lifetime time.Duration) time.Duration {
	return min(maxRefreshLead, max(lifetime/4, min(lifetime/2, minRefreshLead)))
}

// RefreshPush is the notice pushed to a connection whose token expires
// soon: {"refresh":{"exp":1767225600}}. It has neither id nor channel.
type RefreshPush struct {
	Refresh RefreshInfo `json:"refresh"`
}

// RefreshInfo is the body of a RefreshPush and the result of a refresh op.
type RefreshInfo struct {
	Exp int64 `json:"exp"` // Unix seconds after which the connection is closed (0 in a result: no expiry)
}

// expiryStage says what is due for an entry.
type expiryStage uint8

const (
	stageNotice expiryStage = iota // push the refresh notice
	stageClose                     // close with CloseTokenExpired
)

// expiryEntry is one due time. It is stale, and dropped, when the
// session's deadline is no longer the one it was made for (a refresh or a
// close changed it).
type expiryEntry struct {
	s        *session
	deadline uint32 // a tick, as in session.deadline
	stage    expiryStage
}

// expiryWheel holds every pending notice and close. Safe from any
// goroutine.
type expiryWheel struct {
	now   func() time.Time
	epoch time.Time // tick 0, a whole second: whole-second exps fall on ticks

	mu      sync.Mutex
	buckets map[int64][]expiryEntry // by tick
	done    int64                   // the last tick walked
	running bool                    // the walking goroutine is on
	live    int                     // sessions with a deadline: at 0 every entry is stale
	fire    func(expiryEntry)       // called without mu held
}

func newExpiryWheel(now func() time.Time, fire func(expiryEntry)) *expiryWheel {
	return &expiryWheel{now: now, epoch: now().Truncate(time.Second), fire: fire, buckets: map[int64][]expiryEntry{}}
}

// tickAt is the first tick at or after t, in [1, MaxUint32] (a session
// keeps it in 4 bytes: 13 years of ticks; 0 means none).
func (w *expiryWheel) tickAt(t time.Time) uint32 {
	d := t.Sub(w.epoch)
	k := (d + expiryTick - 1) / expiryTick
	return uint32(min(max(k, 1), math.MaxUint32))
}

// tickNow is the last tick that began.
func (w *expiryWheel) tickNow() int64 { return int64(w.now().Sub(w.epoch) / expiryTick) }

// timeOf is when tick k begins.
func (w *expiryWheel) timeOf(k uint32) time.Time { return w.epoch.Add(time.Duration(k) * expiryTick) }

// add schedules e at tick at (or the next tick when that passed).
func (w *expiryWheel) add(e expiryEntry, at uint32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.running {
		w.done = w.tickNow() - 1
	}
	k := max(int64(at), w.done+1)
	w.buckets[k] = append(w.buckets[k], e)
	if !w.running {
		w.running = true
		go w.run()
	}
}

// run walks the buckets every tick until the wheel is empty.
func (w *expiryWheel) run() {
	t := time.NewTicker(expiryTick)
	defer t.Stop()
	var due []expiryEntry
	for range t.C {
		due = due[:0]
		w.mu.Lock()
		now := w.tickNow()
		for ; w.done < now; w.done++ {
			k := w.done + 1
			due = append(due, w.buckets[k]...)
			delete(w.buckets, k)
		}
		w.mu.Unlock()
		for _, e := range due {
			w.fire(e)
		}
		clear(due) // drop the sessions
		w.mu.Lock()
		if len(w.buckets) == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		w.mu.Unlock()
	}
}

// track counts the sessions with a deadline (old and new are a session's
// deadline before and after a change): when the last one goes, every entry
// left is stale, so the wheel drops them and its goroutine stops.
func (w *expiryWheel) track(old, new uint32) {
	if (old == 0) == (new == 0) {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if new != 0 {
		w.live++
		return
	}
	if w.live--; w.live == 0 {
		clear(w.buckets)
	}
}

// pending counts the scheduled entries, stale ones included (tests).
func (w *expiryWheel) pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, b := range w.buckets {
		n += len(b)
	}
	return n
}

// setDeadline records when s's token (exp, with the leeway) runs out and
// schedules its notice; issued is when the token was checked. A zero exp
// means no expiry.
func (h *Handler) setDeadline(s *session, exp time.Time, issued time.Time) {
	if g := s.gate; g != nil && !g.expireAt.IsZero() && (exp.IsZero() || !exp.Add(h.cfg.TokenLeeway).Before(g.expireAt)) {
		h.setHardDeadline(s, g.expireAt)
		return
	}
	if exp.IsZero() {
		h.clearDeadline(s)
		return
	}
	deadline := exp.Add(h.cfg.TokenLeeway)
	lead := refreshLead(deadline.Sub(issued))
	k := h.expiry.tickAt(deadline)
	h.expiry.track(s.deadline.Swap(k), k)
	h.expiry.add(expiryEntry{s: s, deadline: k, stage: stageNotice}, h.expiry.tickAt(deadline.Add(-lead)))
}

// setHardDeadline closes s at t with CloseTokenExpired, without a refresh
// notice: the connect proxy's expire_at, which no token extends (the
// reconnect asks the backend again).
func (h *Handler) setHardDeadline(s *session, t time.Time) {
	k := h.expiry.tickAt(t)
	h.expiry.track(s.deadline.Swap(k), k)
	h.expiry.add(expiryEntry{s: s, deadline: k, stage: stageClose}, k)
}

// clearDeadline makes s's entries stale: it has no expiry any more, or it
// closed.
func (h *Handler) clearDeadline(s *session) { h.expiry.track(s.deadline.Swap(0), 0) }

// expiryDue runs on the wheel's goroutine: it pushes the notice or closes.
func (h *Handler) expiryDue(e expiryEntry) {
	if e.s.deadline.Load() != e.deadline {
		return // refreshed or closed meanwhile
	}
	switch e.stage {
	case stageNotice:
		b, _ := json.Marshal(RefreshPush{RefreshInfo{Exp: h.expUnix(e.deadline)}})
		_ = e.s.conn.Send(server.Text, b)
		h.refreshNotices.Add(1)
		h.expiry.add(expiryEntry{s: e.s, deadline: e.deadline, stage: stageClose}, e.deadline)
	case stageClose:
		h.tokenExpired.Add(1)
		e.s.conn.Close(CloseTokenExpired, closeReasonExpired)
	}
}

// expUnix is deadline tick k in Unix seconds, rounded up.
func (h *Handler) expUnix(k uint32) int64 { return (h.expiry.timeOf(k).UnixMilli() + 999) / 1000 }

// refresh is the refresh op: a new token for the same sub replaces the
// connection's channels and expiry.
func (h *Handler) refresh(c *server.Conn[Session], req *Request) {
	s := c.Value.s
	if h.parser == nil {
		h.fail(c, req.ID, &Error{CodeBadRequest, "no tokens in anonymous mode"})
		return
	}
	if req.Token == "" {
		h.fail(c, req.ID, &Error{CodeBadRequest, "refresh needs a token"})
		return
	}
	claims, err := h.parseToken(req.Token)
	if err != nil {
		h.fail(c, req.ID, &Error{CodeBadToken, "invalid token: " + err.Error()})
		return
	}
	if claims.Subject != s.clientID {
		h.fail(c, req.ID, &Error{CodeBadToken, "the token's sub is not this connection's client ID"})
		return
	}
	s.channels = claims.Channels
	var exp time.Time
	if claims.ExpiresAt != nil {
		exp = claims.ExpiresAt.Time
	}
	h.setDeadline(s, exp, h.now())
	h.refreshes.Add(1)
	var res RefreshInfo
	if d := s.deadline.Load(); d != 0 {
		res.Exp = h.expUnix(d)
	}
	h.reply(c, req.ID, res)
}
