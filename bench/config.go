package bench

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Scenario names.
const (
	ScenarioConnect   = "connect"
	ScenarioIdle      = "idle"
	ScenarioEcho      = "echo"
	ScenarioBroadcast = "broadcast"
	ScenarioStorm     = "storm"
)

// Broadcast modes and /ws publish paths.
const (
	// ModeRaw: every data message sent to the URL is relayed to every
	// connection on it (wsd's /broadcast, the peers' hubs).
	ModeRaw = "raw"
	// ModeWS: wsd's /ws JSON protocol (docs/protocol.md): subscribers
	// subscribe to Channel, and publications go out as publish ops over
	// /ws or through the HTTP API, by Publish.
	ModeWS = "ws"
	// ModeSSE (idle only): the connections are Server-Sent Events streams
	// (a GET of the URL, e.g. wsd's /sse?channel=bench, answered 200 and
	// held), not WebSocket upgrades; nothing is pinged (the client of a
	// stream cannot send), incoming bytes are counted and dropped.
	ModeSSE = "sse"

	PublishWS   = "ws"   // publish op on a /ws connection of its own
	PublishHTTP = "http" // POST /api/publish, one request at a time

	// DefaultChannel is the /ws mode's channel.
	DefaultChannel = "bench"
	// MaxHTTPPublishRate bounds the HTTP publisher even in closed loop:
	// wsd's API answers one request per connection, so each publish is a
	// new TCP connection.
	MaxHTTPPublishRate = 500
)

// Hard bounds on every run: wsbench is a load generator and must stop by
// itself whatever it is told.
const (
	MaxConns   = 1_000_000
	MaxProcs   = 64
	MaxRunTime = time.Hour
	// fdReserve is what a worker process keeps free of its file limit.
	fdReserve = 64
)

// Config describes one run. It is a plain value that travels as JSON to
// worker processes; the zero value of each field means the default given.
type Config struct {
	Scenario string `json:"scenario"`
	URL      string `json:"url"`
	Label    string `json:"label,omitempty"` // names the server under test in reports

	Conns       int           `json:"conns"`        // connections (broadcast: subscribers); default 100
	ConnectRate float64       `json:"connect_rate"` // new connections per second, all procs together; 0 = as fast as Concurrency allows
	Concurrency int           `json:"concurrency"`  // handshakes in flight at once, all procs; default 256
	Duration    time.Duration `json:"duration"`     // measured window; default 10 s (connect: unused)
	Warmup      time.Duration `json:"warmup"`       // traffic before measuring; default 1 s (idle: settle time, default 3 s)
	Timeout     time.Duration `json:"timeout"`      // hard cap on the whole run; default Duration+Warmup+2 min, at most MaxRunTime

	Size     int     `json:"size"`     // payload bytes; default 1024 (broadcast 64)
	Text     bool    `json:"text"`     // text frames instead of binary
	Deflate  bool    `json:"deflate"`  // offer permessage-deflate (no context takeover)
	Rate     float64 `json:"rate"`     // echo: messages/s per connection (0 = closed loop); broadcast: publishes/s (0 = closed loop)
	Pipeline int     `json:"pipeline"` // echo closed loop: messages in flight per connection; broadcast closed loop: publishes in flight; default 1

	// Broadcast only.
	Mode    string `json:"mode,omitempty"`    // ModeRaw (default) or ModeWS
	Channel string `json:"channel,omitempty"` // ws mode: channel to subscribe and publish on; default "bench"
	Publish string `json:"publish,omitempty"` // ws mode: PublishWS (default) or PublishHTTP
	Binary  bool   `json:"binary,omitempty"`  // ws mode, publish over /ws: binary publications (binary frames both ways)
	APIKey  string `json:"api_key,omitempty"` // ws mode, publish over HTTP: "Authorization: apikey KEY"
	APIURL  string `json:"api_url,omitempty"` // ws mode, publish over HTTP: default http://HOST:PORT/api/publish of PublishURL
	// Several nodes of one cluster: subscribers are spread round robin over
	// URL and Nodes; the publisher connects to PublishURL (default URL).
	Nodes      []string `json:"nodes,omitempty"`
	PublishURL string   `json:"publish_url,omitempty"`

	// Storm only (see storm.go).
	Fallback    []string      `json:"fallback,omitempty"`     // URLs after URL, tried in turn after a close
	IgnoreHints bool          `json:"ignore_hints,omitempty"` // the naive client: no retry hints, no Retry-After, no delay after a close
	BackoffMin  time.Duration `json:"backoff_min,omitempty"`  // base of the backoff after failures; default 500 ms
	BackoffMax  time.Duration `json:"backoff_max,omitempty"`  // its cap; default 30 s
	MaxAttempts int           `json:"max_attempts,omitempty"` // failed attempts per client before it gives up; default 50
	KillPID     int           `json:"kill_pid,omitempty"`     // coordinator: signal this process once every client is up
	KillSignal  string        `json:"kill_signal,omitempty"`  // TERM (default), KILL or INT
	KillAfter   time.Duration `json:"kill_after,omitempty"`   // how long after every client is up; default 500 ms

	PingEvery  time.Duration `json:"ping_every"`  // idle: ping interval for the sample; default 1 s
	PingSample int           `json:"ping_sample"` // idle: connections pinged each interval, all procs; default 100
	// Idle over wsd's /ws: each connection subscribes to one channel of
	// the Subscribe pattern (e.g. feed:%d), connection i to channel
	// i mod SubChannels (default Conns: a channel each), is ready on the
	// reply, and counts the pushes it gets as deliveries.
	Subscribe   string `json:"subscribe,omitempty"`
	SubChannels int    `json:"sub_channels,omitempty"`

	Procs       int      `json:"procs"`      // worker processes; default 1 (in-process)
	Loops       int      `json:"loops"`      // epoll loops per process; default GOMAXPROCS
	SourceIPs   []string `json:"source_ips"` // local addresses to bind before connect, round-robin
	AllowRemote bool     `json:"allow_remote"`

	ServerPID     int           `json:"server_pid,omitempty"`     // sample /proc/PID/status VmRSS
	PrometheusURL string        `json:"prometheus_url,omitempty"` // or scrape process_resident_memory_bytes
	Sample        time.Duration `json:"sample"`                   // timeline / RSS sampling period; default 500 ms
	// CPU time (user + system) of these processes over the measured window
	// (echo, idle, broadcast), from /proc/PID/stat.
	CPUProcs []CPUProc `json:"cpu_procs,omitempty"`

	// Worker identity; set by the coordinator.
	WorkerIndex int `json:"worker_index"`
	WorkerCount int `json:"worker_count"`
}

// withDefaults fills zero fields and validates the bounds.
func (c Config) withDefaults() (Config, error) {
	switch c.Scenario {
	case ScenarioConnect, ScenarioIdle, ScenarioEcho, ScenarioBroadcast, ScenarioStorm:
	default:
		return c, fmt.Errorf("unknown scenario %q (connect, idle, echo, broadcast, storm)", c.Scenario)
	}
	if err := c.stormDefaults(); err != nil {
		return c, err
	}
	if c.Conns == 0 {
		c.Conns = 100
	}
	if c.Conns < 0 || c.Conns > MaxConns {
		return c, fmt.Errorf("--conns must be 1..%d", MaxConns)
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 256
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Duration < 0 || c.Duration > MaxRunTime {
		return c, fmt.Errorf("--duration must be positive and at most %v", MaxRunTime)
	}
	if c.Warmup == 0 {
		c.Warmup = time.Second
		if c.Scenario == ScenarioIdle {
			c.Warmup = 3 * time.Second
		}
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	}
	if c.Timeout <= 0 {
		c.Timeout = c.Duration + c.Warmup + 2*time.Minute
	}
	if c.Timeout > MaxRunTime {
		c.Timeout = MaxRunTime
	}
	if c.Size == 0 {
		c.Size = 1024
		if c.Scenario == ScenarioBroadcast {
			c.Size = 64
		}
	}
	if c.Size < 0 || c.Size > 64<<20 {
		return c, errors.New("--size must be 0..64 MiB")
	}
	if err := c.broadcastDefaults(); err != nil {
		return c, err
	}
	if err := c.subscribeDefaults(); err != nil {
		return c, err
	}
	if c.Pipeline <= 0 {
		c.Pipeline = 1
	}
	if c.Rate < 0 || c.ConnectRate < 0 {
		return c, errors.New("rates must not be negative")
	}
	if c.PingEvery <= 0 {
		c.PingEvery = time.Second
	}
	if c.PingSample == 0 {
		c.PingSample = 100
	}
	if c.Procs <= 0 {
		c.Procs = 1
	}
	if c.Procs > MaxProcs {
		return c, fmt.Errorf("--procs must be at most %d", MaxProcs)
	}
	if c.Sample <= 0 {
		c.Sample = 500 * time.Millisecond
	}
	if len(c.CPUProcs) > MaxCPUProcs {
		return c, fmt.Errorf("--cpu-pid: at most %d processes", MaxCPUProcs)
	}
	for _, p := range c.CPUProcs {
		if p.PID <= 0 {
			return c, fmt.Errorf("--cpu-pid %q: bad PID %d", p.Label, p.PID)
		}
	}
	if _, err := ParseTarget(c.URL, c.AllowRemote); err != nil {
		return c, err
	}
	for _, s := range c.SourceIPs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return c, err
		}
		if !c.AllowRemote && !a.IsLoopback() {
			return c, fmt.Errorf("source ip %s: %w", s, ErrNotLoopback)
		}
	}
	if c.WorkerCount == 0 {
		c.WorkerCount = 1
	}
	return c, nil
}

// share is worker i's part of a total split over n workers.
func share(total, i, n int) int {
	s := total / n
	if i < total%n {
		s++
	}
	return s
}

// MaxNodes bounds the URLs a broadcast spreads its subscribers over
// (a connection keeps its target's index in a byte).
const MaxNodes = 16

// broadcastDefaults fills and checks the broadcast mode fields.
func (c *Config) broadcastDefaults() error {
	if c.Scenario != ScenarioBroadcast {
		sse := c.Mode == ModeSSE && c.Scenario == ScenarioIdle
		if (c.Mode != "" && !sse) || c.Channel != "" || c.Publish != "" || c.APIKey != "" || c.APIURL != "" ||
			len(c.Nodes) > 0 || c.PublishURL != "" || c.Binary {
			return errors.New("--mode (but idle's --mode sse), --channel, --publish, --publish-url, --api-key, --api-url and several --url are for broadcast only")
		}
		if sse {
			c.PingSample, c.Deflate = -1, false // a stream's client cannot ping
		}
		return nil
	}
	if err := c.nodeDefaults(); err != nil {
		return err
	}
	if c.Mode == "" {
		c.Mode = ModeRaw
	}
	if c.Binary && (c.Mode != ModeWS || c.Publish == PublishHTTP) {
		return errors.New("--binary needs --mode ws and --publish ws")
	}
	switch c.Mode {
	case ModeRaw:
		if c.Channel != "" || c.Publish != "" || c.APIKey != "" || c.APIURL != "" {
			return errors.New("--channel, --publish, --api-key and --api-url need --mode ws")
		}
		if c.Size < bcastHeader {
			c.Size = bcastHeader
		}
		return nil
	case ModeWS:
	default:
		return fmt.Errorf("unknown --mode %q (raw, ws)", c.Mode)
	}
	if c.Channel == "" {
		c.Channel = DefaultChannel
	}
	if err := checkChannel(c.Channel); err != nil {
		return err
	}
	if c.Publish == "" {
		c.Publish = PublishWS
	}
	c.Text = true // the protocol is JSON in text frames
	if c.Size < wsDataMin {
		c.Size = wsDataMin
	}
	switch c.Publish {
	case PublishWS:
		if c.APIKey != "" || c.APIURL != "" {
			return errors.New("--api-key and --api-url need --publish http")
		}
	case PublishHTTP:
		if c.APIKey == "" {
			return errors.New("--publish http needs --api-key (the key wsd was started with)")
		}
		if c.Rate > MaxHTTPPublishRate {
			return fmt.Errorf("--publish http: --rate is at most %d publishes/s", MaxHTTPPublishRate)
		}
		if c.APIURL == "" {
			t, err := ParseTarget(c.PublishURL, c.AllowRemote)
			if err != nil {
				return err
			}
			c.APIURL = "http://" + t.Host + "/api/publish"
		}
		if err := checkAPIURL(c.APIURL, c.AllowRemote); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown --publish %q (ws, http)", c.Publish)
	}
	return nil
}

// subscribeDefaults fills and checks the idle scenario's subscriptions.
func (c *Config) subscribeDefaults() error {
	if c.Subscribe == "" {
		if c.SubChannels != 0 {
			return errors.New("--channels needs --subscribe")
		}
		return nil
	}
	if c.Scenario != ScenarioIdle {
		return errors.New("--subscribe is for idle only")
	}
	if c.SubChannels == 0 {
		c.SubChannels = c.Conns
	}
	return checkChannelPattern(c.Subscribe, c.SubChannels)
}

// checkChannel applies docs/protocol.md's channel rules: 1–255 bytes of
// printable ASCII without space or " \ * ? [ ] { }.
func checkChannel(ch string) error {
	if len(ch) == 0 || len(ch) > 255 {
		return fmt.Errorf("--channel %q: want 1 to 255 bytes", ch)
	}
	for i := 0; i < len(ch); i++ {
		c := ch[i]
		if c <= ' ' || c > '~' || strings.IndexByte(`"\*?[]{}`, c) >= 0 {
			return fmt.Errorf("--channel %q: byte %q is not allowed in a channel name", ch, c)
		}
	}
	return nil
}

// checkAPIURL checks an http:// API URL against the loopback rule.
func checkAPIURL(raw string, allowRemote bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("--api-url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("--api-url %q: scheme must be http:// or https://", raw)
	}
	if _, err := resolveHost(u.Hostname(), allowRemote); err != nil {
		return fmt.Errorf("--api-url: %w", err)
	}
	return nil
}

// nodeDefaults checks the broadcast's further nodes and fills PublishURL.
func (c *Config) nodeDefaults() error {
	if 1+len(c.Nodes) > MaxNodes {
		return fmt.Errorf("--url: at most %d URLs", MaxNodes)
	}
	seen := map[string]bool{c.URL: true}
	for _, u := range c.Nodes {
		if _, err := ParseTarget(u, c.AllowRemote); err != nil {
			return fmt.Errorf("--url %q: %w", u, err)
		}
		if seen[u] {
			return fmt.Errorf("--url %q given twice", u)
		}
		seen[u] = true
	}
	if c.PublishURL == "" {
		c.PublishURL = c.URL
	}
	if _, err := ParseTarget(c.PublishURL, c.AllowRemote); err != nil {
		return fmt.Errorf("--publish-url: %w", err)
	}
	return nil
}

// URLs are the run's targets: URL, then Fallback (storm) or Nodes
// (broadcast), then PublishURL when it is none of those.
func (c *Config) URLs() []string {
	us := append([]string{c.URL}, c.Fallback...)
	us = append(us, c.Nodes...)
	if c.PublishURL != "" && c.pubTarget(us) == len(us) {
		us = append(us, c.PublishURL)
	}
	return us
}

// SubscriberURLs are the URLs a broadcast's subscribers are spread over.
func (c *Config) SubscriberURLs() []string { return append([]string{c.URL}, c.Nodes...) }

// pubTarget is the index of PublishURL in us (len(us) if absent; 0 when
// PublishURL is unset).
func (c *Config) pubTarget(us []string) int {
	if c.PublishURL == "" {
		return 0
	}
	for i, u := range us {
		if u == c.PublishURL {
			return i
		}
	}
	return len(us)
}

// stormDefaults fills and checks the storm fields; other scenarios must
// leave them unset.
func (c *Config) stormDefaults() error {
	if c.Scenario != ScenarioStorm {
		if len(c.Fallback) > 0 || c.IgnoreHints || c.BackoffMin != 0 || c.BackoffMax != 0 || c.MaxAttempts != 0 ||
			c.KillPID != 0 || c.KillSignal != "" || c.KillAfter != 0 {
			return errors.New("--fallback, --honor-hints, --backoff-*, --max-attempts and --kill-* are for storm only")
		}
		return nil
	}
	if c.Duration == 0 {
		c.Duration = DefaultStormDuration
	}
	if c.Warmup == 0 {
		c.Warmup = -1 // no warm-up: the storm starts once every client is up
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = DefaultBackoffMin
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	if c.BackoffMin < 0 || c.BackoffMax < c.BackoffMin || c.BackoffMax > MaxRunTime {
		return errors.New("--backoff-min and --backoff-max: want 0 < min ≤ max ≤ 1h")
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultStormAttempts
	}
	if c.MaxAttempts < 0 || c.MaxAttempts > maxStormAttemptsPerRun {
		return fmt.Errorf("--max-attempts must be 1..%d", maxStormAttemptsPerRun)
	}
	if len(c.Fallback) > 16 {
		return errors.New("--fallback: at most 16 URLs")
	}
	for _, u := range c.Fallback {
		if _, err := ParseTarget(u, c.AllowRemote); err != nil {
			return fmt.Errorf("--fallback %q: %w", u, err)
		}
	}
	if c.KillPID != 0 {
		if c.KillSignal == "" {
			c.KillSignal = "TERM"
		}
		if _, err := killSignal(c.KillSignal); err != nil {
			return err
		}
		if c.KillAfter == 0 {
			c.KillAfter = DefaultStormKillAfter
		}
	} else if c.KillSignal != "" || c.KillAfter != 0 {
		return errors.New("--signal and --kill-after need --kill-pid")
	}
	if c.KillAfter < 0 || c.KillAfter > MaxRunTime {
		return errors.New("--kill-after must be 0..1h")
	}
	return nil
}
