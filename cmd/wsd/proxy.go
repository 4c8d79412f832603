package main

import (
	"flag"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wsdhq/wsd/wsproto"
)

// proxyFlags are the backend proxies' settings (wsproto.ProxyConfig).
type proxyFlags struct {
	connectURL, connectHeaders       string
	rpcURL, publishURL, subscribeURL string
	publishNS, subscribeNS           string
	cfg                              wsproto.ProxyConfig
}

func (p *proxyFlags) flags(fs *flag.FlagSet) {
	fs.StringVar(&p.connectURL, "connect-proxy-url", "", "backend `URL` asked after each /ws upgrade with its cookies and headers (may set the user ID and channels, or refuse with a 4xxx close)")
	fs.StringVar(&p.connectHeaders, "connect-proxy-headers", "", "comma-separated upgrade headers passed to the connect proxy (empty = "+strings.Join(wsproto.DefaultConnectHeaders, ",")+")")
	fs.StringVar(&p.rpcURL, "rpc-proxy-url", "", "backend `URL` the /ws rpc op is POSTed to (unset: rpc is an unknown_op)")
	fs.StringVar(&p.publishURL, "publish-proxy-url", "", "backend `URL` asked before a client's publication (may refuse or replace the data)")
	fs.StringVar(&p.subscribeURL, "subscribe-proxy-url", "", "backend `URL` asked before a client's subscription (may refuse it)")
	fs.StringVar(&p.publishNS, "publish-proxy-namespaces", "", "comma-separated namespaces the publish proxy covers ('default' = channels without ':'; empty = all)")
	fs.StringVar(&p.subscribeNS, "subscribe-proxy-namespaces", "", "comma-separated namespaces the subscribe proxy covers ('default' = channels without ':'; empty = all)")
	fs.DurationVar(&p.cfg.Timeout, "proxy-timeout", wsproto.DefaultProxyTimeout, "a backend call's limit; past it the client gets backend_unavailable")
	fs.IntVar(&p.cfg.MaxInFlight, "proxy-max-in-flight", wsproto.DefaultProxyMaxInFlight, "backend calls waiting at once on this node; past it requests get backend_unavailable at once")
	fs.IntVar(&p.cfg.MaxConnsPerHost, "proxy-max-conns-per-host", wsproto.DefaultProxyMaxConns, "keep-alive connections to one backend host")
}

func (p *proxyFlags) config() wsproto.ProxyConfig {
	c := p.cfg
	c.ConnectURL, c.ConnectHeaders = p.connectURL, splitList(p.connectHeaders)
	c.RPCURL, c.PublishURL, c.SubscribeURL = p.rpcURL, p.publishURL, p.subscribeURL
	c.PublishNamespaces, c.SubscribeNamespaces = splitList(p.publishNS), splitList(p.subscribeNS)
	return c
}

// proxyCollector exposes each proxy's counters and latency histogram,
// read at scrape time.
type proxyCollector struct {
	stats                      func() []wsproto.ProxyStats
	calls, errs, busy, latency *prometheus.Desc
}

func newProxyCollector(stats func() []wsproto.ProxyStats) *proxyCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("wsd_proxy_"+name, help, []string{"proxy"}, nil)
	}
	return &proxyCollector{stats: stats,
		calls:   d("calls_total", "Backend calls asked for, by proxy (connect, rpc, publish, subscribe)."),
		errs:    d("errors_total", "Backend calls answered backend_unavailable (failed, timed out, or refused for the in-flight bound)."),
		busy:    d("refused_total", "Backend calls not made: the node had proxy_max_in_flight calls waiting."),
		latency: d("latency_seconds", "Backend call duration, answered or failed."),
	}
}

func (c *proxyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.calls
	ch <- c.errs
	ch <- c.busy
	ch <- c.latency
}

func (c *proxyCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.stats() {
		ch <- prometheus.MustNewConstMetric(c.calls, prometheus.CounterValue, float64(s.Calls), s.Name)
		ch <- prometheus.MustNewConstMetric(c.errs, prometheus.CounterValue, float64(s.Errors), s.Name)
		ch <- prometheus.MustNewConstMetric(c.busy, prometheus.CounterValue, float64(s.Refused), s.Name)
		buckets := make(map[float64]uint64, len(s.Bounds))
		for i, b := range s.Bounds {
			buckets[b] = s.Buckets[i]
		}
		ch <- prometheus.MustNewConstHistogram(c.latency, s.Count, s.Sum, buckets, s.Name)
	}
}
