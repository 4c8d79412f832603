//go:build !race

package server

import "testing"

// The echo hot path must not allocate in steady state: an inline route
// not at all, a worker route at most the loop wake-up (gnet's Execute
// closure and queue node). AllocsPerRun counts the whole process, server
// included.
func TestEchoAllocs(t *testing.T) {
	addr := echoServer(t)
	for _, tt := range []struct {
		path string
		max  float64
	}{{"/inline", 0}, {"/worker", 2}} {
		roundTrip := echoRoundTrip(t, addr, tt.path, 1024)
		if got := testing.AllocsPerRun(2000, roundTrip); got > tt.max {
			t.Errorf("%s: %.1f allocations per echoed 1 KiB message, want at most %.0f", tt.path, got, tt.max)
		}
	}
}
