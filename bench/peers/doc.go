// Package peers holds echo + broadcast servers written with other Go
// WebSocket libraries, each the way its own documentation recommends, for
// side-by-side runs of wsbench against wsd (`make bench-peers`).
//
// Every server takes --listen and serves:
//
//	/echo       every message is sent back with its type
//	/broadcast  every message sent there goes to every client connected there
//
// It is a separate module so that wsd's own module depends only on what the
// product needs.
package peers
