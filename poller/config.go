package poller

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/wsdhq/wsd/codec"
)

// Policy is what happens when a connection's outbound queue passes its
// cap (Config.MaxOutboundBytes). A conn is over the cap when the messages
// queued for it, or the bytes gnet still holds because the peer has not
// read them, exceed MaxOutboundBytes.
type Policy uint8

const (
	// PolicyClose closes the connection with 1008 "slow consumer", counted
	// under CauseSlowConsumer, discarding what is queued (reliable feeds:
	// the client reconnects and recovers from history). Sends from then on
	// fail.
	PolicyClose Policy = iota
	// PolicyDrop refuses the messages that do not fit (lossy feeds): Send
	// returns ErrSlowConsumer and queues nothing, and the conn stays open.
	// A message Send accepted is not dropped later: while gnet is over the
	// cap the queue is held, not discarded, until the peer reads (only a
	// close while it is held discards it, with 1008 "slow consumer"). The
	// decision is taken before the message is compressed, so with context
	// takeover the compressor only ever sees messages the peer receives
	// and every delivered message inflates correctly.
	PolicyDrop
)

// Config is the engine's configuration. Zero fields take the defaults in
// the comments; the struct is copied by New and read-only afterwards.
type Config struct {
	Upgrader codec.Upgrader // handshake limits, subprotocols, Origin hook, deflate
	Limits   codec.Limits   // 0: frame 16 MiB, message 16 MiB
	Flate    *codec.Flate   // nil: made from Upgrader.Deflate when enabled

	MaxConns         int           // 0, or more than RLIMIT_NOFILE (raised by Serve) holds: DefaultMaxConns, a lowering is logged; over it: 503
	MaxConnsPerIP    int           // 0: no per-address limit; over it: 429 before the upgrade
	MaxAcceptRate    float64       // upgrades (and streams: Conn.AdmitStream) per second, bursts of one second's worth; 0: no limit; over it: 503 with Retry-After
	HandshakeTimeout time.Duration // 0: 10 s, counted from accept
	// MaxPendingHandshakes bounds the conns accepted whose first request
	// is not complete yet (slow or silent clients); over it: 503 at accept,
	// before any byte is read. 0: no bound but MaxConns.
	MaxPendingHandshakes int
	// MessageTimeout bounds the time from the first byte of a frame or the
	// first fragment of a message to its end; past it: 1008. It ignores
	// paused reads (the application's wait, not the peer's). 0: 60 s.
	MessageTimeout time.Duration
	// TrustedProxies are the TCP peers whose X-Forwarded-For / X-Real-IP
	// are believed: their conns get the forwarded client as RemoteAddr,
	// and MaxConnsPerIP counts that client once the request is read
	// instead of the proxy at accept. Other peers' headers are ignored.
	TrustedProxies   []netip.Prefix
	IdleTimeout      time.Duration // 0: none; enforced by a 1 s sweep, so within 1–2 s after
	PingInterval     time.Duration // 0: none; pings a conn silent this long
	CloseTimeout     time.Duration // 0: 5 s to wait for the peer's close
	MaxOutboundBytes int           // 0: 4 MiB queued per conn (ours, or gnet's unread) before SlowPolicy applies
	SlowPolicy       Policy        // PolicyClose by default
	MaxInboundBytes  int           // 0: MaxMessage + 1 MiB unread while paused
	OffloadBytes     int           // 0: 64 KiB; compressed messages past it are inflated by Conn.Inflate off the loop (Offloader); <0: never

	// MaxMemory is the process-wide memory budget in bytes (memory.go):
	// incomplete inbound messages, outbound queues and ExtraMemory. Above
	// 90% of it upgrades get 503 and the largest inbound holders are
	// closed with 1009. 0: no budget (usage is still accounted).
	MaxMemory int64
	// ExtraMemory reports bytes held elsewhere on behalf of clients (a
	// pub/sub history) to count against MaxMemory. Called once a second
	// from a goroutine of its own; must be safe for that. nil: none.
	ExtraMemory func() int64

	// StreamPing is written on a streaming response (StartStream) that sent
	// nothing for StreamPingInterval, so that proxies keep it open (SSE: a
	// comment, ": ping\n\n"). Either zero: none.
	StreamPing         []byte
	StreamPingInterval time.Duration

	// SocketSendBuffer and SocketRecvBuffer set SO_SNDBUF / SO_RCVBUF on
	// the listeners, which accepted sockets inherit. The kernel doubles
	// the value (bookkeeping overhead) and stops autotuning that buffer.
	// A capped send buffer makes a peer that stops reading reach
	// MaxOutboundBytes after about this much more data, instead of after
	// tcp_wmem's maximum (often 4 MiB of kernel memory per conn). It also
	// bounds the bytes in flight, so one conn's throughput is at most about
	// this much per round trip. 0: the kernel's default (autotuned).
	SocketSendBuffer int
	SocketRecvBuffer int

	Loops         int // 0: one per core
	ReadBufferCap int // 0: 64 KiB per loop
	TCPKeepAlive  time.Duration
	Logger        *slog.Logger // nil: slog.Default()
}

const (
	defaultMaxMessage = 16 << 20
	defaultOutbound   = 4 << 20
	defaultOffload    = 64 << 10
)

func (c *Config) setDefaults() {
	if c.Limits.MaxMessage == 0 {
		c.Limits.MaxMessage = defaultMaxMessage
	}
	if c.Limits.MaxFrame == 0 {
		c.Limits.MaxFrame = c.Limits.MaxMessage
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = 10 * time.Second
	}
	if c.MessageTimeout == 0 {
		c.MessageTimeout = time.Minute
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = 5 * time.Second
	}
	if c.MaxOutboundBytes == 0 {
		c.MaxOutboundBytes = defaultOutbound
	}
	if c.OffloadBytes == 0 {
		c.OffloadBytes = defaultOffload
	}
	if c.MaxInboundBytes == 0 {
		c.MaxInboundBytes = int(c.Limits.MaxMessage) + 1<<20
	}
	if c.Upgrader.Deflate.Enabled && c.Flate == nil {
		c.Flate = codec.NewFlate(c.Upgrader.Deflate)
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// secs converts a timeout to whole seconds of the sweep clock, rounding up;
// 0 means disabled.
func secs(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	return uint32((d + time.Second - 1) / time.Second)
}
