package server

import (
	"testing"
	"time"
)

// The queue's contract, step by step: over capacity it still takes the
// conn (and says so, so the caller pauses its reads), order is FIFO, a conn
// pushed while every worker sleeps is run (the lost wake-up the old
// channel-plus-overflow-list design had), and stop lets workers finish
// what is queued before they exit.
func TestWorkQueue(t *testing.T) {
	var w workQueue[struct{}]
	w.init(1)
	first, a, b, late := &Conn[struct{}]{}, &Conn[struct{}]{}, &Conn[struct{}]{}, &Conn[struct{}]{}
	gate := make(chan struct{})
	ran := make(chan *Conn[struct{}], 4)
	w.start(1, func(c *Conn[struct{}]) {
		if c == first {
			<-gate
		}
		ran <- c
	})
	if !w.push(first) {
		t.Fatal("push into an empty queue reported it full")
	}
	waitFor(t, 5*time.Second, "the worker to take the first conn", func() bool { return w.len() == 0 })
	if !w.push(a) || w.push(b) {
		t.Fatal("capacity 1: the first push fits, the second must report the queue full")
	}
	close(gate)
	for i, want := range []*Conn[struct{}]{first, a, b} {
		if got := recv(t, ran, 5*time.Second, "a queued conn to run"); got != want {
			t.Fatalf("run #%d out of order", i)
		}
	}
	// The worker is asleep (or about to be): a lone push must wake it.
	w.push(late)
	if got := recv(t, ran, 5*time.Second, "a conn pushed to an idle pool"); got != late {
		t.Fatal("wrong conn")
	}
	w2 := &Conn[struct{}]{}
	w.push(w2)
	w.stop()
	recv(t, ran, 5*time.Second, "the conn queued before stop")
	recv(t, w.done, 5*time.Second, "the worker to exit after stop")
	w.stop() // idempotent
}
