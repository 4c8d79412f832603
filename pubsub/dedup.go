package pubsub

import "time"

// dedup remembers a stream's idempotency keys for DedupWindow: a map for
// the lookup and a queue, in arrival order, to forget them. The caller
// serialises access (the stream's lock).
type dedup struct {
	m     map[string]uint64 // key → offset
	queue []dedupEntry
	head  int
}

type dedupEntry struct {
	key string
	at  time.Time
}

// seen forgets the keys older than the window and reports key's offset if
// it is still remembered. An empty key is never seen.
func (d *dedup) seen(key string, now time.Time) (uint64, bool) {
	for d.head < len(d.queue) && now.Sub(d.queue[d.head].at) >= DedupWindow {
		delete(d.m, d.queue[d.head].key)
		d.queue[d.head] = dedupEntry{}
		d.head++
	}
	if d.head == len(d.queue) {
		d.queue, d.head = d.queue[:0], 0
	} else if d.head > len(d.queue)/2 && d.head > 64 {
		d.queue = append(d.queue[:0], d.queue[d.head:]...)
		d.head = 0
	}
	if key == "" {
		return 0, false
	}
	off, ok := d.m[key]
	return off, ok
}

func (d *dedup) add(key string, offset uint64, now time.Time) {
	if key == "" {
		return
	}
	if d.m == nil {
		d.m = map[string]uint64{}
	}
	d.m[key] = offset
	d.queue = append(d.queue, dedupEntry{key, now})
}
