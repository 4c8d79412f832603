// Command wsd is the standalone WebSocket daemon: one binary, one config
// file. It serves
//
//	/echo        every message sent back with its type (tests, benchmarks)
//	/broadcast   every message to every client connected there
//	/ws          channels pub/sub with history and recovery (docs/protocol.md)
//	/api/...     HTTP API: publish, batch, history, presence, channels, info, disconnect (docs/api.md)
//	/metrics     Prometheus
//	/healthz     health: 503 while the broker (NATS) is unreachable
//	/, /wsd.js   demo page and the browser client
//
// Run `wsd --help` for the flags; every flag is also a config file key
// (max-message ↔ max_message).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/web"
	"github.com/wsdhq/wsd/wsproto"
)

type config struct {
	configFile       string
	listen           string
	maxMessage       int64
	maxConns         int
	maxConnsPerIP    int
	trustedProxies   prefixList
	maxPendingHS     int
	messageTimeout   time.Duration
	deflate          bool
	closeTimeout     time.Duration
	idleTimeout      time.Duration
	pingInterval     time.Duration
	ssePing          time.Duration
	handshakeTimeout time.Duration
	shutdownTimeout  time.Duration
	maxOutbound      int
	sockSendBuf      int
	sockRecvBuf      int
	maxMemory        int64
	workers          int
	loops            int
	logLevel         string
	pprof            bool
	returnMemory     bool

	apiKey           string
	tokenSecret      string
	tokenLeeway      time.Duration
	allowedOrigins   string
	maxDataBytes     int
	maxSubscriptions int
	rateLimit        float64
	rateBurst        int
	demo             bool

	broker string
	nats   natsConfig
	proxy  proxyFlags // proxy.go

	namespaces pubsub.Namespaces
	pacing     pacing    // drain.go
	tokenKeys  tokenKeys // token.go
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "doctor" { // doctor.go: check this box, serve nothing
		os.Exit(doctor(os.Args[2:], os.Stdout, os.Stderr, hostEnv()))
	}
	os.Exit(run(os.Args[1:], os.Stderr, nil))
}

func newFlagSet(c *config, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("wsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: wsd [flags]
       wsd doctor [--conns N]   (what this box can hold, and what to change)

wsd is a WebSocket server built to hold many mostly-idle connections.
Endpoints: /echo, /broadcast, /ws (pub/sub, docs/protocol.md), /api/... (HTTP
API, docs/api.md), /metrics, /healthz, / (demo) and /wsd.js.

Every flag can also be set in the --config TOML file under the same name with
'_' for '-' (max-message = max_message); flags given on the command line win.
Sizes take units: 65536, 64KiB, 16MiB, 1GiB (or KB, MB, GB: powers of 1000).
Per-namespace options are file-only tables: [namespaces.default],
[namespaces.chat] with history_size, history_ttl, publish, presence,
join_leave, join_leave_max, private.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.configFile, "config", "", "TOML config `file` (keys are the flag names with '_')")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "`address` to listen on (host:port)")
	bytesVar(fs, &c.maxMessage, "max-message", 16<<20, "largest message in `bytes` (after decompression); larger ones close with 1009")
	fs.IntVar(&c.maxConns, "max-conns", 0, "most connections at once; 0 = the file limit minus a reserve (also the ceiling: a higher value is lowered, with a log line); excess gets 503")
	fs.IntVar(&c.maxConnsPerIP, "max-conns-per-ip", 0, "most connections from one IP address (0 = no limit); excess gets 429")
	fs.Var(&c.trustedProxies, "trusted-proxies", "comma-separated `CIDRs` of reverse proxies whose X-Forwarded-For / X-Real-IP name the client (for --max-conns-per-ip and logs); other peers' headers are ignored")
	fs.IntVar(&c.maxPendingHS, "max-pending-handshakes", defaultMaxPendingHandshakes, "most connections still sending their upgrade request (slow or silent clients); excess gets 503 at accept. The default admits 4096 handshakes in flight: ≈ 15,000 upgrades/s (what 2 cores accept) that take 270 ms each; 0 = no bound but --max-conns")
	fs.DurationVar(&c.messageTimeout, "message-timeout", time.Minute, "longest time from a frame's or fragmented message's first byte to its end; past it: close 1008")
	fs.BoolVar(&c.deflate, "deflate", true, "offer permessage-deflate (without context takeover)")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 0, "close connections silent this long (0 = never)")
	fs.DurationVar(&c.closeTimeout, "close-timeout", 5*time.Second, "after wsd's close frame, how long a peer has to read what was queued before it and answer; then the TCP connection is cut")
	fs.DurationVar(&c.pingInterval, "ping-interval", 0, "ping connections silent this long (0 = never)")
	fs.DurationVar(&c.ssePing, "sse-ping", 15*time.Second, "write a keep-alive comment on /sse streams silent this long, so proxies keep them (0 = never)")
	fs.DurationVar(&c.handshakeTimeout, "handshake-timeout", 10*time.Second, "time from accept to a complete upgrade request")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM/SIGINT, how long to drain before closing what is left")
	bytesVar(fs, &c.maxMemory, "max-memory", 0, "process-wide budget in `bytes` for incomplete inbound messages, outbound queues and history; above 90% upgrades get 503 and the largest inbound holders are closed (1009); 0: 3/4 of GOMEMLIMIT, else 1/2 of MemTotal or the cgroup limit")
	bytesVar(fs, &c.maxOutbound, "max-outbound", 4<<20, "`bytes` queued per connection before it counts as a slow consumer (closed with 1008)")
	bytesVar(fs, &c.sockSendBuf, "socket-send-buffer", defaultSocketSendBuffer, "kernel send buffer per connection in `bytes` (SO_SNDBUF; the kernel doubles it and stops autotuning it): a client that stops reading is found slow after --max-outbound plus about twice this, and one connection sends at most about twice this per round trip; 0 = the kernel's autotuning (up to tcp_wmem's maximum, often 4 MiB)")
	bytesVar(fs, &c.sockRecvBuf, "socket-recv-buffer", 0, "kernel receive buffer per connection in `bytes` (SO_RCVBUF, doubled by the kernel): bounds one connection's inbound bytes per round trip; 0 = the kernel's autotuning")
	fs.IntVar(&c.workers, "workers", 0, "handler goroutines (0 = 4 per core)")
	fs.IntVar(&c.loops, "loops", 0, "event loops (0 = one per core)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.returnMemory, "return-memory", true, "after 1000+ connections accepted within 10 s followed by 2 s without new ones, return the handshakes' garbage to the OS (a forced GC)")
	fs.BoolVar(&c.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ (do not expose publicly)")
	fs.StringVar(&c.apiKey, "api-key", "", "enables the HTTP API for 'Authorization: apikey KEY' (unset: the API answers 403)")
	fs.StringVar(&c.tokenSecret, "token-secret", "", "HS256 secret of connection JWTs (sub = client ID, channels = allowed patterns); unset: anonymous clients may subscribe and publish")
	fs.DurationVar(&c.tokenLeeway, "token-leeway", 0, "clock skew allowed when checking token times")
	fs.StringVar(&c.allowedOrigins, "allowed-origins", "", "comma-separated Origin allow-list for /ws (empty = any)")
	bytesVar(fs, &c.maxDataBytes, "max-data-bytes", wsproto.DefaultMaxDataBytes, "largest publication `bytes` (JSON data)")
	fs.IntVar(&c.maxSubscriptions, "max-subscriptions", wsproto.DefaultMaxSubscriptions, "channels one connection may subscribe to")
	fs.Float64Var(&c.rateLimit, "rate-limit", wsproto.DefaultRateLimit, "messages per second one /ws connection may send (<0 = unlimited); past the burst it is closed with 1008")
	fs.IntVar(&c.rateBurst, "rate-burst", wsproto.DefaultRateBurst, "burst allowed above --rate-limit")
	fs.BoolVar(&c.demo, "demo", false, "run the demo page's feeds (stocks:*, news:wire) and add its namespaces (stocks, news, chat, game) where the config has none")
	fs.BoolVar(&c.demo, "demo-ticker", false, "the same as --demo (its old name)")
	fs.StringVar(&c.broker, "broker", "memory", "where channels live: memory (this process) or nats (NATS JetStream, shared by every node; docs/cluster.md)")
	c.nats.flags(fs)
	c.proxy.flags(fs)
	c.pacing.addFlags(fs)
	c.tokenKeys.addFlags(fs)
	return fs
}

// parseConfig reads flags, then the config file for what flags left unset.
func parseConfig(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := newFlagSet(c, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, &configError{fmt.Sprintf("unexpected argument %q", fs.Arg(0))}
	}
	c.namespaces = pubsub.Namespaces{"": pubsub.DefaultNamespaceOptions()}
	if c.configFile != "" {
		tables, err := applyFile(fs, c.configFile)
		if err != nil {
			return nil, err
		}
		for name, v := range tables {
			if name != "namespaces" {
				return nil, &configError{fmt.Sprintf("config %s: unknown table [%s]", c.configFile, name)}
			}
			if err := c.readNamespaces(v.(map[string]any)); err != nil {
				return nil, err
			}
		}
	}
	if c.demo {
		c.addDemoNamespaces()
	}
	if err := c.namespaces.Validate(); err != nil {
		return nil, &configError{fmt.Sprintf("config %s: namespaces: %v", c.configFile, err)}
	}
	if err := c.checkBroker(); err != nil {
		return nil, err
	}
	if c.closeTimeout <= 0 {
		return nil, &configError{fmt.Sprintf("close-timeout must be positive, got %v", c.closeTimeout)}
	}
	if c.apiKey == exampleAPIKey {
		return nil, &configError{fmt.Sprintf("api_key is the example value %q: set a secret of your own (openssl rand -hex 32), or leave it unset to turn the API off", exampleAPIKey)}
	}
	return c, nil
}

// defaultSocketSendBuffer caps each connection's kernel send buffer (the
// kernel makes it 512 KiB). Without a cap Linux autotunes it up to
// tcp_wmem's maximum (4 MiB on common hosts, at once on loopback), which a
// client that stops reading fills before --max-outbound counts anything:
// detection then takes minutes on a small feed and pins that much kernel
// memory per stopped client. 256 KiB still carries ≈ 40 Mbit/s per
// connection at 100 ms round trip (docs/bench/slow-consumers.md).
const defaultSocketSendBuffer = 256 << 10

// defaultMaxPendingHandshakes bounds the conns accepted whose request is
// not complete yet, so that clients trickling (or never sending) their
// request cannot take every --max-conns slot for --handshake-timeout
// each. A real client sends its request as soon as TCP connects, so its
// handshake lasts about one round trip: 4096 in flight is ≈ 15,000
// upgrades/s (what wsd accepts on 2 cores) at 270 ms each, and what they
// hold stays small (≤ 4096 × the 8 KiB request cap).
const defaultMaxPendingHandshakes = 4096

// exampleAPIKey is deploy/wsd.toml's placeholder, refused so that a copied
// example never serves an API anyone can guess.
const exampleAPIKey = "change-me"

func (c *config) readNamespaces(t map[string]any) error {
	for name, v := range t {
		opts, ok := v.(map[string]any)
		if !ok {
			return &configError{fmt.Sprintf("config %s: namespaces.%s must be a table", c.configFile, name)}
		}
		key := name
		if name == "default" {
			key = ""
		}
		o := pubsub.DefaultNamespaceOptions()
		for k, val := range opts {
			if err := o.Set(k, tomlString(val)); err != nil {
				return &configError{fmt.Sprintf("config %s: key namespaces.%s.%s: %v", c.configFile, name, k, err)}
			}
		}
		c.namespaces[key] = o
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// run is main without os.Exit: tests call it. ready, if not nil, receives
// the server once it listens.
func run(args []string, stderr io.Writer, ready chan<- *server.Server[wsproto.Session]) int {
	c, err := parseConfig(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		fmt.Fprintln(stderr, "wsd: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	broker, err := newBroker(c, log)
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	defer broker.close()
	goMemLimitSet := debug.SetMemoryLimit(-1) != math.MaxInt64
	if c.maxMemory == 0 {
		var rule string
		c.maxMemory, rule = defaultMaxMemory(os.DirFS("/"), debug.SetMemoryLimit(-1))
		log.Info("memory budget", "max_memory", formatByteSize(c.maxMemory), "rule", rule)
	}
	opts := server.Options{
		MaxConns:         c.maxConns,
		MaxConnsPerIP:    c.maxConnsPerIP,
		MaxMessageBytes:  c.maxMessage,
		Compression:      c.deflate,
		IdleTimeout:      c.idleTimeout,
		CloseTimeout:     c.closeTimeout,
		PingInterval:     c.pingInterval,
		HandshakeTimeout: c.handshakeTimeout,

		TrustedProxies:       c.trustedProxies,
		MaxPendingHandshakes: c.maxPendingHS,
		MessageTimeout:       c.messageTimeout,

		StreamPing:         wsproto.SSEPing,
		StreamPingInterval: c.ssePing,

		MaxOutboundBytes: c.maxOutbound,
		SocketSendBuffer: c.sockSendBuf,
		SocketRecvBuffer: c.sockRecvBuf,
		MaxMemory:        c.maxMemory,
		ExtraMemory:      broker.historyBytes,
		Workers:          c.workers,
		Loops:            c.loops,
		Logger:           log,
	}
	c.pacing.apply(&opts)
	srv := server.New[wsproto.Session](opts)
	srv.Handle("/echo", server.Funcs[wsproto.Session]{
		Message: func(conn *server.Conn[wsproto.Session], m server.Message) { _ = conn.Send(m.Type, m.Data) },
	}, server.Inline())
	srv.Handle("/broadcast", newHub(srv))

	hub, err := wsproto.NewHub(srv, broker.Broker, pubsub.HubOptions[*server.Prepared]{Namespaces: c.namespaces})
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	wsCfg := wsproto.Config{TokenSecret: c.tokenSecret, TokenLeeway: c.tokenLeeway,
		AllowedOrigins: splitList(c.allowedOrigins), MaxDataBytes: c.maxDataBytes,
		MaxSubscriptions: c.maxSubscriptions, RateLimit: c.rateLimit, RateBurst: c.rateBurst, Logger: log,
		Proxy: c.proxy.config()}
	if err := c.tokenKeys.apply(&wsCfg); err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	if broker.nats != nil {
		wsCfg.NodeID = broker.nats.NodeID() // presence is cluster-wide: anonymous IDs must not collide
	}
	wsh, err := wsproto.New(hub, wsCfg)
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	if wsCfg.Anonymous() {
		log.Warn(wsproto.AnonymousWarning)
	}
	srv.Handle("/ws", wsh)
	sse := wsh.SSE()
	srv.HandleStream("/sse", wsproto.SSEContentType, sse)
	defer wsh.CloseProxies()
	api := wsproto.NewAPI(hub, wsproto.APIConfig{Key: c.apiKey, MaxDataBytes: c.maxDataBytes, Users: wsh})
	srv.HandleHTTP("/api/", api)
	srv.HandleHTTP("/metrics", metricsHandler(srv, hub, broker.memory, wsh, sse, api))
	srv.HandleHTTP("GET /healthz", healthz(srv, broker))
	srv.HandleHTTP("GET /wsd.js", web.JS())
	srv.HandleHTTP("GET /{$}", web.Index())
	if c.pprof {
		srv.HandleHTTP("/debug/pprof/", http.HandlerFunc(pprof.Index))
		srv.HandleHTTP("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(c.listen) }()
	select {
	case <-srv.Ready():
		log.Info("wsd listening", "addr", c.listen, "max_conns", srv.MaxConns(),
			"api", c.apiKey != "", "tokens", !wsCfg.Anonymous())
	case err := <-done:
		log.Error("wsd could not start", "err", err)
		return 1
	}
	ctx, stopTicker := context.WithCancel(context.Background())
	var tickers sync.WaitGroup
	if c.maxMemory > 0 && !goMemLimitSet {
		tickers.Add(1)
		go func() {
			defer tickers.Done()
			followBudget(ctx, c.maxMemory, func() int64 { return srv.Stats().Memory.Used() })
		}()
	}
	if c.returnMemory {
		tickers.Add(1)
		go func() { defer tickers.Done(); returnMemory(ctx, func() uint64 { return srv.Stats().Accepted }) }()
	}
	if c.demo {
		tickers.Add(1)
		go func() { defer tickers.Done(); runDemo(ctx, hub, log) }()
	}
	if ready != nil {
		ready <- srv
	}
	select {
	case sig := <-sigs:
		log.Info("shutting down", "signal", sig.String())
		stopTicker()
		tickers.Wait()
		sctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
		err := srv.Shutdown(sctx)
		cancel()
		<-done
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			log.Error("shutdown", "err", err)
			return 1
		}
		log.Info("stopped")
		return 0
	case err := <-done:
		stopTicker()
		tickers.Wait()
		if err != nil {
			log.Error("wsd stopped", "err", err)
			return 1
		}
		return 0
	}
}
