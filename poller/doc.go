// Package poller is wsd's event loop: a gnet/v2 engine handler that holds
// every connection without a goroutine of its own. It parses the upgrade
// request and then frames straight out of gnet's inbound buffer, answers
// control frames in the loop, assembles messages (inflating them when
// permessage-deflate is on), and hands complete messages to a Session. Writes
// from any goroutine are batched per connection and flushed by the loop.
//
// Threading: gnet callbacks, Session callbacks and everything named "on the
// loop" run on the connection's event-loop goroutine. Methods documented as
// safe from any goroutine may be called from workers.
package poller
