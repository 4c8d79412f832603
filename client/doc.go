// Package client is the Go client for wsd's /ws pub/sub protocol. It keeps
// one WebSocket connection to a wsd server and re-establishes it on its own:
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:8080/ws", client.Options{
//		OnPublication: func(channel string, offset uint64, epoch string, data json.RawMessage) {
//			fmt.Println(channel, offset, string(data))
//		},
//		OnRecover: func(channel string, recovered bool, epoch string) {
//			if !recovered {
//				fmt.Println(channel, "history was reset; now at epoch", epoch)
//			}
//		},
//	})
//	if err != nil { ... }
//	defer c.Close(context.Background())
//	_, err = c.Subscribe(ctx, "news")
//	res, err := c.Publish(ctx, "chat", map[string]string{"text": "hi"})
//
// In namespaces with join_leave = true, Options.OnJoin and Options.OnLeave
// report other clients joining and leaving subscribed channels (best
// effort: after a reconnect, Presence says who is there).
//
// SubscribeWith with Latest delivers the channel's newest kept publication
// to OnPublication right after the subscribe (first paint); History reads
// kept publications without subscribing (the last 50 chat lines);
// PresenceStats counts without listing; PublishWith with SkipSelf keeps the
// publication from coming back to this client.
//
// # Reconnecting
//
// When the connection drops the client dials again after a delay drawn
// uniformly from [0, min(MaxBackoff, MinBackoff·2^attempt)] ("full jitter",
// so a server restart is not met by every client at the same instant). The
// attempt counter goes back to zero once a connection has stayed up for
// HealthyAfter. A handshake refused with a 4xx status other than 408 and 429
// (a bad token, a forbidden Origin, a wrong path) will not get better by
// retrying: the client then closes itself and reports the *HandshakeError
// (except a 401 when Options.TokenFunc can bring a fresh token). So does a
// close with 1008 "rate limit exceeded", after which the protocol asks
// clients not to reconnect; every other close is followed by a reconnect.
//
// # Reconnects paced by the server
//
// A wsd node that restarts with --drain-spread closes its connections with
// 1012 and a reason such as "restart; retry=3.250", each client with its
// own hint; the client then waits that long (plus at most a tenth of it,
// and 250 ms, of jitter) instead of its backoff, so the clients of the node
// come back spread over the window the server chose. An upgrade refused
// with a Retry-After (a 503 from --max-accept-rate, say) makes the next
// attempt wait at least that long. Neither ever comes earlier. The hint is
// in CloseError.RetryHint and HandshakeError.RetryAfter.
//
// # Several endpoints
//
// Options.Endpoints lists the other nodes of a cluster. The client moves
// to the next URL, in turn, when its node is gone (a failed attempt, a
// close with 1001, 1012 or 1013, a connection lost without a close frame),
// and resubscribes there with since as after any reconnect; with a shared
// history (the NATS broker) nothing is lost across the move.
//
// # Nothing lost, nothing twice
//
// For every subscribed channel the client remembers the last publication it
// delivered, as {offset, epoch}. After a reconnect it subscribes again with
// "since" set to that position, and the server pushes what was missed, in
// order, before any live publication (publications that overtake the
// subscribe reply are held until it comes). The client delivers each offset
// at most once and never out of order: duplicates (offset ≤ last delivered)
// are dropped; a gap (offset > last+1) makes it re-subscribe on the same
// connection with "since", so the server fills the gap. When the server
// cannot fill it — its history no longer reaches back that far, or it
// restarted and the epoch changed — it answers recovered:false; the client
// then calls OnRecover(channel, false, newEpoch) before delivering anything
// of the new history, so the application can tell its user that some
// publications are gone. OnRecover(channel, true, epoch) follows every
// successful recovery after a reconnect.
//
// # Requests and connection loss
//
// Subscribe, Unsubscribe, Publish and Presence send a request with a fresh
// id and wait for the reply with that id, or for ctx; a ctx that has
// already ended fails the call with its error and sends nothing. A request
// made while the client is disconnected waits for the next connection
// (bounded by its ctx) unless Options.FailFast is set, in which case it
// fails at once with ErrNotConnected (a Publish waits too, counted against
// Options.MaxQueuedPublishes). A Publish whose connection drops before its
// reply is sent again on the next connection with the same idempotency key,
// so it is made exactly once (for up to 100 s after its first send, within
// the server's 2-minute deduplication window). A Presence, History or
// PresenceStats sent on a connection that drops before its reply fails with
// ErrConnectionLost. A Subscribe in flight when the connection drops keeps
// waiting and is re-sent on the next connection.
//
// # Goroutines and callbacks
//
// A Client runs two goroutines: one dials, reads the connection and sleeps
// between attempts; the other runs the callbacks, one at a time, in the order
// the events happened (state changes, recoveries, publications). Callbacks
// may therefore call any method of the Client, including ones that wait for a
// reply. Events are queued without bound while a callback runs: a callback
// that stays slow forever makes memory grow. Every exported method is safe
// for concurrent use.
package client
