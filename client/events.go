package client

import (
	"encoding/json"
	"sync"
)

type eventKind uint8

const (
	evState eventKind = iota
	evPublication
	evRecover
	evError
	evJoin
	evLeave
	evServerSub // recovered: subscribed
	evBinaryPublication
)

// event is one callback to run.
type event struct {
	kind      eventKind
	state     State
	err       error
	channel   string
	epoch     string
	client    string // join, leave
	offset    uint64
	recovered bool
	data      json.RawMessage
}

// eventQueue carries events from the run goroutine (and request callers)
// to the callback goroutine, in order, without ever blocking the producer.
type eventQueue struct {
	mu     sync.Mutex
	items  []event
	spare  []event
	closed bool
	wake   chan struct{} // capacity 1
}

func (q *eventQueue) push(e event) {
	q.mu.Lock()
	if !q.closed {
		q.items = append(q.items, e)
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close lets the callback goroutine end once the queue is drained.
func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// dispatch runs the callbacks, one at a time, until the queue is closed
// and empty.
func (c *Client) dispatch() {
	defer close(c.dispDone)
	c.dispGID.Store(goid())
	q := &c.events
	for {
		q.mu.Lock()
		batch, closed := q.items, q.closed
		q.items, q.spare = q.spare[:0], nil
		q.mu.Unlock()
		for i := range batch {
			c.run1(&batch[i])
			batch[i] = event{} // drop references
		}
		q.mu.Lock()
		if q.spare == nil && cap(batch) <= 1024 {
			q.spare = batch[:0]
		}
		q.mu.Unlock()
		if len(batch) == 0 {
			if closed {
				return
			}
			<-q.wake
		}
	}
}

func (c *Client) run1(e *event) {
	o := &c.opts
	switch e.kind {
	case evState:
		if o.OnState != nil {
			o.OnState(e.state, e.err)
		}
	case evPublication:
		if o.OnPublication != nil {
			o.OnPublication(e.channel, e.offset, e.epoch, e.data)
		}
	case evBinaryPublication:
		if o.OnBinaryPublication != nil {
			o.OnBinaryPublication(e.channel, e.offset, e.epoch, e.data)
		}
	case evRecover:
		if o.OnRecover != nil {
			o.OnRecover(e.channel, e.recovered, e.epoch)
		}
	case evJoin:
		if o.OnJoin != nil {
			o.OnJoin(e.channel, e.client)
		}
	case evLeave:
		if o.OnLeave != nil {
			o.OnLeave(e.channel, e.client)
		}
	case evServerSub:
		if o.OnServerSubscription != nil {
			o.OnServerSubscription(e.channel, e.recovered)
		}
	case evError:
		if o.OnError != nil {
			o.OnError(e.err)
		}
	}
}
