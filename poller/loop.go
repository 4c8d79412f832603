package poller

import (
	"context"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/panjf2000/gnet/v2"

	"github.com/wsdhq/wsd/codec"
)

// loop is wsd's state for one gnet event loop. conns and scratch are owned
// by the loop goroutine; dirty is how other goroutines hand it work.
type loop struct {
	eng   *Engine
	gl    gnet.EventLoop
	conns []*Conn // every live conn of this loop, for the sweep

	mu        sync.Mutex
	dirty     []*Conn
	scheduled bool

	// pend is the dirty list being flushed, pend[head:] what is left of
	// it. Loop goroutine only.
	pend []*Conn
	head int

	iov     [][]byte     // scratch for Writev
	scratch []byte       // scratch for control frames
	accept  codec.Accept // the negotiation of the handshake in progress (Upgrade gets a pointer to it)

	outBytes  int64 // this loop's outbound bytes as last sampled (memory budget)
	shedAfter int64 // engine nanotime before which shed does not scan again
}

// markDirty queues c for a flush and wakes the loop once per batch: many
// Sends from workers cost one loop task, not one each.
func (l *loop) markDirty(c *Conn) {
	l.mu.Lock()
	l.dirty = append(l.dirty, c)
	wake := !l.scheduled
	l.scheduled = true
	l.mu.Unlock()
	if wake {
		if err := l.gl.Execute(context.Background(), l); err != nil {
			// The engine is stopping; nothing will be flushed any more.
			l.mu.Lock()
			l.scheduled = false
			l.mu.Unlock()
		}
	}
}

// flushChunk is how many dirty conns one Run flushes. gnet runs queued
// tasks back to back without reading any socket in between, so a Run over
// thousands of broadcast subscribers (≈ 12 µs a write on a 2-vCPU VM) would hold back the
// loop's reads — the next publication among them — for a whole pass.
const flushChunk = 256

// Run flushes up to flushChunk dirty conns. It is the gnet.Runnable the
// loop executes; while conns are left it stays scheduled and asks for
// another Run from outside the task queue, so that the loop reads its
// sockets first.
func (l *loop) Run(context.Context) error {
	if l.head == len(l.pend) {
		l.mu.Lock()
		l.pend, l.dirty, l.head = l.dirty, l.pend[:0], 0
		l.mu.Unlock()
	}
	end := min(len(l.pend), l.head+flushChunk)
	for i := l.head; i < end; i++ {
		c := l.pend[i]
		c.mu.Lock()
		c.dirty = false
		c.mu.Unlock()
		l.flush(c)
		l.pend[i] = nil
	}
	l.head = end
	l.mu.Lock()
	more := l.head < len(l.pend) || len(l.dirty) > 0
	l.scheduled = more
	l.mu.Unlock()
	if more {
		go l.again()
	}
	return nil
}

// again schedules another Run. It runs on a goroutine of its own (one per
// chunk, a few hundred a second at most): queued from inside Run, the next
// Run would be taken in the same pass over gnet's task queue, before any
// socket is read.
func (l *loop) again() {
	if err := l.gl.Execute(context.Background(), l); err != nil {
		// The engine is stopping; nothing will be flushed any more.
		l.mu.Lock()
		l.scheduled = false
		l.mu.Unlock()
	}
}

// flush writes c's queued frames. On the loop.
func (l *loop) flush(c *Conn) {
	cfg := &l.eng.cfg
	c.mu.Lock()
	out := c.out
	closeOut, code, why := c.closeOut, c.closeReq, c.closeWhy
	if out == nil {
		c.mu.Unlock()
		return
	}
	// Slow means the peer has not read what it was sent before: gnet still
	// holds more than the cap. A single message larger than the cap (up to
	// MaxMessage) still goes out to a peer that keeps up.
	slow := (c.state == stateOpen || c.state == stateStream) && why != CauseSlowConsumer && c.gc.OutboundBuffered() > cfg.MaxOutboundBytes
	if slow && cfg.SlowPolicy == PolicyDrop && !closeOut {
		// Hold the batch instead of dropping it: its Sends succeeded and a
		// takeover compressor has seen it. Send refuses what comes once
		// the held queue passes the cap; the sweep and later Sends retry.
		if !c.stalled {
			c.stalled = true
			l.eng.stats.SlowConsumers.Add(1)
		}
		c.mu.Unlock()
		return
	}
	c.stalled = false
	c.out = nil
	if slow {
		c.closeOut, c.closeReq, c.closeWhy = true, codec.ClosePolicyViolation, CauseSlowConsumer
	}
	c.mu.Unlock()
	defer l.eng.bufs.Put(out)
	if c.state >= stateDraining {
		return
	}
	if c.state == stateHandshake {
		// Sends before the 101 cannot happen through the API; drop.
		return
	}
	if slow {
		l.eng.stats.SlowConsumers.Add(1)
		if c.state == stateStream {
			l.endStream(c, CauseSlowConsumer)
			return
		}
		l.sendClose(c, codec.ClosePolicyViolation, "slow consumer", CauseSlowConsumer)
		return
	}
	l.write(c, out)
	if c.state == stateStream {
		c.since = l.eng.clock() // keep-alives are for silent streams only
		if closeOut {
			l.endStream(c, why)
		}
		return
	}
	if closeOut && c.state == stateOpen {
		// The close frame was the last thing queued and is now written.
		c.closeCode, c.closeCause = code, why
		c.state = stateClosing
		c.since = l.eng.clock()
	}
}

// coalesceWrite is the batch size up to which write copies a batch of
// several pieces into one buffer rather than handing gnet a vector.
const coalesceWrite = 16 << 10

// write hands a batch to gnet in one call: own bytes and shared frames,
// in the order they were queued. On the loop.
func (l *loop) write(c *Conn, out *Buf) {
	l.iov = l.iov[:0]
	pos := 0
	for _, s := range out.segs {
		if s.ownEnd > pos {
			l.iov = append(l.iov, out.B[pos:s.ownEnd])
			pos = s.ownEnd
		}
		l.iov = append(l.iov, s.b)
	}
	if len(out.B) > pos {
		l.iov = append(l.iov, out.B[pos:])
	}
	switch n := len(out.B) + out.segBytes; {
	case len(l.iov) == 0:
	case len(l.iov) == 1:
		_, _ = c.gc.Write(l.iov[0])
	case n <= coalesceWrite:
		// One write from the loop's scratch: Writev allocates its iovecs.
		l.scratch = l.scratch[:0]
		for _, b := range l.iov {
			l.scratch = append(l.scratch, b...)
		}
		_, _ = c.gc.Write(l.scratch)
	default:
		_, _ = c.gc.Writev(l.iov)
	}
	clear(l.iov)
}

// sendClose writes a close frame now and moves c to closing. On the loop.
func (l *loop) sendClose(c *Conn, code uint16, reason string, why Cause) {
	if c.state != stateOpen {
		return
	}
	l.scratch = codec.AppendClose(l.scratch[:0], code, reason)
	_, _ = c.gc.Write(l.scratch)
	c.closeCode, c.closeCause = code, why
	c.setCloseText(reason)
	c.state = stateClosing
	c.since = l.eng.clock()
}

// fail closes c at once: a close frame with code if the upgrade happened,
// then the TCP connection. On the loop.
func (l *loop) fail(c *Conn, code uint16, reason string, why Cause) {
	if c.state == stateClosed {
		return
	}
	if c.state == stateOpen {
		// What the application already queued (an echo just before a
		// protocol error, say) goes out first.
		l.flush(c)
		c.mu.Lock()
		c.closeOut = true
		c.mu.Unlock()
	}
	if c.state == stateOpen {
		l.scratch = codec.AppendClose(l.scratch[:0], code, reason)
		_, _ = c.gc.Write(l.scratch)
	}
	c.closeCode, c.closeCause = code, why
	c.setCloseText(reason)
	if c.state == stateOpen && c.gc.OutboundBuffered() == 0 {
		// Closing now, while the peer is still sending, would make the
		// kernel answer with RST and the peer could lose our close frame.
		// Shut our side instead (the peer reads EOF after the close frame)
		// and discard its input until it closes or the sweep gives up.
		if unix.Shutdown(c.gc.Fd(), unix.SHUT_WR) == nil {
			c.state = stateDraining
			c.since = l.eng.clock()
			return
		}
	}
	c.state = stateClosed
	_ = c.gc.Close()
}

func (l *loop) add(c *Conn) {
	c.idx = int32(len(l.conns))
	l.conns = append(l.conns, c)
}

func (l *loop) remove(c *Conn) {
	i := int(c.idx)
	if i < 0 || i >= len(l.conns) || l.conns[i] != c {
		return
	}
	last := len(l.conns) - 1
	l.conns[i] = l.conns[last]
	l.conns[i].idx = int32(i)
	l.conns[last] = nil
	l.conns = l.conns[:last]
	c.idx = -1
}

// sweep enforces every time limit with one pass over the loop's conns: no
// timer per connection. On the loop.
func (l *loop) sweep() {
	e := l.eng
	now := e.clock()
	cfg := &e.cfg
	hs, idle := secs(cfg.HandshakeTimeout), secs(cfg.IdleTimeout)
	ping, closeWait := secs(cfg.PingInterval), secs(cfg.CloseTimeout)
	l.sampleOutbound()
	if e.mem.pressure() {
		l.shed(e.nanotime())
	}
	msgWait := secs(cfg.MessageTimeout)
	for i := len(l.conns) - 1; i >= 0; i-- {
		c := l.conns[i]
		age := now - c.since
		switch c.state {
		case stateHTTPIdle:
			// A kept-alive conn gets HandshakeTimeout for its next request.
			if age > hs {
				c.closeCause = CauseHTTPDone
				c.state = stateClosed
				_ = c.gc.Close()
			}
		case stateHandshake, stateHTTP:
			if age > hs {
				c.closeCause = CauseHandshakeTimeout
				c.state = stateClosed
				_ = c.gc.Close()
			}
		case stateOpen:
			if c.stalled {
				// gnet drains on its own; nothing else may wake the held
				// queue if the application stopped sending.
				l.flush(c)
				if c.state != stateOpen {
					continue
				}
			}
			switch {
			case c.partial != 0 && !c.paused && now+1-c.partial > msgWait:
				l.fail(c, codec.ClosePolicyViolation, "message timeout", CauseMessageTimeout)
			case idle > 0 && age > idle:
				l.fail(c, codec.CloseGoingAway, "idle timeout", CauseIdle)
			case ping > 0 && age >= ping && !c.pingOut:
				c.pingOut = true
				l.scratch = codec.AppendFrame(l.scratch[:0], codec.OpPing, true, nil)
				_, _ = c.gc.Write(l.scratch)
			}
		case stateStream:
			l.sweepStream(c, now)
		case stateStreamEnd:
			switch {
			case c.gc.OutboundBuffered() == 0:
				l.shutStream(c)
			case age > closeWait:
				c.state = stateClosed
				_ = c.gc.Close()
			}
		case stateDraining:
			if age > 1 {
				c.state = stateClosed
				_ = c.gc.Close()
			}
		case stateClosing:
			if age > closeWait {
				c.state = stateClosed
				_ = c.gc.Close()
			}
		}
	}
}
