package wsproto

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// ProxyConfig sends some /ws operations to the application's backend as
// HTTP POSTs with a JSON body (docs/protocol.md, "Proxies to the
// backend"). An empty URL turns that proxy off.
type ProxyConfig struct {
	// ConnectURL is asked right after each /ws upgrade, with the
	// upgrade's cookies and ConnectHeaders; it may set the client ID and
	// its channels, or refuse the connection (closed with a 4xxx code).
	// The connection's requests wait for the answer.
	ConnectURL string
	// ConnectHeaders are the upgrade headers passed to the connect proxy;
	// empty: DefaultConnectHeaders.
	ConnectHeaders []string
	// RPCURL receives the "rpc" op; without it rpc is an unknown_op.
	RPCURL string
	// PublishURL is asked before a client's publication is made: it may
	// refuse it or replace its data.
	PublishURL string
	// SubscribeURL is asked before a client's subscription is made: it
	// may refuse it.
	SubscribeURL string
	// PublishNamespaces and SubscribeNamespaces restrict those proxies to
	// the channels of the namespaces named ("default" is the namespace of
	// channels without ':'); empty: every namespace.
	PublishNamespaces   []string
	SubscribeNamespaces []string
	// Timeout bounds each call, connecting included; default 2 s. Past it
	// the client gets a backend_unavailable error reply.
	Timeout time.Duration
	// MaxInFlight bounds the calls waiting for the backend on this node,
	// all proxies together; default 512. A request past it is answered
	// backend_unavailable at once: a slow backend holds at most this many
	// goroutines and sockets, never the handler's workers.
	MaxInFlight int
	// MaxConnsPerHost bounds the keep-alive connections to one backend
	// host; default 64.
	MaxConnsPerHost int
}

// Proxy defaults.
const (
	DefaultProxyTimeout     = 2 * time.Second
	DefaultProxyMaxInFlight = 512
	DefaultProxyMaxConns    = 64
)

// CodeBackendUnavailable is the error code of a request whose backend
// call failed: refused, timed out, a non-2xx status or an unreadable
// answer, or too many calls in flight on the node.
const CodeBackendUnavailable = "backend_unavailable"

func (p *ProxyConfig) setDefaults() {
	if p.Timeout <= 0 {
		p.Timeout = DefaultProxyTimeout
	}
	if p.MaxInFlight <= 0 {
		p.MaxInFlight = DefaultProxyMaxInFlight
	}
	if p.MaxConnsPerHost <= 0 {
		p.MaxConnsPerHost = DefaultProxyMaxConns
	}
}

func (p ProxyConfig) validate() error {
	for _, u := range []struct{ key, v string }{{"rpc_proxy_url", p.RPCURL}, {"publish_proxy_url", p.PublishURL}, {"subscribe_proxy_url", p.SubscribeURL}, {"connect_proxy_url", p.ConnectURL}} {
		if u.v == "" {
			continue
		}
		pu, err := url.Parse(u.v)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("%s %q: want an http:// or https:// URL", u.key, u.v)
		}
	}
	switch {
	case p.Timeout < 0:
		return fmt.Errorf("proxy_timeout %v is negative", p.Timeout)
	case p.MaxInFlight < 0:
		return fmt.Errorf("proxy_max_in_flight %d is negative", p.MaxInFlight)
	case p.MaxConnsPerHost < 0:
		return fmt.Errorf("proxy_max_conns_per_host %d is negative", p.MaxConnsPerHost)
	}
	return nil
}

// proxyLatencyBounds are the upper bounds (seconds) of the latency
// histogram's buckets.
var proxyLatencyBounds = [...]float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}

// ProxyStats are one proxy's counters since New.
type ProxyStats struct {
	Name    string // "connect", "rpc", "publish", "subscribe"
	Calls   uint64 // calls made (refusals by the in-flight bound included)
	Errors  uint64 // calls answered backend_unavailable
	Refused uint64 // of Errors: not made, the node had MaxInFlight calls waiting
	// Buckets[i] counts the calls (made, answered or failed) that took at
	// most Bounds[i] seconds, cumulatively; Count and Sum cover them all.
	Bounds  []float64
	Buckets []uint64
	Count   uint64
	Sum     float64 // seconds
}

// proxy is one backend endpoint. Its methods are safe from any goroutine.
type proxy struct {
	name, url  string
	namespaces map[string]bool // nil: all
	client     *http.Client
	timeout    time.Duration
	inFlight   *atomic.Int64 // shared by the node's proxies
	maxFlight  int64
	maxBody    int64

	calls, errs, refused, count, sumMicros atomic.Uint64
	buckets                                [len(proxyLatencyBounds)]atomic.Uint64
}

// proxies are the handler's backend endpoints; a nil field is off.
type proxies struct {
	connect, rpc, publish, subscribe *proxy
	connectHeaders                   []string
	transport                        *http.Transport
}

func newProxies(cfg ProxyConfig, maxBody int) *proxies {
	if cfg.RPCURL == "" && cfg.PublishURL == "" && cfg.SubscribeURL == "" && cfg.ConnectURL == "" {
		return &proxies{}
	}
	cfg.setDefaults()
	tr := &http.Transport{
		Proxy:               nil, // the backend is the application's own: no HTTP_PROXY detour
		MaxConnsPerHost:     cfg.MaxConnsPerHost,
		MaxIdleConnsPerHost: cfg.MaxConnsPerHost,
		MaxIdleConns:        4 * cfg.MaxConnsPerHost,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	ps := &proxies{transport: tr}
	inFlight := new(atomic.Int64)
	mk := func(name, u string, ns []string) *proxy {
		if u == "" {
			return nil
		}
		p := &proxy{name: name, url: u, client: &http.Client{Transport: tr}, timeout: cfg.Timeout,
			inFlight: inFlight, maxFlight: int64(cfg.MaxInFlight), maxBody: int64(4*maxBody + maxEnvelope)}
		if len(ns) > 0 {
			p.namespaces = map[string]bool{}
			for _, n := range ns {
				if n == "default" {
					n = ""
				}
				p.namespaces[n] = true
			}
		}
		return p
	}
	ps.connect = mk("connect", cfg.ConnectURL, nil)
	ps.connectHeaders = cfg.ConnectHeaders
	if len(ps.connectHeaders) == 0 {
		ps.connectHeaders = DefaultConnectHeaders
	}
	ps.rpc = mk("rpc", cfg.RPCURL, nil)
	ps.publish = mk("publish", cfg.PublishURL, cfg.PublishNamespaces)
	ps.subscribe = mk("subscribe", cfg.SubscribeURL, cfg.SubscribeNamespaces)
	return ps
}

// covers reports whether p is on for namespace ns.
func (p *proxy) covers(ns string) bool { return p != nil && (p.namespaces == nil || p.namespaces[ns]) }

// errBusy is the answer past MaxInFlight.
var errBusy = &Error{CodeBackendUnavailable, "too many backend calls in flight"}

// acquire takes an in-flight slot, or counts a refusal and returns false.
// Called on the handler's goroutine before spawning the call, so a slow
// backend never piles up goroutines.
func (p *proxy) acquire() bool {
	p.calls.Add(1)
	if p.inFlight.Add(1) > p.maxFlight {
		p.inFlight.Add(-1)
		p.errs.Add(1)
		p.refused.Add(1)
		return false
	}
	return true
}

func (p *proxy) release() { p.inFlight.Add(-1) }

// proxyAnswer is a backend's answer: a result, or an error that the
// client sees as the reply's error.
type proxyAnswer struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
	// CloseCode is the close code of a connect refusal (4000–4999).
	CloseCode int `json:"close_code,omitempty"`
}

// call posts body and decodes the answer. The returned *Error is
// backend_unavailable for every failure of the call itself; a backend's
// own error comes back in the answer. Safe from any goroutine.
func (p *proxy) call(body any) (proxyAnswer, *Error) {
	start := time.Now()
	ans, err := p.do(body)
	p.observe(time.Since(start))
	if err != nil {
		p.errs.Add(1)
		return proxyAnswer{}, &Error{CodeBackendUnavailable, p.name + " backend: " + err.Error()}
	}
	return ans, nil
}

func (p *proxy) do(body any) (proxyAnswer, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return proxyAnswer{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(b))
	if err != nil {
		return proxyAnswer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return proxyAnswer{}, fmt.Errorf("no answer within %v", p.timeout)
		}
		return proxyAnswer{}, errors.New("unreachable")
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, p.maxBody+1))
	if err != nil {
		return proxyAnswer{}, fmt.Errorf("reading the answer: %v", err)
	}
	if resp.StatusCode/100 != 2 {
		return proxyAnswer{}, fmt.Errorf("status %d", resp.StatusCode)
	}
	if int64(len(raw)) > p.maxBody {
		return proxyAnswer{}, fmt.Errorf("answer over %d bytes", p.maxBody)
	}
	var ans proxyAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return proxyAnswer{}, errors.New("answer is not a JSON object")
	}
	if ans.Error != nil && strings.TrimSpace(ans.Error.Code) == "" {
		ans.Error.Code = "backend_error"
	}
	return ans, nil
}

func (p *proxy) observe(d time.Duration) {
	s := d.Seconds()
	for i, b := range proxyLatencyBounds {
		if s <= b {
			p.buckets[i].Add(1)
		}
	}
	p.count.Add(1)
	p.sumMicros.Add(uint64(d.Microseconds()))
}

func (p *proxy) stats() ProxyStats {
	st := ProxyStats{Name: p.name, Calls: p.calls.Load(), Errors: p.errs.Load(), Refused: p.refused.Load(),
		Bounds: slices.Clone(proxyLatencyBounds[:]), Buckets: make([]uint64, len(proxyLatencyBounds)),
		Count: p.count.Load(), Sum: float64(p.sumMicros.Load()) / 1e6}
	for i := range p.buckets {
		st.Buckets[i] = p.buckets[i].Load()
	}
	return st
}

// ProxyStats returns the counters of the proxies configured, in the order
// connect, rpc, publish, subscribe. Safe from any goroutine.
func (h *Handler) ProxyStats() []ProxyStats {
	var out []ProxyStats
	for _, p := range []*proxy{h.px.connect, h.px.rpc, h.px.publish, h.px.subscribe} {
		if p != nil {
			out = append(out, p.stats())
		}
	}
	return out
}

// CloseProxies closes the idle keep-alive connections to the backends.
// Calls still in flight finish. Safe from any goroutine.
func (h *Handler) CloseProxies() {
	if h.px.transport != nil {
		h.px.transport.CloseIdleConnections()
	}
}

// ConnInfo tells the backend who is calling.
type ConnInfo struct {
	Client     string `json:"client"`      // the connection's ID on this node ("<node>-<n>" with a node ID)
	User       string `json:"user"`        // the client ID (token sub, or anon-...)
	RemoteAddr string `json:"remote_addr"` // the client's IP:port; behind a trusted proxy the forwarded client, port 0
}
