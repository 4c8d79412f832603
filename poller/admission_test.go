package poller

import (
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/panjf2000/gnet/v2"
)

// admitLoop and admitConn stand in for gnet's: OnOpen needs only the
// remote address, the conn's loop and its context.
type admitLoop struct{ gnet.EventLoop }

type admitConn struct {
	gnet.Conn
	el  *admitLoop
	ctx any
}

func (c *admitConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *admitConn) EventLoop() gnet.EventLoop { return c.el }
func (c *admitConn) SetContext(v any)          { c.ctx = v }
func (c *admitConn) Context() any              { return c.ctx }

// Loops run OnOpen in parallel; the capacity check and the count must be
// one step, or several loops each see the last free place and all take it.
func TestAdmissionIsAtomic(t *testing.T) {
	const (
		loops  = 8
		trials = 5000
	)
	// A per-address limit far above the test's needs: its lock sits in
	// OnOpen's path and widens any gap between check and count.
	e := New(Config{MaxConns: 1, MaxConnsPerIP: 1 << 30, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))},
		fdEchoHandler{})
	els := make([]*admitLoop, loops)
	for i := range els {
		els[i] = &admitLoop{}
	}
	deadline := time.Now().Add(3 * time.Second)
	for trial := 0; trial < trials && time.Now().Before(deadline); trial++ {
		e.stats.Conns.Store(0)
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			admitted int
		)
		start := make(chan struct{})
		for _, el := range els {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if _, act := e.OnOpen(&admitConn{el: el}); act == gnet.None {
					mu.Lock()
					admitted++
					mu.Unlock()
				}
			}()
		}
		close(start)
		wg.Wait()
		if admitted != 1 || e.stats.Conns.Load() != 1 {
			t.Fatalf("trial %d: MaxConns 1, %d loops admitted %d (count %d)",
				trial, loops, admitted, e.stats.Conns.Load())
		}
	}
}
