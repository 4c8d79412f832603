// Package natsbroker is a pubsub.Broker on NATS JetStream: every wsd node
// connects to the same NATS system, channels' streams (offsets, epochs,
// history) live in JetStream, and a node receives a channel's publications
// only while it has local subscribers. It is the only package of wsd that
// imports nats.go. docs/cluster.md says what survives what.
//
// # Streams and subjects
//
// One stream per namespace, created by the first node that uses the
// namespace: name "<StreamPrefix>_<namespace>_<epoch>" (the namespace with
// '.' as '-', "default" for ""), subjects "<SubjectPrefix>.<ns>.*" where
// <ns> is the namespace with '.' as '^' ("~" for the default namespace, a
// token no namespace can produce), and one subject per channel:
// "<SubjectPrefix>.<ns>.<base64url of the channel name>". Channel names may
// hold '.', '>' or ':' (pubsub.ValidChannel), which are not plain subject
// characters; base64url has only letters, digits, '-' and '_'.
//
// Which stream a namespace uses is recorded in the KV bucket
// "<StreamPrefix>_streams" (key "ns_<hex of the namespace>"). A node creates
// a stream only after winning that entry with compare-and-set, and uses
// only the stream the entry names: nats-server v2.15.3 accepted two streams
// with the same subjects when two nodes created theirs at the same moment,
// and the nodes then split the channel. An entry naming a stream that does
// not exist is waited for briefly (its creator is mid-way), then replaced
// (the stream was deleted, or its creator died).
//
// # Offsets: one per publication, across nodes
//
// A stream numbers its messages across all its channels, so a channel's
// offset is carried in a "Wsd-Offset" header. Publish reads the subject's
// last message (sequence S, offset N), publishes offset N+1 with
// Nats-Expected-Last-Subject-Sequence: S, and on a "wrong last sequence"
// answer (another node published first) reads again and retries, at most
// publishAttempts times. JetStream applies the expectation atomically with
// the append, so two publications can never get the same offset and none is
// skipped, whatever the number of publishing nodes. The last (S, N) of each
// channel is cached per node (bounded), so a node that publishes to a
// channel nobody else writes to does one request per publication. A
// rejected attempt is never stored, hence never delivered: live delivery
// reads the stream (consumers), not core NATS subscriptions on the
// subjects, which would also see rejected attempts.
//
// # History size and TTL: offsets must never restart
//
// HistorySize maps to the stream's MaxMsgsPerSubject, at least 1; the
// stream has no MaxAge and denies message deletes and purges. So a
// channel's last message is always kept: it holds the offset the next
// publication continues from. Were the last message to expire (MaxAge) the
// subject would be empty and the next offset would be 1 again under the
// same epoch, and a client holding offset 7 would silently miss the new 1..7.
// History therefore applies HistoryTTL (and HistorySize 0) when it reads:
// expired publications are skipped, not deleted. The cost: one kept message
// per channel ever published to, until the stream is deleted.
//
// # Epoch: the stream's identity
//
// The epoch is the random suffix of the stream's name, chosen when the
// stream is created. A wsd restart, a NATS restart with JetStream on disk or
// a new node leave the stream, hence the epoch, as it is; deleting the stream
// (the only way its history is lost as a whole) makes the next user create a
// new one with a new epoch. Publish sends Nats-Expected-Stream with the name
// it knows, so a node whose stream was deleted and recreated by another
// node finds out at its next publication instead of labelling it with the
// old epoch.
//
// # Interest-based delivery
//
// Subscribe creates an ordered consumer (ephemeral, in memory, no acks) on
// the channel's subject starting right after the subject's last message:
// every publication stored after Subscribe returns reaches the handler, once
// and in stream order, which for one subject is offset order. nats.go
// recreates the consumer after a reconnect or a missed heartbeat, from the
// last sequence it delivered, so nothing is skipped or repeated.
// Unsubscribe stops it and deletes it on the server (in the background).
//
// # History and the Hub's recovery
//
// History reads the subject's last message (the latest position), then, if
// publications are wanted, the subject's kept messages up to that one
// through a short-lived ordered consumer. Both go to the stream leader (no
// direct gets, which a follower may answer from behind), so the latest
// position is never older than the live consumer's start: everything after
// it reaches the handler, and pubsub.Hub drops the live frames the history
// already covered.
//
// # Presence across nodes
//
// Broker implements pubsub.PresenceStore, so a pubsub.Hub on it answers
// presence for the whole cluster. Each node keeps its own subscribers in a
// KV bucket "<StreamPrefix>_presence", one key per channel and node,
// "<base64url(channel)>.<NodeID>", holding a pubsub.NodePresence: the
// node's connection and distinct client counts and at most
// PresenceMaxClients client IDs (64 KiB at most per entry). A writer
// goroutine writes a channel's entry as soon as the Hub reports a change
// (changes made while a write is in flight become one write), deletes it
// when the node's last subscriber leaves, and rewrites every entry every
// third of the bucket's TTL (MaxAge). A node that dies without cleaning up
// stops rewriting, so its entries expire within the TTL; Close deletes
// them at once. Presence on one node merges its own state (exact, at once)
// with the other nodes' entries, read with a short-lived watcher on
// "<base64url(channel)>.*" (concurrent reads of one channel share one
// watcher). The TTL is the bucket's: the first node to create the bucket
// sets it from PresenceTTL and the others follow it.
//
// # Join and leave across nodes
//
// Broker implements pubsub.JoinLeaveBus: each node publishes its clients'
// joins and leaves on core NATS (best effort, never stored), subject
// "<SubjectPrefix>.~jl.<base64url(channel)>", and subscribes to a
// channel's subject while it has local subscribers of a join/leave
// channel (flushed, so events sent after SubscribeJoinLeave returns
// arrive). No stream's subjects match: their second token is a namespace,
// and none starts with '~'. Nodes with join/leave namespaces send a
// heartbeat on "<SubjectPrefix>.~nodes.<NodeID>" every PresenceTTL/3 and
// "bye" on Close; a node silent for PresenceTTL, or that said bye, is
// reported gone to the Hub, which pushes its clients' leaves. A node does
// not count its own NATS outage against the others.
//
// # NATS lost
//
// Join and leave events sent while the connection is down are lost (or
// sent late from nats.go's reconnect buffer). While the connection is down
// Publish, Subscribe, History and
// RemotePresence fail at once with ErrUnavailable (never a silent drop, nor
// a partial presence), State says so, presence changes wait for the next
// refresh after the reconnect, and nats.go
// reconnects on its own; live consumers resume from where they were.
// A publication whose acknowledgement is lost (a timeout) may still have
// been stored: the caller gets an error and subscribers get it anyway.
package natsbroker
