package poller

import (
	"context"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// fakeLoop is a gnet event loop that only records Execute.
type fakeLoop struct {
	gnet.EventLoop // nil: nothing else is called
	ran            chan gnet.Runnable
}

func (f *fakeLoop) Execute(_ context.Context, r gnet.Runnable) error {
	f.ran <- r
	return nil
}

// A Run flushes at most flushChunk dirty conns and asks for another Run
// for the rest. gnet runs queued tasks back to back without reading any
// socket in between, so one Run over 10,000 broadcast subscribers held
// back the loop's reads — the next publication among them — for a whole
// pass (docs/bench/broadcast-sweep.md). A conn made dirty again meanwhile
// is flushed by a later Run, and the loop is unscheduled once all are.
func TestRunFlushesInChunks(t *testing.T) {
	gl := &fakeLoop{ran: make(chan gnet.Runnable, 4)}
	l := &loop{eng: &Engine{}, gl: gl}
	conns := make([]*Conn, 2*flushChunk+10)
	for i := range conns {
		conns[i] = &Conn{loop: l}
		conns[i].scheduleLocked()
	}
	next := func() {
		t.Helper()
		select {
		case r := <-gl.ran:
			if err := r.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no Run was asked for")
		}
	}
	flushed := func() int {
		n := 0
		for _, c := range conns {
			if !c.dirty {
				n++
			}
		}
		return n
	}
	next() // the Execute of the first scheduleLocked
	if got := flushed(); got != flushChunk {
		t.Fatalf("first Run flushed %d conns, want %d", got, flushChunk)
	}
	conns[0].scheduleLocked() // sent to again while the rest wait
	next()
	next()
	if got := flushed(); got != len(conns)-1 || !conns[0].dirty {
		t.Fatalf("after three Runs %d flushed (conn 0 dirty: %v), want all but conn 0", got, conns[0].dirty)
	}
	next()
	l.mu.Lock()
	scheduled := l.scheduled
	l.mu.Unlock()
	if got := flushed(); got != len(conns) || scheduled || len(gl.ran) != 0 {
		t.Fatalf("after the last Run: %d flushed, scheduled %v, %d Runs asked for", got, scheduled, len(gl.ran))
	}
}
