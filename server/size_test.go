package server

import (
	"testing"
	"unsafe"
)

// See poller's TestConnSizeBudget: the per-connection struct must stay in
// the 64-byte size class with a pointer-sized Value (wsd's own).
func TestConnSizeBudget(t *testing.T) {
	if s := unsafe.Sizeof(Conn[*int]{}); s > 64 {
		t.Fatalf("server.Conn is %d bytes, budget 64", s)
	}
}
