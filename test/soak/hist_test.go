package soak

import (
	"sync/atomic"
	"time"
)

// hist is a latency histogram with 100 µs buckets up to 30 s, safe for
// concurrent use (one atomic add per sample).
type hist struct{ b [300_000]atomic.Uint64 }

const histStep = 100 * time.Microsecond

func (h *hist) add(d time.Duration) {
	i := max(int(d/histStep), 0)
	i = min(i, len(h.b)-1)
	h.b[i].Add(1)
}

// quantile returns the q-quantile's bucket upper bound and the sample count.
func (h *hist) quantile(q float64) (time.Duration, uint64) {
	var n uint64
	for i := range h.b {
		n += h.b[i].Load()
	}
	if n == 0 {
		return 0, 0
	}
	want := uint64(q*float64(n) + 0.5)
	var c uint64
	for i := range h.b {
		if c += h.b[i].Load(); c >= max(want, 1) {
			return time.Duration(i+1) * histStep, n
		}
	}
	return time.Duration(len(h.b)) * histStep, n
}
