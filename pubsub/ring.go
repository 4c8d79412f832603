package pubsub

// ring is a channel's history: publications with consecutive offsets,
// oldest first, in a circular buffer that grows up to the history size on
// demand (a channel with three publications holds three slots, not 100).
type ring struct {
	buf  []Publication
	head int // index of the oldest
	n    int
}

func (r *ring) len() int { return r.n }

// at returns the i-th oldest publication.
func (r *ring) at(i int) *Publication { return &r.buf[(r.head+i)%len(r.buf)] }

func (r *ring) front() *Publication { return r.at(0) }

// popFront drops the oldest publication and returns its data size.
func (r *ring) popFront() int {
	p := &r.buf[r.head]
	size := len(p.Data)
	*p = Publication{}
	r.head = (r.head + 1) % len(r.buf)
	r.n--
	if r.n == 0 {
		r.head = 0
	}
	return size
}

// push appends p; the caller has made room (n < max).
func (r *ring) push(p Publication, max int) {
	if r.n == len(r.buf) {
		r.grow(max)
	}
	r.buf[(r.head+r.n)%len(r.buf)] = p
	r.n++
}

func (r *ring) grow(max int) {
	size := 2 * len(r.buf)
	if size < 4 {
		size = 4
	}
	if size > max {
		size = max
	}
	buf := make([]Publication, size)
	for i := 0; i < r.n; i++ {
		buf[i] = *r.at(i)
	}
	r.buf, r.head = buf, 0
}

// reset drops everything and releases the buffer.
func (r *ring) reset() { *r = ring{} }
