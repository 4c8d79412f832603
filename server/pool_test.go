package server

import (
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// Bug: a conn that found the pool's queue full could be left waiting, its
// reads paused, until some other conn was submitted. With a queue of one,
// many conns and handlers of random length, every message must still be
// handled, each conn's in order.
func TestPoolStressEveryMessageHandled(t *testing.T) {
	const conns, perConn = 50, 60
	type seq struct{ next int }
	var handled, disorder atomic.Int64
	srv := New[seq](Options{Workers: 3, QueueSize: 1, Inbox: 4})
	srv.Handle("/s", Funcs[seq]{Message: func(c *Conn[seq], m Message) {
		n, _ := strconv.Atoi(string(m.Data))
		if n != c.Value.next {
			disorder.Add(1)
		}
		c.Value.next = n + 1
		if rand.IntN(4) == 0 { // a quarter of the handlers take a while
			time.Sleep(time.Duration(rand.IntN(300)) * time.Microsecond)
		}
		handled.Add(1)
	}})
	addr := start(t, srv)
	var wg sync.WaitGroup
	for range conns {
		c, err := wstest.Dial(addr, "/s")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perConn {
				if err := c.WriteMessage(codec.OpText, []byte(strconv.Itoa(i))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	waitFor(t, 20*time.Second, "every message handled", func() bool { return handled.Load() == conns*perConn })
	if d := disorder.Load(); d != 0 {
		t.Fatalf("%d messages out of order", d)
	}
}
