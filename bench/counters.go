package bench

import "sync/atomic"

// Counters is a snapshot of a worker's cumulative counts. It is a plain
// value; Add merges workers.
type Counters struct {
	Attempts   int64  `json:"attempts"`    // connections started
	Up         int64  `json:"up"`          // upgrades completed
	Failed     int64  `json:"failed"`      // connections that never upgraded
	Open       int64  `json:"open"`        // connections open now
	Dropped    int64  `json:"dropped"`     // open connections lost before we closed them
	Sent       uint64 `json:"sent"`        // data messages sent
	Recv       uint64 `json:"recv"`        // data messages received and verified as ours
	Deliveries uint64 `json:"deliveries"`  // echo replies or broadcast deliveries
	BytesSent  uint64 `json:"bytes_sent"`  // payload bytes
	BytesRecv  uint64 `json:"bytes_recv"`  // payload bytes
	Errors     uint64 `json:"errors"`      // everything that went wrong, see reasons
	Mismatch   uint64 `json:"mismatch"`    // payloads that did not verify
	Dups       uint64 `json:"dups"`        // broadcast: repeated sequence numbers
	Unique     uint64 `json:"unique"`      // broadcast: distinct messages received
	Pings      uint64 `json:"pings"`       // idle: pings sent
	Pongs      uint64 `json:"pongs"`       // idle: pongs received
	Published  uint64 `json:"published"`   // broadcast: messages published
	PubTimeout uint64 `json:"pub_timeout"` // broadcast closed loop: publishes not fully delivered in 1 s
	Subscribed int64  `json:"subscribed"`  // broadcast /ws mode: subscribe requests answered with a result
	PubErrors  uint64 `json:"pub_errors"`  // broadcast /ws mode: publishes the server refused (error reply, HTTP status, transport error)

	// Storm only.
	StormClients  int64  `json:"storm_clients,omitempty"`  // clients that were up once
	Hit           int64  `json:"hit,omitempty"`            // clients closed at least once
	Waiting       int64  `json:"waiting,omitempty"`        // hit clients not up now (gauge)
	GaveUp        int64  `json:"gave_up,omitempty"`        // clients that ran out of attempts
	Closes        uint64 `json:"closes,omitempty"`         // upgraded connections closed or lost
	Reconnects    uint64 `json:"reconnects,omitempty"`     // upgrades after a close
	Refused       uint64 `json:"refused,omitempty"`        // reconnect upgrades answered with an HTTP status
	StormFailures uint64 `json:"storm_failures,omitempty"` // reconnect attempts that failed, refused included
	Early         uint64 `json:"early,omitempty"`          // attempts started before the server's hint
}

// Add adds o to c.
func (c *Counters) Add(o Counters) {
	c.Attempts += o.Attempts
	c.Up += o.Up
	c.Failed += o.Failed
	c.Open += o.Open
	c.Dropped += o.Dropped
	c.Sent += o.Sent
	c.Recv += o.Recv
	c.Deliveries += o.Deliveries
	c.BytesSent += o.BytesSent
	c.BytesRecv += o.BytesRecv
	c.Errors += o.Errors
	c.Mismatch += o.Mismatch
	c.Dups += o.Dups
	c.Unique += o.Unique
	c.Pings += o.Pings
	c.Pongs += o.Pongs
	c.Published += o.Published
	c.PubTimeout += o.PubTimeout
	c.Subscribed += o.Subscribed
	c.PubErrors += o.PubErrors
	c.StormClients += o.StormClients
	c.Hit += o.Hit
	c.Waiting += o.Waiting
	c.GaveUp += o.GaveUp
	c.Closes += o.Closes
	c.Reconnects += o.Reconnects
	c.Refused += o.Refused
	c.StormFailures += o.StormFailures
	c.Early += o.Early
}

// Sub returns c − o for the cumulative fields (Open is kept from c).
func (c Counters) Sub(o Counters) Counters {
	return Counters{
		Attempts: c.Attempts - o.Attempts, Up: c.Up - o.Up, Failed: c.Failed - o.Failed,
		Open: c.Open, Dropped: c.Dropped - o.Dropped,
		Sent: c.Sent - o.Sent, Recv: c.Recv - o.Recv, Deliveries: c.Deliveries - o.Deliveries,
		BytesSent: c.BytesSent - o.BytesSent, BytesRecv: c.BytesRecv - o.BytesRecv,
		Errors: c.Errors - o.Errors, Mismatch: c.Mismatch - o.Mismatch, Dups: c.Dups - o.Dups,
		Unique: c.Unique - o.Unique, Pings: c.Pings - o.Pings, Pongs: c.Pongs - o.Pongs,
		Published: c.Published - o.Published, PubTimeout: c.PubTimeout - o.PubTimeout,
		Subscribed: c.Subscribed - o.Subscribed, PubErrors: c.PubErrors - o.PubErrors,
		StormClients: c.StormClients, Hit: c.Hit - o.Hit, Waiting: c.Waiting, GaveUp: c.GaveUp - o.GaveUp,
		Closes: c.Closes - o.Closes, Reconnects: c.Reconnects - o.Reconnects, Refused: c.Refused - o.Refused,
		StormFailures: c.StormFailures - o.StormFailures, Early: c.Early - o.Early,
	}
}

// liveCounters are one loop's counters, written by the loop with atomic adds
// and read by the progress reporter.
type liveCounters struct {
	attempts, up, failed, open, dropped                  atomic.Int64
	sent, recv, deliveries, bytesSent, bytesRecv, errors atomic.Uint64
	mismatch, dups, unique, pings, pongs, published      atomic.Uint64
	pubTimeout, pubErrors                                atomic.Uint64
	subscribed                                           atomic.Int64
	stormClients, hit, waiting, gaveUp                   atomic.Int64
	closes, reconnects, refused, stormFailures, early    atomic.Uint64
	// settled counts connections that are ready (upgraded; in /ws mode
	// also subscribed) or gone for good; the worker is connected once
	// every planned connection has settled.
	settled atomic.Int64
	_       [64]byte // keep loops' counters off each other's cache lines
}

func (l *liveCounters) snapshot() Counters {
	return Counters{
		Attempts: l.attempts.Load(), Up: l.up.Load(), Failed: l.failed.Load(), Open: l.open.Load(),
		Dropped: l.dropped.Load(), Sent: l.sent.Load(), Recv: l.recv.Load(), Deliveries: l.deliveries.Load(),
		BytesSent: l.bytesSent.Load(), BytesRecv: l.bytesRecv.Load(), Errors: l.errors.Load(),
		Mismatch: l.mismatch.Load(), Dups: l.dups.Load(), Unique: l.unique.Load(), Pings: l.pings.Load(),
		Pongs: l.pongs.Load(), Published: l.published.Load(), PubTimeout: l.pubTimeout.Load(),
		Subscribed: l.subscribed.Load(), PubErrors: l.pubErrors.Load(),
		StormClients: l.stormClients.Load(), Hit: l.hit.Load(), Waiting: l.waiting.Load(), GaveUp: l.gaveUp.Load(),
		Closes: l.closes.Load(), Reconnects: l.reconnects.Load(), Refused: l.refused.Load(),
		StormFailures: l.stormFailures.Load(), Early: l.early.Load(),
	}
}
