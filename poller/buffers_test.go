package poller

import (
	"bytes"
	"slices"
	"testing"
)

func TestBuffersClasses(t *testing.T) {
	var p Buffers
	for _, n := range []int{0, 1, 512, 513, 4096, 100_000, 16 << 20} {
		b := p.Get(n)
		if cap(b.B) < n || len(b.B) != 0 {
			t.Fatalf("Get(%d): len %d cap %d", n, len(b.B), cap(b.B))
		}
		b.B = append(b.B, make([]byte, n)...)
		b = p.Grow(b, 1000)
		if cap(b.B)-len(b.B) < 1000 || len(b.B) != n {
			t.Fatalf("Grow after %d: len %d cap %d", n, len(b.B), cap(b.B))
		}
		p.Put(b)
	}
	huge := p.Get(64 << 20) // beyond the classes: plain allocation, not pooled
	if huge.class >= 0 {
		t.Fatal("64 MiB buffer should not be pooled")
	}
	p.Put(huge)
}

func TestBufferPutDropsResliced(t *testing.T) {
	var p Buffers
	b := p.Get(1000)
	b.B = b.B[:0:10] // capacity shrunk by a careless user
	p.Put(b)
	if c := p.Get(1000); cap(c.B) < 1000 {
		t.Fatalf("pool returned a poisoned buffer of cap %d", cap(c.B))
	}
}

func BenchmarkBuffersGetPut(b *testing.B) {
	var p Buffers
	b.ReportAllocs()
	for b.Loop() {
		p.Put(p.Get(1024))
	}
}

// Grow must carry the shared frames along with the flat bytes: an outbound
// batch is both, and a frame lost here is a message silently never sent.
func TestBuffersGrowKeepsSegs(t *testing.T) {
	var p Buffers
	b := p.Get(0)
	b.B = append(b.B, "own1"...)
	shared1, shared2 := []byte("shared frame 1"), []byte("shared frame 2")
	b.segs = append(b.segs, seg{b: shared1, ownEnd: len(b.B)})
	b.B = append(b.B, "own2"...)
	b.segs = append(b.segs, seg{b: shared2, ownEnd: len(b.B)})
	b.segBytes = len(shared1) + len(shared2)
	want := slices.Clone(b.segs)
	ownWant := string(b.B)

	b = p.Grow(b, 4096) // past the 512 B class: a new Buf
	if cap(b.B)-len(b.B) < 4096 {
		t.Fatalf("Grow: cap %d len %d", cap(b.B), len(b.B))
	}
	if string(b.B) != ownWant {
		t.Fatalf("own bytes after Grow: %q, want %q", b.B, ownWant)
	}
	if len(b.segs) != len(want) {
		t.Fatalf("Grow kept %d shared frames, want %d", len(b.segs), len(want))
	}
	for i, s := range b.segs {
		if !bytes.Equal(s.b, want[i].b) || s.ownEnd != want[i].ownEnd {
			t.Fatalf("seg %d after Grow: %q at %d, want %q at %d", i, s.b, s.ownEnd, want[i].b, want[i].ownEnd)
		}
	}
	if b.segBytes != len(shared1)+len(shared2) {
		t.Fatalf("shared bytes after Grow: %d, want %d", b.segBytes, len(shared1)+len(shared2))
	}
	p.Put(b)
}
