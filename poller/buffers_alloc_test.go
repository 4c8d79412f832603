//go:build !race

package poller

import "testing"

// Moving a batch with shared frames to a larger class swaps the frame
// lists instead of copying them: no allocation once the pool is warm.
func TestBuffersGrowWithSegsAllocs(t *testing.T) {
	var p Buffers
	frame := make([]byte, 100)
	grow := func() {
		b := p.Get(0)
		b.B = append(b.B, make([]byte, 400)...)
		b.segs = append(b.segs, seg{b: frame, ownEnd: len(b.B)})
		b = p.Grow(b, 4096)
		if len(b.segs) != 1 {
			t.Fatal("shared frame lost")
		}
		p.Put(b)
	}
	for range 10 {
		grow() // warm the pools and the segs slices
	}
	if n := testing.AllocsPerRun(1000, grow); n > 0 {
		t.Fatalf("Grow with shared frames: %.1f allocs, want 0", n)
	}
}
