// Package pubsub is wsd's channels layer: named channels, publish and
// subscribe, fan-out that encodes each publication once for every
// subscriber, per-channel history with offsets and epochs for recovery
// after a reconnect, and presence. It knows nothing of WebSockets: a
// subscriber is anything with a Deliver method, and the encoded frame is
// whatever HubOptions.Encode makes of the push JSON (wsd passes the
// server's Prepare, so a publication becomes one WebSocket frame shared by
// every connection's write queue).
//
// # Pieces
//
//   - Broker stores each channel's stream (offset, epoch, history) and
//     carries publications to the nodes that subscribe. Memory, the
//     default, is in-process.
//   - Hub[F] is a node's front: local subscriptions, fan-out, presence,
//     recovery, namespace settings. One Hub per Broker.
//   - Namespaces: a channel "ns:rest" takes the options of namespace "ns"
//     (history size and TTL, who may publish, presence, join/leave
//     pushes); a channel without ':' those of the default namespace "".
//
// # Join and leave
//
// In a namespace with NamespaceOptions.JoinLeave, a client ID's first
// subscription to a channel pushes a join (AppendJoinLeave) to the other
// subscribers that already had their reply, and its last one's end a
// leave, each encoded once. On a broker that is a JoinLeaveBus (natsbroker)
// the events also go to and come from the other nodes; a node pushes
// another's join or leave only when it changes whether the client is on the
// channel anywhere it knows of, and a node gone takes its clients with it.
// They are best effort, not history: docs/protocol.md has the contract.
//
// In use:
//
//	broker := pubsub.NewMemory(pubsub.MemoryOptions{})
//	hub, err := pubsub.NewHub(broker, pubsub.HubOptions[*server.Prepared]{
//		Encode:     func(b []byte) *server.Prepared { return srv.Prepare(server.Text, b) },
//		Namespaces: pubsub.Namespaces{"": pubsub.DefaultNamespaceOptions()},
//	})
//	sub, res, err := hub.Subscribe(ctx, "news", subscriber, pubsub.SubscribeOptions{Since: &lastSeen})
//	pos, err := hub.Publish(ctx, "news", []byte(`{"title":"hello"}`))
//
// # Offsets, epochs, recovery
//
// Every publication on a channel gets the next offset (1, 2, 3, ...) and
// the stream's epoch, an opaque string. Offsets compare only within an
// epoch; the epoch changes when the stream's history is lost as a whole —
// for Memory, at every process start (each channel's stream gets a random
// epoch when first used) and when an unused stream expires
// (MemoryOptions.StreamTTL). History is a bounded ring per channel:
// NamespaceOptions.HistorySize publications, each kept at most HistoryTTL.
// Eviction does not change the epoch; it makes the evicted offsets
// unrecoverable.
//
// A subscriber that reconnects passes the position of the last publication
// it saw (SubscribeOptions.Since). If the epoch is the current one and every
// offset after it is still kept, the subscription is Recovered: the missed
// publications are delivered in order, then the live ones, each exactly
// once even while others publish concurrently (the subscription holds live
// frames while history is read, then drops those the replay covered). If
// not, nothing is replayed (no partial replay: a gap would be silent) and
// Recovered is false — the application reloads its state by other means and
// continues from SubscribeResult.Position.
//
// # A NATS JetStream broker
//
// pubsub/natsbroker implements Broker on NATS JetStream for a cluster of
// wsd nodes without changing the Hub: one stream per namespace, offsets in
// a header made gap-free across nodes by expected-last-subject-sequence
// publishes, the epoch in the stream's name, and an ordered consumer per
// channel while the node has local subscribers. Its package documentation
// and docs/cluster.md have the details. It also implements PresenceStore,
// the optional interface through which a Hub answers presence for every
// node of the cluster (entries in a KV bucket that expire when a node dies);
// on the Memory broker presence is node-local.
package pubsub
