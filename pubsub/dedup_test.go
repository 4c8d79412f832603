package pubsub

import (
	"strconv"
	"testing"
	"time"
)

// Keys are forgotten after DedupWindow, in arrival order, and the queue
// does not grow without bound while keys keep coming.
func TestDedupWindow(t *testing.T) {
	var d dedup
	t0 := time.Unix(1000, 0)
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * time.Second)
		key := "k" + strconv.Itoa(i)
		if _, dup := d.seen(key, now); dup {
			t.Fatalf("key %d seen before it was added", i)
		}
		d.add(key, uint64(i+1), now)
	}
	end := t0.Add(999 * time.Second)
	if off, dup := d.seen("k999", end); !dup || off != 1000 {
		t.Fatalf("the newest key: %d %v", off, dup)
	}
	if _, dup := d.seen("k0", end); dup {
		t.Fatal("a key older than the window is still seen")
	}
	if n := len(d.m); n != int(DedupWindow/time.Second) {
		t.Fatalf("%d keys remembered, want the window's %d", n, int(DedupWindow/time.Second))
	}
	if live := len(d.queue) - d.head; live != len(d.m) || cap(d.queue) > 4*len(d.m)+256 {
		t.Fatalf("queue %d live of len %d cap %d", live, len(d.queue), cap(d.queue))
	}
	if _, dup := d.seen("", end); dup {
		t.Fatal("the empty key is never a duplicate")
	}
}
