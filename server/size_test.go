package server

import (
	"testing"
	"unsafe"
)

// See poller's TestConnSizeBudget: the per-connection struct must stay in
// the 64-byte size class when Value is empty.
func TestConnSizeBudget(t *testing.T) {
	if s := unsafe.Sizeof(Conn[struct{}]{}); s > 64 {
		t.Fatalf("server.Conn is %d bytes, budget 64", s)
	}
}
