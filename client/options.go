package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"time"
)

// Options configures a Client. The zero value is usable: every zero field
// has the default its comment gives.
type Options struct {
	// Token is sent in the upgrade request's Authorization: Bearer header
	// (a JWT for servers that check one), never in the URL, which access
	// logs keep. Empty sends none.
	Token string
	// TokenFunc, when set, is called before every connection attempt and
	// its result replaces Token, so an expiring JWT can be refreshed across
	// reconnects. An error counts as a failed attempt (the client retries
	// after the backoff). It is also called when the server pushes a
	// refresh notice (the token expires soon, docs/protocol.md): the new
	// token is sent with a refresh op, on another goroutine than the
	// callbacks', and a failure is reported to OnError (*RefreshError); the
	// server then closes at exp with 3000 and the client reconnects with a
	// token from TokenFunc.
	TokenFunc func(ctx context.Context) (string, error)
	// ChannelTokenFunc, when set, gives the channel token sent with a
	// subscribe (private namespaces, docs/protocol.md): it is called before
	// the first subscribe to a channel and, on the connection goroutine
	// before the subscriptions are sent again, after every reconnect. ""
	// sends none (public channels). An error fails Subscribe
	// (*RefreshError); after a reconnect it goes to OnError
	// (*SubscriptionError) and the old token is sent.
	ChannelTokenFunc func(ctx context.Context, channel string) (string, error)
	// Header holds extra header lines for the upgrade request (Origin,
	// Cookie, User-Agent, ...). The WebSocket headers are set by the client.
	Header http.Header
	// TLSConfig is used for wss:// URLs. Nil means a default config with
	// ServerName taken from the URL.
	TLSConfig *tls.Config
	// NetDial opens the TCP connection. Nil uses a net.Dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)

	// Endpoints are further URLs of the same service (the other nodes of a
	// cluster), tried in turn after the URL given to New: the client moves
	// to the next one when its node is gone — an attempt failed (refused,
	// 503, timeout), the server closed with 1001, 1012 or 1013, or the
	// connection dropped without a close frame — and stays after other
	// closes. Subscriptions resume there with since, as after any
	// reconnect. Empty: the one URL only.
	Endpoints []string

	// DialTimeout bounds one connection attempt: TCP, TLS and the upgrade.
	// 0 means 10 s.
	DialTimeout time.Duration
	// WriteTimeout bounds every write to the connection; a write that
	// takes longer drops the connection (and the client reconnects).
	// 0 means 10 s.
	WriteTimeout time.Duration
	// PingInterval: when nothing has arrived from the server for this long
	// the client sends a ping, and when nothing arrives for another
	// interval it treats the connection as dead and reconnects. 0 means
	// 25 s; negative disables it (a half-open TCP connection is then only
	// noticed when a write fails).
	PingInterval time.Duration
	// MaxMessage bounds a message from the server; a bigger one fails the
	// connection with 1009. 0 means 16 MiB.
	MaxMessage int64

	// MinBackoff is the base of the exponential backoff between connection
	// attempts. 0 means 500 ms.
	MinBackoff time.Duration
	// MaxBackoff caps the backoff. 0 means 30 s.
	MaxBackoff time.Duration
	// HealthyAfter is how long a connection must stay up for the backoff to
	// start again from MinBackoff. 0 means 10 s.
	HealthyAfter time.Duration

	// FailFast makes requests made while disconnected fail at once with
	// ErrNotConnected instead of waiting (bounded by their ctx) for the
	// next connection.
	FailFast bool
	// MaxQueuedPublishes bounds the publishes waiting for a connection
	// (made while disconnected, or resent after a drop); past it Publish
	// fails at once with ErrQueueFull. 0 means 1000.
	MaxQueuedPublishes int

	// OnState is called on every state change. err is why the connection
	// was lost or the attempt failed (nil for Connecting and Connected, and
	// for Closed after Close). Closed is always the last call.
	OnState func(state State, err error)
	// OnPublication is called for every publication on a subscribed
	// channel, exactly once per offset and in offset order. data is the
	// publication's JSON payload; the callback may keep it.
	OnPublication func(channel string, offset uint64, epoch string, data json.RawMessage)
	// OnBinaryPublication is OnPublication for binary publications (raw
	// bytes: PublishBinary, or "data_b64" in the HTTP API), which share
	// their channel's offsets with JSON ones: for one channel, both
	// callbacks together see every offset once, in order. data is the
	// callback's to keep. When nil, binary publications are skipped
	// (their offsets still count as delivered).
	OnBinaryPublication func(channel string, offset uint64, epoch string, data []byte)
	// OnRecover is called after a subscription was re-established with
	// "since" (after every reconnect, after a gap repair, and for
	// SubscribeSince): recovered true means every missed publication
	// follows; false means the server could not provide them (its history
	// was reset: epoch is the new one), and delivery resumes from the
	// channel's latest offset in that epoch. It is also called with false
	// when a live publication arrives in a new epoch, or when a gap could
	// not be repaired.
	OnRecover func(channel string, recovered bool, epoch string)
	// OnJoin and OnLeave are called when another client joins a
	// subscribed channel (its first subscription there started) or leaves
	// it (its last one ended), in namespaces where the server pushes joins
	// and leaves (join_leave = true, docs/protocol.md). client is its ID
	// (the token's sub). They are best effort: none is replayed after a
	// reconnect, when the current members are Presence's answer.
	OnJoin  func(channel, client string)
	OnLeave func(channel, client string)
	// OnServerSubscription is called when the server subscribed the client
	// to channel on the backend's behalf (subscribed true: its
	// publications go to OnPublication from then on, and the client
	// resumes it after reconnects) and when that subscription ended
	// (false: the backend unsubscribed the user, also while the client was
	// away). See Server-side subscriptions in docs/protocol.md.
	OnServerSubscription func(channel string, subscribed bool)
	// OnError reports errors that belong to no request: a channel that
	// could not be subscribed again after a reconnect (*SubscriptionError;
	// the subscription is then dropped), or an error reply without an id.
	OnError func(err error)

	testHookBackoff func(attempt int, d time.Duration) // tests only
}

func (o *Options) setDefaults() {
	if o.MaxQueuedPublishes <= 0 {
		o.MaxQueuedPublishes = 1000
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.DialTimeout, 10*time.Second)
	def(&o.WriteTimeout, 10*time.Second)
	def(&o.PingInterval, 25*time.Second)
	def(&o.MinBackoff, 500*time.Millisecond)
	def(&o.MaxBackoff, 30*time.Second)
	def(&o.HealthyAfter, 10*time.Second)
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.MaxMessage <= 0 {
		o.MaxMessage = 16 << 20
	}
}

// State is the connection state of a Client.
type State int

// States, in the order a client goes through them.
const (
	StateConnecting   State = iota // dialing or upgrading
	StateConnected                 // upgraded; subscriptions are being (re)established
	StateDisconnected              // lost or failed; waiting for the next attempt
	StateClosed                    // Close was called or the server refused for good; final
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}
