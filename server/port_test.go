package server

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// A port another server already holds is an error, not a silent share:
// gnet binds with SO_REUSEPORT (one listener per loop), which the kernel
// lets two processes of one user combine, each then getting part of the
// connections. (Found by the conformance suite: two daemons given the
// same free port answered each other's clients.)
func TestListenOnABusyPortFails(t *testing.T) {
	first := New[struct{}](Options{})
	first.Handle("/echo", echo[struct{}]())
	addr := start(t, first)

	second := New[struct{}](Options{})
	second.Handle("/echo", echo[struct{}]())
	done := make(chan error, 1)
	go func() { done <- second.ListenAndServe(addr) }()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatalf("ListenAndServe on a busy port: %v, want EADDRINUSE", err)
		}
	case <-second.Ready():
		t.Fatal("a second server started on a port the first one holds")
	case <-time.After(10 * time.Second):
		t.Fatal("ListenAndServe neither failed nor started")
	}
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
	}
}
