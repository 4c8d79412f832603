//go:build !race

package pubsub

import "testing"

// Encoding a binary push into a buffer with room allocates nothing, like
// the JSON push.
func TestAppendBinaryPushAllocs(t *testing.T) {
	p := &Publication{Channel: "game:board", Offset: 7, Epoch: "e", Data: make([]byte, 1024)}
	buf := make([]byte, 0, BinaryPushSize(p))
	if n := testing.AllocsPerRun(100, func() { buf = AppendBinaryPush(buf[:0], p) }); n != 0 {
		t.Fatalf("%v allocations per push", n)
	}
}
