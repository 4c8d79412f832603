//go:build linux

package bench

import (
	"strconv"
	"syscall"
	"time"

	"github.com/wsdhq/wsd/codec"
)

// connEnd is what the loop learnt about how the conn it is closing ended;
// closeFd hands it to the storm and clears it.
type connEnd struct {
	frame      bool   // the server sent a close frame
	code       uint16 // its code
	reason     string // its reason
	lost       string // no close frame: why the conn broke
	status     int    // the upgrade was refused with this HTTP status
	retryAfter string // and this Retry-After
}

// stormScenario follows every client through closes and reconnects. Its
// state lives on the conns and in the loop's stormPart; the scenario value
// itself is read-only once the run starts.
type stormScenario struct {
	pol         stormPolicy
	maxAttempts int
}

func newStormScenario(cfg Config) *stormScenario {
	return &stormScenario{
		pol:         stormPolicy{honor: !cfg.IgnoreHints, backoffMin: cfg.BackoffMin, backoffMax: cfg.BackoffMax},
		maxAttempts: cfg.MaxAttempts,
	}
}

func (s *stormScenario) begin(*loop, int64) {}

// timer is a waiting client's next attempt.
func (s *stormScenario) timer(l *loop, c *conn, now int64) {
	if c.state != stWaiting || !l.storming() {
		return
	}
	if c.hintAt > 0 && now < c.hintAt {
		l.ctr.early.Add(1)
	}
	l.ctr.attempts.Add(1)
	if why := l.dial(c, now); why != "" {
		c.state = stClosed
		l.live--
		l.ctr.failed.Add(1)
		l.reason(why)
		l.stormGone(c, false, now)
		l.end = connEnd{}
	}
}

func (s *stormScenario) message(l *loop, _ *conn, _ codec.OpCode, _ []byte, _ int64) bool {
	l.ctr.recv.Add(1)
	return true
}

// storming reports whether closes are storm events: from the first
// upgrade (a node may die before every client is up) until the run stops.
func (l *loop) storming() bool { return l.storm != nil && l.phase < phStop }

// stormGone runs when c's socket has just closed during the storm: wasUp
// tells a lost connection from a failed attempt, l.end says how. It
// records the event and schedules the client's next attempt.
func (l *loop) stormGone(c *conn, wasUp bool, now int64) {
	s := l.w.scen.(*stormScenario)
	wall := time.Now().UnixNano()
	e := l.end
	var (
		how      stormEnd
		hint     time.Duration
		hasHint  bool
		failures int
	)
	switch {
	case wasUp:
		how = endClosed
		if e.frame {
			hint, hasHint = codec.ParseRetryHint(e.reason)
		}
		l.ctr.closes.Add(1)
		l.storm.grain(wall).Closes++
		if l.storm.FirstCloseNs == 0 {
			l.storm.FirstCloseNs = wall
		}
		l.storm.CloseKinds[closeKind(e, hasHint)]++
		if !c.hit {
			c.hit = true
			l.ctr.hit.Add(1)
		}
		if !c.down {
			c.down, c.downAt, c.fails = true, now, 0
			l.ctr.waiting.Add(1)
		}
	case !c.down:
		return // not a storm client
	default:
		g := l.storm.grain(wall)
		g.Failures++
		l.ctr.stormFailures.Add(1)
		how = endFailed
		if e.status != 0 {
			how = endRefused
			hint, hasHint = codec.ParseRetryAfter(e.retryAfter, time.Now())
			g.Refused++
			l.ctr.refused.Add(1)
		}
		failures = int(c.fails)
		c.fails++
		if int(c.fails) >= s.maxAttempts {
			l.ctr.gaveUp.Add(1)
			l.ctr.waiting.Add(-1)
			return
		}
	}
	st := s.pol.next(how, hint, hasHint, failures, l.rng.Int64N)
	if st.rotate {
		c.ep = uint8((int(c.ep) + 1) % len(l.w.targets))
	}
	c.hintAt = 0
	if st.notBefore > 0 {
		c.hintAt = now + int64(st.notBefore)
	}
	c.state = stWaiting
	c.next = now + int64(st.wait)
	l.live++
	l.schedule(c)
}

// back records a storm client's successful reconnect.
func (l *loop) back(c *conn, now int64) {
	c.down, c.fails, c.hintAt = false, 0, 0
	l.ctr.reconnects.Add(1)
	l.ctr.waiting.Add(-1)
	wall := time.Now().UnixNano()
	l.storm.grain(wall).Reconnects++
	l.storm.LastBackNs = max(l.storm.LastBackNs, wall)
	l.hist.Record(now - c.start)
	l.storm.Downtime.Record(now - c.downAt)
}

// closeKind names an end for the report's close counts: a few distinct
// strings, not one per reason (hints differ per client).
func closeKind(e connEnd, hasHint bool) string {
	switch {
	case e.frame && hasHint:
		return "close " + strconv.Itoa(int(e.code)) + " with retry hint"
	case e.frame:
		return "close " + strconv.Itoa(int(e.code))
	case e.lost != "":
		return e.lost
	}
	return "closed"
}

// sendSignal sends sig to pid (0 only checks that it may).
func sendSignal(pid int, sig syscall.Signal) error { return syscall.Kill(pid, sig) }
