package poller

import (
	"testing"
	"time"
)

// One second's worth passes at once; then one per interval; the refused
// get consecutive slots one interval apart, after the bucket's own backlog.
func TestAcceptPacer(t *testing.T) {
	p := newAcceptPacer(10) // interval 100 ms, burst 10
	now := time.Duration(0)
	for i := range 10 {
		if ok, _ := p.admit(now); !ok {
			t.Fatalf("burst: upgrade %d refused", i)
		}
	}
	var waits []time.Duration
	for range 5 {
		ok, w := p.admit(now)
		if ok {
			t.Fatal("admitted beyond the burst")
		}
		waits = append(waits, w)
	}
	// The next token is free at 100 ms: slots from then on, 100 ms apart.
	for i, w := range waits {
		if want := time.Duration(i+1) * 100 * time.Millisecond; w != want {
			t.Fatalf("refused %d told to wait %v, want %v (all: %v)", i, w, want, waits)
		}
	}
	// A token comes back every interval.
	now += 100 * time.Millisecond
	if ok, _ := p.admit(now); !ok {
		t.Fatal("no token after one interval")
	}
	if ok, _ := p.admit(now); ok {
		t.Fatal("two tokens after one interval")
	}
	// A long refused queue is capped at maxRetryAfter.
	var w time.Duration
	for range 100000 {
		_, w = p.admit(now)
	}
	if w != maxRetryAfter {
		t.Fatalf("wait after a huge queue %v, want the cap %v", w, maxRetryAfter)
	}
	// Once idle, the queue is forgotten: a burst passes again.
	now += time.Hour
	for i := range 10 {
		if ok, _ := p.admit(now); !ok {
			t.Fatalf("after an idle hour: upgrade %d refused", i)
		}
	}
}

// Below one per second there is no burst: one upgrade per interval.
func TestAcceptPacerSlowRate(t *testing.T) {
	p := newAcceptPacer(0.5)
	if ok, _ := p.admit(0); !ok {
		t.Fatal("first upgrade refused")
	}
	if ok, w := p.admit(time.Millisecond); ok || w != 2*time.Second-time.Millisecond {
		t.Fatalf("second upgrade 1 ms later: admitted %v, wait %v", ok, w)
	}
	if ok, _ := p.admit(2 * time.Second); !ok {
		t.Fatal("refused after one interval")
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {time.Second + 1, 2}, {2500 * time.Millisecond, 3}} {
		if got := retryAfterSeconds(tc.d); got != tc.want {
			t.Errorf("retryAfterSeconds(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}
