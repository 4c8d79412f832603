package server

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/wsdhq/wsd/poller"
)

// Policy is what happens to a connection whose outbound queue is full.
type Policy = poller.Policy

// Slow-consumer policies.
const (
	CloseSlow = poller.PolicyClose // close with 1008; the client reconnects
	DropSlow  = poller.PolicyDrop  // drop what does not fit (lossy feeds)
)

// Options configures a Server. Every zero value means the default given.
type Options struct {
	MaxConns          int           // default and ceiling: the file limit minus a reserve (a higher value is lowered, with a log line); excess gets 503 before the upgrade
	MaxConnsPerIP     int           // default: no limit; excess from one address gets 429 before the upgrade
	MaxAcceptRate     float64       // upgrades and streams (HandleStream) per second, in bursts of up to one second's worth; default: no limit; excess gets 503 with a Retry-After that spreads the refused clients at this rate
	MaxMessageBytes   int64         // default 16 MiB (after decompression); over it: close 1009
	MaxFrameBytes     int64         // default MaxMessageBytes
	MaxHandshakeBytes int           // default 8 KiB of request head; over it: 431
	HandshakeTimeout  time.Duration // default 10 s from accept to a whole request
	// MaxPendingHandshakes bounds the conns still sending their request
	// (trickling clients); excess gets 503 at accept. Default: no bound
	// but MaxConns.
	MaxPendingHandshakes int
	// MessageTimeout bounds the time from a frame's or fragmented
	// message's first byte to its end; past it: close 1008. Default 60 s.
	MessageTimeout time.Duration
	// TrustedProxies are the peers (reverse proxies) whose X-Forwarded-For
	// and X-Real-IP name the client: for them RemoteAddr and the
	// MaxConnsPerIP count use that client, counted once the request is
	// read. Other peers' headers are ignored. Default none.
	TrustedProxies   []netip.Prefix
	IdleTimeout      time.Duration // default none; silent conns get 1001 after it
	PingInterval     time.Duration // default none; a conn silent this long is pinged
	CloseTimeout     time.Duration // default 5 s to wait for the peer's close reply
	DrainSpread      time.Duration // default 0: Shutdown sends 1001; >0: 1012 with a retry hint drawn per conn from [0, DrainSpread) (see Shutdown)
	MaxOutboundBytes int           // default 4 MiB queued per conn
	// SocketSendBuffer caps each conn's kernel send buffer (SO_SNDBUF;
	// the kernel doubles it and stops autotuning it). A peer that stops
	// reading is then a slow consumer after MaxOutboundBytes plus about
	// this much, not after the kernel's autotuned maximum (tcp_wmem, often
	// 4 MiB of kernel memory per conn); it also bounds one conn's
	// throughput to about this much per round trip. Default 0: the
	// kernel's autotuning.
	SocketSendBuffer int
	// SocketRecvBuffer sets SO_RCVBUF the same way (inbound throughput per
	// round trip). Default 0: the kernel's autotuning.
	SocketRecvBuffer int

	// MaxMemory is the process-wide budget, in bytes, for what clients make
	// the server hold: incomplete inbound messages, outbound queues and
	// ExtraMemory. Above 90% of it new upgrades get 503 (Retry-After) and
	// the conns holding the most of an incomplete message are closed with
	// 1009 until usage is under 80%. Default 0: no budget (usage is still
	// reported in Stats).
	MaxMemory int64
	// ExtraMemory reports other bytes held for clients (a pub/sub
	// history) that count against MaxMemory; polled once a second from a
	// goroutine of its own, so it must be safe for that. Default none.
	ExtraMemory  func() int64
	SlowConsumer Policy // default CloseSlow

	// StreamPing is written on a streaming response (HandleStream) silent
	// for StreamPingInterval, so that proxies keep it open (SSE: a comment
	// such as ": ping\n\n"). Default none.
	StreamPing         []byte
	StreamPingInterval time.Duration

	Workers   int // handler goroutines; default 4 × GOMAXPROCS
	QueueSize int // conns waiting for a worker before reads pause; default 1024
	Inbox     int // messages queued per conn before its reads pause; default 64

	Compression       bool // offer permessage-deflate (no context takeover)
	ContextTakeover   bool // keep flate state per conn: better ratio, ~1 MiB+ per compressing conn
	CompressionLevel  int  // default 1 (fastest)
	CompressThreshold int  // default 128 bytes: smaller messages go out uncompressed; <0: compress all
	// OffloadBytes: a received compressed message bigger than this
	// (compressed, or once inflated) is inflated and UTF-8-checked by the
	// worker, not the event loop, which then inflates at most this much
	// of it. Default 64 KiB; <0: always on the loop. Inline routes and
	// ContextTakeover conns always inflate on the loop.
	OffloadBytes int

	Subprotocols []string              // in preference order
	CheckOrigin  func(r *Request) bool // nil: any Origin
	KeepHeaders  bool                  // keep Request().Header after OnOpen (costs memory per conn)

	Loops        int           // event loops; default one per core
	TCPKeepAlive time.Duration // default off
	Logger       *slog.Logger  // default slog.Default()
}
