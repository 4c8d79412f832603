package wsproto

import "time"

// bucket is a token bucket refilled lazily from the clock: no timer. 16
// bytes: it is in every /ws session.
type bucket struct {
	tokens float64
	last   int64 // UnixNano of the last take; 0: never
}

func (b *bucket) allow(now time.Time, rate float64, burst int) bool {
	if rate < 0 {
		return true
	}
	t := now.UnixNano()
	if b.last == 0 {
		b.tokens = float64(burst)
	} else {
		b.tokens += time.Duration(t-b.last).Seconds() * rate
		if b.tokens > float64(burst) {
			b.tokens = float64(burst)
		}
	}
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
