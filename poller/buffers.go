package poller

import (
	"math/bits"
	"sync"
)

// Buf is a pooled byte buffer. B's capacity is its size class.
type Buf struct {
	B        []byte
	segs     []seg // shared frames placed between B's bytes (outbound only)
	segBytes int   // their total length: the outbound cap is checked per message
	class    int8
}

const (
	minClassShift = 9  // 512 B
	numClasses    = 16 // up to 16 MiB
)

// Buffers is a size-classed pool of Bufs shared by a server's loops and
// workers: message assembly, copies to the worker pool and outbound batches
// come from here, so steady-state traffic allocates nothing. Safe for
// concurrent use; the zero value is ready.
type Buffers struct {
	pools [numClasses]sync.Pool
}

func classOf(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// Get returns an empty Buf with capacity of at least n.
func (p *Buffers) Get(n int) *Buf {
	c := classOf(n)
	if c >= numClasses {
		return &Buf{B: make([]byte, 0, n), class: -1}
	}
	if v := p.pools[c].Get(); v != nil {
		b := v.(*Buf)
		b.B = b.B[:0]
		b.segs, b.segBytes = b.segs[:0], 0
		return b
	}
	return &Buf{B: make([]byte, 0, 1<<(c+minClassShift)), class: int8(c)}
}

// Grow makes room for n more bytes, moving to a larger class if needed.
// Everything b holds moves: its bytes and its shared frames, which stay at
// the same offsets. b must not be used afterwards.
func (p *Buffers) Grow(b *Buf, n int) *Buf {
	if cap(b.B)-len(b.B) >= n {
		return b
	}
	nb := p.Get(len(b.B) + n)
	nb.B = append(nb.B, b.B...)
	// Swap rather than copy: no allocation, and b goes back to the pool
	// holding nb's empty slice.
	nb.segs, b.segs = b.segs, nb.segs[:0]
	nb.segBytes, b.segBytes = b.segBytes, 0
	p.Put(b)
	return nb
}

// Put returns b to the pool. b must not be used afterwards.
func (p *Buffers) Put(b *Buf) {
	if b == nil || b.class < 0 {
		return
	}
	clear(b.segs) // do not pin shared frames from the pool
	if cap(b.segs) > 64 {
		b.segs = nil
	}
	// A buffer whose slice was re-sliced to a smaller capacity would poison
	// its class; drop it instead.
	if cap(b.B) != 1<<(int(b.class)+minClassShift) {
		return
	}
	p.pools[b.class].Put(b)
}
