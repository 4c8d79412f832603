package server

import "github.com/wsdhq/wsd/poller"

// Stats is a snapshot of a server's counters, for metrics and health
// checks. Counters count since the server was created.
type Stats struct {
	Conns         int64  // open TCP connections (upgraded or still in the handshake)
	Accepted      uint64 // TCP connections accepted
	Upgraded      uint64 // upgrades answered with 101
	Rejected      uint64 // requests answered with an HTTP error instead of 101
	MessagesIn    uint64 // complete messages received
	MessagesOut   uint64 // messages queued for sending (a prepared one once per conn)
	BytesIn       uint64 // payload bytes received, after inflating
	BytesOut      uint64 // frame bytes queued for sending
	SlowConsumers uint64 // times a conn's outbound queue went over its cap
	QueueDepth    int    // conns waiting for a worker
	Offloaded     uint64 // compressed messages inflated by a worker, not the loop (Options.OffloadBytes)

	// Memory is what the memory budget accounts (Options.MaxMemory):
	// Limit (0: none), Inbound (incomplete messages), Outbound (queued for
	// peers, sampled each second) and Extra (Options.ExtraMemory).
	Memory  poller.MemoryUsage
	Pending int64 // conns accepted whose first request is not complete yet

	// Closes counts closed connections by cause, with every cause present:
	// the names of CloseError.Cause ("peer_close", "idle", "slow_consumer",
	// ...) plus those of conns refused before an upgrade ("over_capacity",
	// "per_ip_limit", "http_done", ...).
	Closes map[string]uint64
}

// Stats returns the current counters. Safe from any goroutine; each call
// builds a new snapshot (read it at scrape time, not per message).
func (s *Server[T]) Stats() Stats {
	e := s.eng.Stats()
	st := Stats{
		Conns:         e.Conns.Load(),
		Accepted:      e.Accepted.Load(),
		Upgraded:      e.Upgraded.Load(),
		Rejected:      e.Rejected.Load(),
		MessagesIn:    e.MessagesIn.Load(),
		MessagesOut:   e.MessagesOut.Load(),
		BytesIn:       e.BytesIn.Load(),
		BytesOut:      e.BytesOut.Load(),
		SlowConsumers: e.SlowConsumers.Load(),
		QueueDepth:    s.work.len(),
		Offloaded:     e.Offloaded.Load(),
		Memory:        s.eng.Memory(),
		Pending:       s.eng.PendingHandshakes(),
		Closes:        make(map[string]uint64, poller.NumCauses),
	}
	for c := range poller.NumCauses {
		st.Closes[c.String()] = e.Closes[c].Load()
	}
	return st
}
