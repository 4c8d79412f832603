package poller

import (
	"strconv"
	"sync"
	"time"

	"github.com/wsdhq/wsd/codec"
)

// maxRetryAfter bounds the wait a refused client is told: past it the
// queue of refused clients is not extended (they all get this much).
const maxRetryAfter = 10 * time.Minute

// acceptPacer is Config.MaxAcceptRate: a token bucket in GCRA form (one
// "theoretical arrival time" instead of a token count) holding one second's
// worth of upgrades, plus a queue of the clients it refused.
//
// The queue is what paces a storm instead of just refusing it: each refused
// client is given the next free slot after the ones already handed out, so
// 1,000 clients refused at once under a rate of 100/s are told to come back
// over the next 10 s, not all after the same second. Loops admit in
// parallel, hence the mutex; it is taken only when a rate is set.
type acceptPacer struct {
	mu       sync.Mutex
	interval time.Duration // 1/rate
	tau      time.Duration // how far tat may run ahead of now: a second's worth of upgrades, less one
	tat      time.Duration // when the bucket is full again, on the engine's clock
	queue    time.Duration // the last slot given to a refused client
}

func newAcceptPacer(rate float64) *acceptPacer {
	iv := max(time.Duration(float64(time.Second)/rate), 1)
	return &acceptPacer{interval: iv, tau: max(time.Second-iv, 0)}
}

// admit takes a token at now (time since the engine started). When there
// is none it returns the wait until the client's slot instead: the slots
// follow each other one interval apart from when the next token is free. They
// are not reserved (a returning client cannot be told from a new one), so
// a client that finds its token taken is refused again, with a later slot.
func (p *acceptPacer) admit(now time.Duration) (ok bool, wait time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	tat := max(p.tat, now)
	if tat-now <= p.tau {
		p.tat = tat + p.interval
		return true, 0
	}
	slot := tat - p.tau // when the next token is free
	if p.queue >= slot {
		slot = p.queue + p.interval
	}
	slot = min(slot, now+maxRetryAfter)
	p.queue = slot
	return false, slot - now
}

// retryAfterSeconds is wait as a Retry-After value: whole seconds (RFC
// 9110 §10.2.3 has no fractions), rounded up so that a client never comes
// back before its slot, and at least 1.
func retryAfterSeconds(wait time.Duration) int {
	return max(1, int((wait+time.Second-1)/time.Second))
}

// refuseRate answers an upgrade over MaxAcceptRate with 503 and the
// Retry-After of the client's slot, and closes.
func (e *Engine) refuseRate(c *Conn, wait time.Duration) {
	e.answerAndClose(c, &codec.HTTPError{Status: 503, Reason: "upgrade rate limit, retry later",
		Header: []codec.HeaderField{{Name: "Retry-After", Value: strconv.Itoa(retryAfterSeconds(wait))}}}, CauseAcceptRate)
}
