package server

import (
	"testing"
	"time"
)

// The state the race leaves: submit's non-blocking send failed on a full
// queue, the workers then emptied the queue, looked at the overflow list
// before submit appended to it, and went back to waiting on the channel.
// Built directly here: the conn must still be run.
func TestOverflowLostWakeup(t *testing.T) {
	srv := New[struct{}](Options{Workers: 1, QueueSize: 1})
	ran := make(chan struct{})
	r := &route[struct{}]{srv: srv, path: "/x", h: Funcs[struct{}]{Open: func(*Conn[struct{}]) { close(ran) }}}
	c := &Conn[struct{}]{route: r, scheduled: true}
	srv.workers.Add(1)
	go srv.worker()
	srv.ovMu.Lock()
	srv.overflow = append(srv.overflow, c)
	srv.ovMu.Unlock()
	defer srv.stopWorkers()
	recv(t, ran, 2*time.Second, "the overflowed conn to run with a worker idle")
}
