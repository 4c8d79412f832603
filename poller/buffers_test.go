package poller

import "testing"

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
