//go:build !race

package wsproto

import "testing"

// A publication to 200 SSE streams allocates about what one to a single
// stream does: its event is built once (Prepared.Alt), not per stream.
func TestSSEEncodedOncePerPublication(t *testing.T) {
	one := testing.AllocsPerRun(300, sseFanout(t, 1))
	many := testing.AllocsPerRun(300, sseFanout(t, 200))
	t.Logf("allocs per publication: %.1f with 1 stream, %.1f with 200", one, many)
	if many-one > 20 {
		t.Fatalf("allocs per publication: %.1f with 1 stream, %.1f with 200: something is built per stream", one, many)
	}
}
