package natsbroker

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/wsdhq/wsd/pubsub"
)

var _ pubsub.JoinLeaveBus = (*Broker)(nil)

// Heartbeat payloads on "<SubjectPrefix>.~nodes.<NodeID>".
const (
	hbAlive = "alive"
	hbBye   = "bye"
)

// joinLeave carries join and leave events between nodes on core NATS (not
// JetStream: they are best effort and never stored), one subject per
// channel, "<SubjectPrefix>.~jl.<base64url(channel)>", subscribed while the
// node has local subscribers of the channel. No namespace's stream can
// hold these subjects: its token is the namespace, and no namespace token
// starts with '~' ("~" alone is the default namespace's).
//
// Nodes that push joins and leaves also send a heartbeat every
// PresenceTTL/3; a node not heard from for PresenceTTL, or that said bye
// (a clean Close), is reported gone so that its clients leave. This node
// never declares others gone for its own outage: after a reconnect, every
// node's clock starts over.
type joinLeave struct {
	b      *Broker
	ttl    time.Duration
	hbSubj string

	event atomic.Pointer[func(pubsub.JoinLeaveEvent)]
	gone  atomic.Pointer[func(string)]

	mu         sync.Mutex
	subs       map[string]*nats.Subscription // channel → its events' subscription
	nodes      map[string]time.Time          // other nodes → when last heard
	reconnects uint64                        // nc's count at the last check
	hb         *nats.Subscription
	started    bool

	stop, done chan struct{}
}

// jlMsg is an event on the wire.
type jlMsg struct {
	Node   string `json:"n"`
	Client string `json:"c"`
	Join   bool   `json:"j,omitempty"`
}

func newJoinLeave(b *Broker) *joinLeave {
	return &joinLeave{b: b, ttl: b.opts.PresenceTTL, hbSubj: b.opts.SubjectPrefix + ".~nodes.",
		subs: map[string]*nats.Subscription{}, nodes: map[string]time.Time{},
		stop: make(chan struct{}), done: make(chan struct{})}
}

func (b *Broker) joinLeaveSubject(channel string) string {
	return b.opts.SubjectPrefix + ".~jl." + channelKey(channel)
}

// SetJoinLeaveHandler implements pubsub.JoinLeaveBus: it also starts this
// node's heartbeats and the watch over the other nodes' (until Close).
func (b *Broker) SetJoinLeaveHandler(event func(pubsub.JoinLeaveEvent), nodeGone func(node string)) {
	j := b.joinLeave
	j.event.Store(&event)
	j.gone.Store(&nodeGone)
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.started || b.nc.IsClosed() {
		return
	}
	hb, err := b.nc.Subscribe(j.hbSubj+"*", j.heartbeat)
	if err != nil {
		b.log.Warn("join/leave: cannot watch the other nodes' heartbeats", "err", err)
		return
	}
	j.hb, j.started = hb, true
	j.send(hbAlive)
	go j.run()
}

// SubscribeJoinLeave implements pubsub.JoinLeaveBus: events other nodes
// send after it returns reach the handler.
func (b *Broker) SubscribeJoinLeave(channel string) error {
	j := b.joinLeave
	if b.nc.IsClosed() {
		return ErrClosed
	}
	s, err := b.nc.Subscribe(b.joinLeaveSubject(channel), func(m *nats.Msg) { j.receive(channel, m) })
	if err != nil {
		return b.unavailable(err)
	}
	// The server has the subscription once it answers a ping: events sent
	// after this returns reach the handler.
	if err := b.nc.FlushTimeout(b.opts.Timeout); err != nil {
		_ = s.Unsubscribe()
		return b.unavailable(err)
	}
	j.mu.Lock()
	old := j.subs[channel]
	j.subs[channel] = s
	j.mu.Unlock()
	if old != nil {
		_ = old.Unsubscribe()
	}
	return nil
}

// UnsubscribeJoinLeave implements pubsub.JoinLeaveBus: no event of channel
// reaches the handler once it returns, but one being handled.
func (b *Broker) UnsubscribeJoinLeave(channel string) error {
	j := b.joinLeave
	j.mu.Lock()
	s := j.subs[channel]
	delete(j.subs, channel)
	j.mu.Unlock()
	if s == nil {
		return nil
	}
	if err := s.Unsubscribe(); err != nil && !b.nc.IsClosed() {
		return err
	}
	return nil
}

// PublishJoinLeave implements pubsub.JoinLeaveBus. It never blocks: nats.go
// buffers the message (while reconnecting too, up to its buffer), and a
// failure is logged, not returned.
func (b *Broker) PublishJoinLeave(e pubsub.JoinLeaveEvent) {
	data, _ := json.Marshal(jlMsg{Node: b.opts.NodeID, Client: e.Client, Join: e.Join}) // strings and a bool: never fails
	if err := b.nc.Publish(b.joinLeaveSubject(e.Channel), data); err != nil {
		b.log.Debug("join/leave: event not sent", "channel", e.Channel, "client", e.Client, "err", err)
	}
}

// receive runs on nats.go's goroutine for channel's subscription: one
// event at a time, in the order each node sent them.
func (j *joinLeave) receive(channel string, m *nats.Msg) {
	var e jlMsg
	if err := json.Unmarshal(m.Data, &e); err != nil || e.Node == "" {
		j.b.log.Warn("join/leave: unreadable event", "channel", channel, "err", err)
		return
	}
	if e.Node == j.b.opts.NodeID {
		return // this node's own, echoed by NATS
	}
	j.heard(e.Node)
	if h := j.event.Load(); h != nil {
		(*h)(pubsub.JoinLeaveEvent{Channel: channel, Client: e.Client, Join: e.Join, Node: e.Node})
	}
}

// heartbeat handles another node's heartbeat or bye.
func (j *joinLeave) heartbeat(m *nats.Msg) {
	node := m.Subject[len(j.hbSubj):]
	if node == j.b.opts.NodeID {
		return
	}
	if string(m.Data) != hbBye {
		j.heard(node)
		return
	}
	j.mu.Lock()
	delete(j.nodes, node)
	j.mu.Unlock()
	j.reportGone(node)
}

func (j *joinLeave) heard(node string) {
	now := time.Now()
	j.mu.Lock()
	j.nodes[node] = now
	j.mu.Unlock()
}

func (j *joinLeave) reportGone(node string) {
	j.b.log.Info("join/leave: node gone, its clients leave", "node", node)
	if h := j.gone.Load(); h != nil {
		(*h)(node)
	}
}

func (j *joinLeave) send(payload string) {
	if err := j.b.nc.Publish(j.hbSubj+j.b.opts.NodeID, []byte(payload)); err != nil {
		j.b.log.Debug("join/leave: heartbeat not sent", "err", err)
	}
}

// run sends heartbeats and reports the nodes gone silent, every TTL/3.
func (j *joinLeave) run() {
	defer close(j.done)
	tick := time.NewTicker(j.ttl / 3)
	defer tick.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-tick.C:
			j.send(hbAlive)
			for _, node := range j.silent(time.Now()) {
				j.reportGone(node)
			}
		}
	}
}

// silent removes and returns the nodes not heard from for the TTL. While
// this node is cut off from NATS nobody is silent, and after a reconnect
// every node gets a fresh TTL: the silence was this node's.
func (j *joinLeave) silent(now time.Time) []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	nc := j.b.nc
	if rc := nc.Stats().Reconnects; rc != j.reconnects || !nc.IsConnected() {
		j.reconnects = rc
		for node := range j.nodes {
			j.nodes[node] = now
		}
		return nil
	}
	var gone []string
	for node, last := range j.nodes {
		if now.Sub(last) >= j.ttl {
			delete(j.nodes, node)
			gone = append(gone, node)
		}
	}
	return gone
}

// close stops the heartbeats and says bye (unless abandon: a test's kill),
// before the connection closes.
func (j *joinLeave) close(abandon bool) {
	j.mu.Lock()
	started := j.started
	j.started = true // no start after close
	subs := j.subs
	j.subs = map[string]*nats.Subscription{}
	j.mu.Unlock()
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
	if !started {
		return
	}
	close(j.stop)
	<-j.done
	_ = j.hb.Unsubscribe()
	if !abandon && j.b.nc.IsConnected() {
		j.send(hbBye)
		_ = j.b.nc.FlushTimeout(j.b.opts.Timeout)
	}
}
