// Package wsproto is wsd's /ws pub/sub protocol over a pubsub.Hub: JSON
// text frames for subscribe (with recovery), unsubscribe, publish and
// presence; pushes that carry channel, offset, epoch and data; connection
// tokens (JWT HS256) and an Origin allow-list checked before the 101; a
// per-connection message rate limit; proxies to the application's
// backend (the rpc op, publish and subscribe checks: proxy.go); and the
// HTTP API for backends
// (POST /api/publish, GET /api/channels, GET /api/presence). The contract
// is docs/protocol.md.
//
// Wiring, as the daemon does it:
//
//	srv := server.New[wsproto.Session](opts)
//	broker := pubsub.NewMemory(pubsub.MemoryOptions{})
//	hub, err := wsproto.NewHub(srv, broker, pubsub.HubOptions[*server.Prepared]{Namespaces: ns})
//	h, err := wsproto.New(hub, wsproto.Config{TokenSecret: secret})
//	srv.Handle("/ws", h) // on the worker pool, not Inline
//	api := wsproto.NewAPI(hub, wsproto.APIConfig{Key: apiKey})
//	// serve api for /api/publish, /api/channels, /api/presence
//
// Ordering on one connection: a subscribe reply comes before the
// publications it recovers, which come before any live one; a publisher
// subscribed to its own channel receives its push before its publish
// reply. Every reply and push goes through the connection's one write
// queue, in that order.
package wsproto
