package poller

// Cause says why a connection closed. Every close is counted by cause so an
// operator can tell slow consumers from protocol errors from idle reaping.
type Cause uint8

// Causes.
const (
	CausePeerGone          Cause = iota // TCP closed or reset without a close frame
	CausePeerClose                      // the peer sent a close frame
	CauseServerClose                    // the application called Close
	CauseProtocol                       // the peer broke RFC 6455/7692
	CauseTooBig                         // a frame or message over the limit (1009)
	CauseIdle                           // no traffic for IdleTimeout
	CauseHandshakeTimeout               // no complete upgrade request in time
	CauseHandshakeRejected              // upgrade refused with an HTTP error
	CauseSlowConsumer                   // outbound queue over its cap
	CauseInboundOverflow                // reads paused and unread input over its cap
	CauseShutdown                       // server shutting down (1001)
	CausePanic                          // a handler panicked (1011)
	CauseOverCapacity                   // over MaxConns: 503 before the upgrade
	CauseHTTPDone                       // a plain HTTP request was answered
	CausePerIPLimit                     // over MaxConnsPerIP: 429 before the upgrade
	CauseAcceptRate                     // over MaxAcceptRate: 503 with Retry-After before the upgrade or stream
	CauseMemoryRefused                  // memory budget near full: 503 with Retry-After before the upgrade
	CauseMemoryShed                     // memory budget near full: among the largest inbound holders (1009)
	CauseHandshakeCap                   // over MaxPendingHandshakes: 503 at accept
	CausePingFlood                      // pings while our pongs pile up unread (1008)
	CauseMessageTimeout                 // a message or frame unfinished for MessageTimeout (1008)
	NumCauses
)

var causeNames = [NumCauses]string{
	"peer_gone", "peer_close", "server_close", "protocol_error", "too_big", "idle",
	"handshake_timeout", "handshake_rejected", "slow_consumer", "inbound_overflow",
	"shutdown", "panic", "over_capacity", "http_done", "per_ip_limit",
	"accept_rate", "memory_refused", "memory_shed", "handshake_cap", "ping_flood", "message_timeout",
}

func (c Cause) String() string {
	if c < NumCauses {
		return causeNames[c]
	}
	return "unknown"
}
