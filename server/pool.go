package server

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/poller"
)

// workQueue hands conns with pending events to the worker goroutines. A
// conn is in it at most once (Conn.scheduled), so its events run in order,
// on one worker at a time. Past its capacity push still takes the conn —
// dropping it would lose its events — but says so, and the caller pauses
// that conn's reads: a full queue slows readers down, it never spawns
// goroutines. One mutex and one condition cover the whole queue, so a
// worker never sleeps while a conn waits.
type workQueue[T any] struct {
	mu       sync.Mutex
	cond     sync.Cond
	q        []*Conn[T] // FIFO: q[head:] wait; the backing array is reused
	head     int
	capacity int
	stopped  bool          // workers exit once q is empty
	running  int           // workers not yet exited
	done     chan struct{} // closed when stopped and no worker runs
}

func (w *workQueue[T]) init(capacity int) {
	w.cond.L = &w.mu
	w.capacity = capacity
	w.done = make(chan struct{})
}

// start runs n workers calling run for each conn popped.
func (w *workQueue[T]) start(n int, run func(*Conn[T])) {
	w.mu.Lock()
	w.running = n
	w.mu.Unlock()
	for range n {
		go w.work(run)
	}
}

func (w *workQueue[T]) work(run func(*Conn[T])) {
	for c := w.pop(); c != nil; c = w.pop() {
		run(c)
	}
	w.mu.Lock()
	w.running--
	last := w.running == 0
	w.mu.Unlock()
	if last {
		close(w.done)
	}
}

// push queues c and reports whether the queue is within its capacity.
// Safe from any goroutine, also after stop (the remaining workers run c).
func (w *workQueue[T]) push(c *Conn[T]) bool {
	w.mu.Lock()
	if w.head > 0 && len(w.q) == cap(w.q) {
		// Slide the waiting conns down instead of growing: steady traffic
		// then never allocates here.
		n := copy(w.q, w.q[w.head:])
		clear(w.q[n:])
		w.q, w.head = w.q[:n], 0
	}
	w.q = append(w.q, c)
	ok := len(w.q)-w.head <= w.capacity
	w.mu.Unlock()
	w.cond.Signal()
	return ok
}

// pop waits for a conn; nil means stopped and empty: the worker exits.
func (w *workQueue[T]) pop() *Conn[T] {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.q) == w.head {
		if w.stopped {
			return nil
		}
		w.cond.Wait()
	}
	c := w.q[w.head]
	w.q[w.head] = nil
	if w.head++; w.head == len(w.q) {
		w.q, w.head = w.q[:0], 0
	}
	return c
}

// stop lets the workers exit once the queue is empty. Safe from any
// goroutine; later calls do nothing.
func (w *workQueue[T]) stop() {
	w.mu.Lock()
	if !w.stopped {
		w.stopped = true
		if w.running == 0 { // never started, or none left to close done
			close(w.done)
		}
	}
	w.mu.Unlock()
	w.cond.Broadcast()
}

// len is how many conns wait for a worker.
func (w *workQueue[T]) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.q) - w.head
}

// maxBurst bounds how many messages of one conn a worker handles before it
// lets other conns have a turn.
const maxBurst = 32

// run delivers c's pending events in order: open, messages, close.
func (s *Server[T]) run(c *Conn[T]) {
	h := c.route.h
	if !c.opened {
		s.safe(c, func() { h.OnOpen(c) })
		c.opened = true
		c.dropHeaders()
	}
	for i := 0; ; i++ {
		c.mu.Lock()
		if q := c.inbox; q == nil || q.head == len(q.msgs) {
			var ce *CloseError
			if q != nil {
				ce = q.closeErr
			}
			if ce == nil || c.done {
				s.idle(c)
				return
			}
			c.done = true
			c.mu.Unlock()
			s.safe(c, func() { h.OnClose(c, ce) })
			s.live.Add(-1)
			continue
		}
		if i == maxBurst {
			c.mu.Unlock()
			s.work.push(c) // to the back: the others get a turn
			return
		}
		q := c.inbox
		m := q.msgs[q.head]
		q.msgs[q.head] = poller.Message{}
		q.head++
		c.mu.Unlock()
		if !s.finish(c, &m) {
			continue
		}
		s.safe(c, func() { h.OnMessage(c, Message{Type: m.Op, Data: m.Payload}) })
		s.eng.Buffers().Put(m.Buf)
	}
}

// finish inflates a message the loop handed over raw (poller.Offloader)
// and reports whether it is to be delivered: not when it failed, which
// closed the conn (1007/1009), nor after such a failure.
func (s *Server[T]) finish(c *Conn[T], m *poller.Message) bool {
	if c.failed {
		s.eng.Buffers().Put(m.Buf)
		return false
	}
	if !m.Compressed {
		return true
	}
	var err error
	if *m, err = c.pc.Inflate(*m); err != nil {
		c.failed = true
		return false
	}
	return true
}

// idle ends c's turn with nothing left to deliver, resuming its reads if
// they were paused. Called with c.mu held; releases it.
func (s *Server[T]) idle(c *Conn[T]) {
	if q := c.inbox; q != nil {
		// Idle conns hold no queue: it goes back to the pool.
		q.msgs, q.head, q.closeErr = q.msgs[:0], 0, nil
		if cap(q.msgs) <= 64 {
			s.inboxes.Put(q)
		}
		c.inbox = nil
	}
	c.scheduled = false
	resume := c.paused
	c.paused = false
	c.mu.Unlock()
	if resume {
		c.pc.Resume()
	}
}

// safe runs f, turning a panic into a log line and a 1011 close of this
// conn only.
func (s *Server[T]) safe(c *Conn[T], f func()) {
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			s.log.Error("handler panicked", "path", c.route.path, "conn", c.ID(), "panic", fmt.Sprint(p), "stack", string(buf))
			c.pc.CloseWith(codec.CloseInternalError, "internal error", poller.CausePanic)
		}
	}()
	f()
}
