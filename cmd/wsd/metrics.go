package main

import (
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/wsproto"
)

// engineCollector reads the server's counters at scrape time, so metrics
// cost nothing per message.
type engineCollector struct {
	stats func() server.Stats

	conns, accepted, upgraded, rejected *prometheus.Desc
	msgsIn, msgsOut, bytesIn, bytesOut  *prometheus.Desc
	slow, closes, queueDepth, pending   *prometheus.Desc
	memory, memoryLimit, offloaded      *prometheus.Desc
}

func newEngineCollector(stats func() server.Stats) *engineCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("wsd_"+name, help, labels, nil)
	}
	return &engineCollector{stats: stats,
		conns:      d("connections", "Open connections (TCP accepted and not closed)."),
		accepted:   d("tcp_accepted_total", "TCP connections accepted."),
		upgraded:   d("handshakes_total", "Upgrade requests by result.", "result"),
		rejected:   d("http_rejections_total", "Requests answered with an HTTP error instead of 101."),
		msgsIn:     d("messages_received_total", "Complete messages received."),
		msgsOut:    d("messages_sent_total", "Messages queued for sending (a broadcast counts once per receiver)."),
		bytesIn:    d("received_bytes_total", "Message payload bytes received (after inflating)."),
		bytesOut:   d("sent_bytes_total", "Frame bytes queued for sending."),
		slow:       d("slow_consumers_total", "Times a connection's outbound queue was over its cap."),
		closes:     d("closes_total", "Closed connections by cause.", "cause"),
		queueDepth: d("worker_queue_depth", "Connections waiting for a handler worker."),
		memory: d("memory_accounted_bytes", "Bytes counted against --max-memory: incomplete inbound messages, outbound queues (sampled each second), history.",
			"kind"),
		offloaded:   d("messages_offloaded_total", "Compressed messages over 64 KiB inflated and validated by a worker instead of the event loop."),
		memoryLimit: d("memory_budget_bytes", "--max-memory (0: no budget). Above 90% of it upgrades get 503 (closes_total{cause=\"memory_refused\"}) and the largest inbound holders are closed with 1009 (cause=\"memory_shed\")."),
		pending:     d("pending_handshakes", "Connections accepted whose upgrade request is not complete yet."),
	}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.accepted, c.upgraded, c.rejected, c.msgsIn, c.msgsOut,
		c.bytesIn, c.bytesOut, c.slow, c.closes, c.queueDepth, c.memory, c.memoryLimit, c.offloaded, c.pending} {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	g := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	n := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	g(c.conns, float64(s.Conns))
	n(c.accepted, s.Accepted)
	n(c.upgraded, s.Upgraded, "upgraded")
	n(c.upgraded, s.Rejected, "rejected")
	n(c.upgraded, s.Closes["over_capacity"], "over_capacity")
	n(c.upgraded, s.Closes["accept_rate"], "accept_rate")
	n(c.upgraded, s.Closes["memory_refused"], "memory_refused")
	n(c.upgraded, s.Closes["handshake_cap"], "handshake_cap")
	n(c.rejected, s.Rejected)
	n(c.msgsIn, s.MessagesIn)
	n(c.msgsOut, s.MessagesOut)
	n(c.bytesIn, s.BytesIn)
	n(c.bytesOut, s.BytesOut)
	n(c.slow, s.SlowConsumers)
	causes := make([]string, 0, len(s.Closes))
	for cause := range s.Closes {
		causes = append(causes, cause)
	}
	slices.Sort(causes)
	for _, cause := range causes {
		n(c.closes, s.Closes[cause], cause)
	}
	g(c.queueDepth, float64(s.QueueDepth))
	g(c.memory, float64(s.Memory.Inbound), "inbound")
	g(c.memory, float64(s.Memory.Outbound), "outbound")
	g(c.memory, float64(s.Memory.Extra), "history")
	g(c.memoryLimit, float64(s.Memory.Limit))
	n(c.offloaded, s.Offloaded)
	g(c.pending, float64(s.Pending))
}

// metricsHandler exposes the engine, pub/sub, /ws and API counters plus
// the Go runtime's, all read at scrape time. broker is nil unless the
// memory broker is in use.
func metricsHandler(srv *server.Server[wsproto.Session], hub *wsproto.Hub, broker *pubsub.Memory,
	wsh *wsproto.Handler, sse *wsproto.SSE, api *wsproto.API) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(newEngineCollector(srv.Stats), newProxyCollector(wsh.ProxyStats))
	counter := func(name, help string, f func() uint64) {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "wsd_" + name, Help: help},
			func() float64 { return float64(f()) }))
	}
	gauge := func(name, help string, f func() float64) {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "wsd_" + name, Help: help}, f))
	}
	counter("publications_total", "Publications accepted (over /ws and the HTTP API).", func() uint64 { return hub.Stats().Published })
	counter("fanout_deliveries_total", "Publication frames handed to subscribers (live and replayed).", func() uint64 { return hub.Stats().Deliveries })
	counter("fanout_encodes_total", "Publication frames encoded (one per fan-out, one per replay).", func() uint64 { return hub.Stats().Encodes })
	counter("recoveries_total", "Subscriptions with 'since' that got every missed publication.", func() uint64 { return hub.Stats().Recovered })
	counter("recoveries_failed_total", "Subscriptions with 'since' answered recovered:false.", func() uint64 { return hub.Stats().NotRecovered })
	counter("join_leave_pushes_total", "Join and leave events pushed to this node's subscribers (each encoded once).", func() uint64 { return hub.Stats().JoinLeaves })
	counter("join_leave_capped_total", "Join and leave events not pushed: the channel was over its namespace's join_leave_max.", func() uint64 { return hub.Stats().JoinLeaveCap })
	gauge("subscriptions", "Current channel subscriptions.", func() float64 { return float64(hub.Stats().Subscriptions) })
	gauge("channels", "Channels with subscribers.", func() float64 { return float64(hub.Stats().Channels) })
	if broker != nil { // the memory broker; JetStream has its own monitoring
		gauge("history_entries", "Publications kept for recovery, all channels.", func() float64 { return float64(broker.Stats().HistoryEntries) })
		gauge("history_bytes", "Data bytes of the publications kept for recovery.", func() float64 { return float64(broker.Stats().HistoryBytes) })
	}
	counter("ws_requests_total", "/ws requests handled.", func() uint64 { return wsh.Stats().Requests })
	counter("ws_rate_limited_total", "/ws connections closed for their message rate.", func() uint64 { return wsh.Stats().RateLimited })
	counter("ws_auth_rejected_total", "/ws upgrades refused for the token.", func() uint64 { return wsh.Stats().AuthRejected })
	counter("ws_token_refreshes_total", "/ws refresh ops that brought a valid token.", func() uint64 { return wsh.Stats().Refreshes })
	counter("ws_token_expired_total", "/ws connections closed with 3000 for an expired token.", func() uint64 { return wsh.Stats().TokenExpired })
	gauge("sse_streams", "Open /sse streams.", func() float64 { return float64(sse.Stats().Open) })
	counter("sse_streams_total", "/sse streams started.", func() uint64 { return sse.Stats().Opened })
	counter("sse_refused_total", "/sse requests refused (400, 401, 403).", func() uint64 { return sse.Stats().Refused })
	counter("sse_recoveries_total", "/sse channels resumed from Last-Event-ID with every missed publication.", func() uint64 { return sse.Stats().Recovered })
	counter("sse_resets_total", "/sse reset events: a channel that could not be resumed from Last-Event-ID.", func() uint64 { return sse.Stats().Resets })
	counter("api_requests_total", "HTTP API requests.", func() uint64 { return api.Stats().Requests })
	counter("api_rejected_total", "HTTP API requests refused for the API key.", func() uint64 { return api.Stats().Rejected })
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}
