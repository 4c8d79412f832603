package pubsub

import (
	"context"
	"slices"
)

// NodePresence is one node's part of a channel's presence.
type NodePresence struct {
	Node        string   `json:"node"`        // the node's ID in the cluster
	Clients     []string `json:"clients"`     // distinct client IDs, sorted; at most the store's limit
	Count       int      `json:"count"`       // distinct client IDs on the node: len(Clients), or more when the list is cut
	Connections int      `json:"connections"` // subscriptions on the node
}

// PresenceStore is an optional interface of a Broker that shares presence
// between the nodes of a cluster (natsbroker implements it). A Hub on such a
// broker answers Presence with every node's subscribers, not only its own;
// on any other broker presence is node-local. All methods are safe for
// concurrent use.
type PresenceStore interface {
	// SetPresenceSource registers the function that returns this node's
	// presence of a channel, listing at most maxClients client IDs (Node
	// left empty). NewHub calls it once, right after SetHandler. src may be
	// called from any goroutine and takes the Hub's locks: the store must
	// not call it while holding a lock that PresenceChanged also takes.
	SetPresenceSource(src func(channel string, maxClients int) NodePresence)

	// PresenceChanged tells the store that this node's presence of channel
	// (a channel whose namespace tracks presence) changed. The store reads
	// the new state from the source later, coalescing bursts, so the call
	// is cheap and never blocks.
	PresenceChanged(channel string)

	// RemotePresence returns the other nodes' parts of channel's presence,
	// as they last published them; the parts of a node that stopped
	// without cleaning up are gone after the store's TTL at the latest.
	RemotePresence(ctx context.Context, channel string) ([]NodePresence, error)
}

// localPresence returns this node's presence of channel, listing at most
// max client IDs (all of them when max < 0).
func (h *Hub[F]) localPresence(channel string, max int) NodePresence {
	p := NodePresence{Clients: []string{}}
	h.mu.RLock()
	ch := h.chans[channel]
	h.mu.RUnlock()
	if ch == nil {
		return p
	}
	ch.mu.Lock()
	p.Count, p.Connections = len(ch.clients), len(ch.subs)
	for c := range ch.clients {
		if max >= 0 && len(p.Clients) >= max {
			break
		}
		p.Clients = append(p.Clients, c)
	}
	ch.mu.Unlock()
	slices.Sort(p.Clients)
	return p
}

// mergePresence adds the other nodes' parts to this node's. A client on
// several nodes counts once when every part lists it; the clients a cut
// list leaves out are counted as the part says, so Count is exact unless a
// list was cut, and then at most the sum over nodes.
func mergePresence(local NodePresence, remote []NodePresence) Presence {
	seen := make(map[string]struct{}, len(local.Clients))
	p := Presence{Clients: local.Clients, Connections: local.Connections}
	for _, c := range local.Clients {
		seen[c] = struct{}{}
	}
	unlisted := 0
	for _, r := range remote {
		p.Connections += r.Connections
		unlisted += max(0, r.Count-len(r.Clients))
		for _, c := range r.Clients {
			if _, ok := seen[c]; !ok {
				seen[c] = struct{}{}
				p.Clients = append(p.Clients, c)
			}
		}
	}
	slices.Sort(p.Clients)
	p.Count = len(p.Clients) + unlisted
	return p
}

// PresenceCounter is an optional interface of a PresenceStore that counts
// the other nodes' presence of a channel without building their client
// lists (natsbroker implements it). Safe for concurrent use.
type PresenceCounter interface {
	// RemotePresenceCounts returns the sums, over the other nodes, of
	// their distinct clients and of their subscriptions on channel.
	RemotePresenceCounts(ctx context.Context, channel string) (clients, connections int, err error)
}

// PresenceStats are a channel's presence counts, without the clients.
type PresenceStats struct {
	// Count is the distinct clients, per node, summed over the nodes: a
	// client connected through two nodes counts twice (exact on one node).
	Count int `json:"count"`
	// Connections is the subscriptions (a client may hold several).
	Connections int `json:"connections"`
}

// PresenceStats returns channel's presence counts, cheaply on big
// channels: no client list is built on this node, nor (with a
// PresenceCounter store) read from the others. It fails like Presence.
// Safe from any goroutine.
func (h *Hub[F]) PresenceStats(ctx context.Context, channel string) (PresenceStats, error) {
	o, err := h.Namespace(channel)
	if err != nil {
		return PresenceStats{}, err
	}
	if !o.Presence {
		return PresenceStats{}, ErrPresenceDisabled
	}
	st := h.localPresenceStats(channel)
	if h.presence == nil {
		return st, nil
	}
	if pc, ok := h.presence.(PresenceCounter); ok {
		clients, conns, err := pc.RemotePresenceCounts(ctx, channel)
		if err != nil {
			return PresenceStats{}, err
		}
		return PresenceStats{Count: st.Count + clients, Connections: st.Connections + conns}, nil
	}
	remote, err := h.presence.RemotePresence(ctx, channel)
	if err != nil {
		return PresenceStats{}, err
	}
	for _, r := range remote {
		st.Count += r.Count
		st.Connections += r.Connections
	}
	return st, nil
}

// localPresenceStats counts this node's presence of channel.
func (h *Hub[F]) localPresenceStats(channel string) PresenceStats {
	h.mu.RLock()
	ch := h.chans[channel]
	h.mu.RUnlock()
	if ch == nil {
		return PresenceStats{}
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return PresenceStats{Count: len(ch.clients), Connections: len(ch.subs)}
}
