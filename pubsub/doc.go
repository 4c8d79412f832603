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
//     (history size and TTL, who may publish, presence); a channel without
//     ':' those of the default namespace "".
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
// The Broker interface is shaped so that a cluster broker on NATS
// JetStream (a later subpackage, pubsub/natsbroker) fits without changing
// the Hub:
//
//   - Stream per namespace (WSD_<ns>, subjects "wsd.<ns>.>"), subject per
//     channel: "ns:room.1" → "wsd.ns.<name escaped so '.', '*' and '>' are
//     not tokens>". HistorySize maps to the stream's MaxMsgsPerSubject,
//     HistoryTTL to MaxAge; file storage makes history survive restarts.
//   - Offset = sequence. A stream holding one channel numbers its messages
//     exactly like our offsets (stream sequence = offset). A stream holding
//     many channels numbers them across channels, so the per-channel
//     offset travels in a "Wsd-Offset" header: Publish reads the subject's
//     last message, publishes with offset+1 and
//     Nats-Expected-Last-Subject-Sequence set to that message's sequence,
//     and retries on a wrong-last-sequence error — gap-free per channel,
//     ordered by JetStream.
//   - Epoch = the stream's identity: its creation time (StreamInfo.Created)
//     with its name. Deleting or recreating the stream — the only way its
//     history is lost as a whole — changes it; a wsd restart does not.
//   - Subscribe/Unsubscribe = a core NATS subscription on the channel's
//     subject, made when the node's first local subscriber arrives; NATS
//     delivers one subscription's messages in order, which is the
//     handler's contract.
//   - History = an ordered consumer filtered to the subject (at most
//     MaxMsgsPerSubject messages), returning those with offset > Since; its
//     latest position is the last message read. Because the live
//     subscription exists before History runs, the Hub's overlap check
//     gives exactly-once across nodes too.
//   - Presence stays node-local in the Hub for now; cluster-wide presence
//     would live in a NATS KV bucket per namespace (key channel.client,
//     TTL refreshed by each node).
package pubsub
