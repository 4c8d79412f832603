// Package bench is wsbench's load generator as a library: scenarios
// (connect, idle, echo, broadcast, storm) run over many client connections held by
// a few epoll loops (never a goroutine per connection), a mergeable
// log-linear latency histogram, multi-process runs with merged results, and
// reports (table, JSON, self-contained HTML with charts). The storm
// scenario follows clients through the loss of their node and reconnects
// them elsewhere, naively or as the server's retry hints say (storm.go).
//
// Every client frame is masked and every received payload is checked: echo
// replies against what was sent, broadcast deliveries by sequence number
// (lost and duplicated are counted) and publish timestamp. Broadcast also
// speaks wsd's /ws pub/sub protocol (Config.Mode "ws"): subscribers subscribe
// to a channel and the publisher uses publish ops over /ws or the HTTP API.
//
// Targets must be loopback unless Config.AllowRemote is set, and every run
// is bounded by Config.Conns (≤ MaxConns) and Config.Timeout (≤ MaxRunTime).
package bench
