//go:build linux

package bench

// timerHeap is a binary min-heap of connections ordered by next, each
// knowing its own index so that it can be removed or moved in O(log n).
type timerHeap []*conn

func (h timerHeap) Len() int   { return len(h) }
func (h timerHeap) min() *conn { return h[0] }

func (h *timerHeap) push(c *conn) {
	c.heapIdx = int32(len(*h))
	*h = append(*h, c)
	h.up(len(*h) - 1)
}

func (h *timerHeap) pop() *conn {
	c := (*h)[0]
	h.removeAt(0)
	return c
}

func (h *timerHeap) remove(c *conn) {
	if c.heapIdx >= 0 && int(c.heapIdx) < len(*h) && (*h)[c.heapIdx] == c {
		h.removeAt(int(c.heapIdx))
	}
}

func (h *timerHeap) fix(c *conn) {
	i := int(c.heapIdx)
	if !h.down(i) {
		h.up(i)
	}
}

func (h *timerHeap) removeAt(i int) {
	s := *h
	last := len(s) - 1
	c := s[i]
	if i != last {
		s[i] = s[last]
		s[i].heapIdx = int32(i)
	}
	s[last] = nil
	*h = s[:last]
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
	c.heapIdx = -1
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].next <= h[i].next {
			break
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) bool {
	start := i
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].next < h[l].next {
			m = r
		}
		if h[i].next <= h[m].next {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx = int32(i)
	h[j].heapIdx = int32(j)
}
