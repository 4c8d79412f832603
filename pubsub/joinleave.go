package pubsub

import "slices"

// JoinLeaveEvent is a client ID's first subscription to a channel starting
// (Join) or its last one ending, on one node.
type JoinLeaveEvent struct {
	Channel string
	Client  string
	Join    bool   // false: a leave
	Node    string // the node it happened on; set by the bus
}

// JoinLeaveBus is an optional interface of a Broker that carries join and
// leave events between the nodes of a cluster (natsbroker implements it on
// core NATS). Events are best effort: lost when the link is down, never
// stored, never replayed. On any other broker joins and leaves are
// node-local. All methods are safe for concurrent use.
type JoinLeaveBus interface {
	// SetJoinLeaveHandler registers the functions that receive the other
	// nodes' events on the channels this node subscribed to with
	// SubscribeJoinLeave (in the order each node sent them; never this
	// node's own), and the ID of a node that went silent or stopped, whose
	// clients are then gone. NewHub calls it once, before any other method
	// of the interface, when a namespace turns join/leave on. The handlers
	// take the Hub's locks: the bus must not call them while holding a lock
	// that PublishJoinLeave takes.
	SetJoinLeaveHandler(event func(JoinLeaveEvent), nodeGone func(node string))

	// SubscribeJoinLeave starts delivery of channel's events to the
	// handler; UnsubscribeJoinLeave stops it. The Hub calls them when the
	// first local subscriber of a join/leave channel arrives and when the
	// last one leaves.
	SubscribeJoinLeave(channel string) error
	UnsubscribeJoinLeave(channel string) error

	// PublishJoinLeave sends e (Node is the bus's own) to the other nodes
	// subscribed to e.Channel's events. The Hub calls it under the
	// channel's lock, so that one client's join and leave leave in order:
	// it must not block (a failure is the bus's to log) nor call the Hub.
	PublishJoinLeave(e JoinLeaveEvent)
}

// joinLeaveOn reports whether a namespace pushes joins and leaves.
func (n Namespaces) joinLeaveOn() bool {
	for _, o := range n {
		if o.JoinLeave {
			return true
		}
	}
	return false
}

// localJoinLeaveLocked handles a client ID's first subscription on this
// node (join) or the end of its last one: the other nodes are told, and
// this node's subscribers get a push unless the client is on another node
// too (then, seen from the channel, it neither came nor went). ch.mu held.
func (h *Hub[F]) localJoinLeaveLocked(ch *channel[F], client string, join bool) {
	if h.bus != nil {
		h.bus.PublishJoinLeave(JoinLeaveEvent{Channel: ch.name, Client: client, Join: join})
	}
	if len(ch.remote[client]) == 0 {
		h.pushJoinLeaveLocked(ch, client, join)
	}
}

// remoteJoinLeave is the bus's event handler: another node's join or
// leave, pushed here when it changes whether the client is on the channel
// anywhere this node knows of.
func (h *Hub[F]) remoteJoinLeave(e JoinLeaveEvent) {
	h.mu.RLock()
	ch := h.chans[e.Channel]
	h.mu.RUnlock()
	if ch == nil || !ch.joinLeave {
		return
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	nodes := ch.remote[e.Client]
	present := ch.clients[e.Client] > 0 || len(nodes) > 0
	if e.Join {
		if !slices.Contains(nodes, e.Node) {
			ch.remote[e.Client] = append(nodes, e.Node)
		}
		if !present {
			h.pushJoinLeaveLocked(ch, e.Client, true)
		}
		return
	}
	// A leave from a node this one never saw the join of (it subscribed
	// later) is pushed too unless the client is known to be elsewhere.
	if i := slices.Index(nodes, e.Node); i >= 0 {
		nodes = slices.Delete(nodes, i, i+1)
	}
	if len(nodes) == 0 {
		delete(ch.remote, e.Client)
	} else {
		ch.remote[e.Client] = nodes
	}
	if ch.clients[e.Client] == 0 && len(nodes) == 0 {
		h.pushJoinLeaveLocked(ch, e.Client, false)
	}
}

// nodeGone is the bus's handler for a node that stopped or went silent:
// its clients leave every channel where no other node holds them.
func (h *Hub[F]) nodeGone(node string) {
	h.mu.RLock()
	chans := make([]*channel[F], 0, len(h.chans))
	for _, ch := range h.chans {
		if ch.joinLeave {
			chans = append(chans, ch)
		}
	}
	h.mu.RUnlock()
	for _, ch := range chans {
		ch.mu.Lock()
		var gone []string
		for client, nodes := range ch.remote {
			i := slices.Index(nodes, node)
			if i < 0 {
				continue
			}
			if nodes = slices.Delete(nodes, i, i+1); len(nodes) > 0 {
				ch.remote[client] = nodes
				continue
			}
			delete(ch.remote, client)
			if ch.clients[client] == 0 {
				gone = append(gone, client)
			}
		}
		slices.Sort(gone) // a stable order for the subscribers
		for _, client := range gone {
			h.pushJoinLeaveLocked(ch, client, false)
		}
		ch.mu.Unlock()
	}
}

// pushJoinLeaveLocked encodes one join or leave and hands it to every
// subscriber of ch on this node whose subscribe reply was sent (a pending
// subscription learns the state from presence instead; the subscription
// whose start is the join is one of them, so a client never gets its own
// join). Past the namespace's JoinLeaveMax nothing is pushed. ch.mu held.
func (h *Hub[F]) pushJoinLeaveLocked(ch *channel[F], client string, join bool) {
	if ch.joinLeaveMax > 0 && len(ch.subs) > ch.joinLeaveMax {
		h.joinLeaveCapped.Add(1)
		return
	}
	var frame F
	encoded, n := false, 0
	for _, s := range ch.subs {
		if s.pending {
			continue
		}
		if !encoded {
			frame = h.enc(AppendJoinLeave(make([]byte, 0, JoinLeaveSize(ch.name, client)), ch.name, client, join))
			encoded = true
			h.encodes.Add(1)
		}
		s.sub.Deliver(frame)
		n++
	}
	if encoded {
		h.joinLeaves.Add(1)
		h.deliveries.Add(uint64(n))
	}
}
