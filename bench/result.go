package bench

import (
	"encoding/json"
	"io"
	"os"
	"time"
)

// Percentiles summarise a latency histogram in milliseconds.
type Percentiles struct {
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
	Count uint64  `json:"count"`
}

// PercentilesOf reads the percentiles of a histogram of nanoseconds.
func PercentilesOf(h *Hist) Percentiles {
	if h == nil {
		return Percentiles{}
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	return Percentiles{
		P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)),
		P999: ms(h.Quantile(0.999)), Max: ms(h.Max()), Mean: h.Mean() / 1e6, Count: h.Count(),
	}
}

// Sample is one point of a run's timeline.
type Sample struct {
	T                float64 `json:"t"` // seconds since the run started
	Phase            string  `json:"phase"`
	Open             int64   `json:"open"`
	Up               int64   `json:"up"`
	MsgsPerSec       float64 `json:"msgs_per_sec"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	Errors           uint64  `json:"errors"`
	RSS              int64   `json:"rss_bytes,omitempty"`
	Hit              int64   `json:"hit,omitempty"`     // storm: clients closed so far
	Waiting          int64   `json:"waiting,omitempty"` // storm: hit clients not up again
}

// Result is the outcome of one run, merged over its worker processes. Its
// JSON form is wsbench's --json output.
type Result struct {
	Scenario string    `json:"scenario"`
	Label    string    `json:"label,omitempty"`
	Step     string    `json:"step,omitempty"` // suite step name
	URL      string    `json:"url"`
	Started  time.Time `json:"started"`

	Conns       int     `json:"conns"`    // asked for
	ConnsUp     int64   `json:"conns_up"` // upgraded
	Subscribers int64   `json:"subscribers,omitempty"`
	Procs       int     `json:"procs"`
	Size        int     `json:"size"`
	Text        bool    `json:"text"`
	Deflate     bool    `json:"deflate"`
	Rate        float64 `json:"rate"` // echo: per conn; broadcast: publishes/s; 0 = closed loop
	Pipeline    int     `json:"pipeline"`
	ConnectRate float64 `json:"connect_rate"`
	Mode        string  `json:"mode,omitempty"`        // broadcast: raw or ws
	Channel     string  `json:"channel,omitempty"`     // broadcast, ws mode
	PublishVia  string  `json:"publish,omitempty"`     // broadcast, ws mode: ws or http
	Binary      bool    `json:"binary,omitempty"`      // broadcast, ws mode: binary publications
	PublishURL  string  `json:"publish_url,omitempty"` // broadcast: where the publisher connects (or whose API it posts to)

	DurationS        float64 `json:"duration_s"` // the measured window
	ConnectS         float64 `json:"connect_s"`  // time to open every connection
	MsgsPerSec       float64 `json:"msgs_per_sec"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
	BytesPerSec      float64 `json:"bytes_per_sec"` // payload bytes received
	UpgradesPerSec   float64 `json:"upgrades_per_sec"`

	LatencyMs Percentiles `json:"latency_ms"` // echo: round trip; broadcast: publish→receive; idle: ping→pong; connect: upgrade; storm: reconnect (TCP connect + upgrade)
	UpgradeMs Percentiles `json:"upgrade_ms"`

	Errors       uint64            `json:"errors"` // every reason below, lost and duplicated included
	ErrorReasons map[string]uint64 `json:"error_reasons"`
	Lost         uint64            `json:"lost"`
	Duplicated   uint64            `json:"duplicated"`
	Mismatched   uint64            `json:"mismatched"`
	Published    uint64            `json:"published,omitempty"`
	PubErrors    uint64            `json:"pub_errors,omitempty"` // publishes the server refused (ws mode)

	ServerPID             int      `json:"server_pid,omitempty"`
	ServerRSSBefore       int64    `json:"server_rss_before_bytes,omitempty"`
	ServerRSSAfter        int64    `json:"server_rss_after_bytes,omitempty"`
	ServerRSSBytesPerConn *float64 `json:"server_rss_bytes_per_conn"` // null when not sampled
	// idle: the kernel's socket memory (sockstat, slabinfo) per connection.
	Kernel *KernelResult `json:"kernel,omitempty"`
	// --server-pid: the server's CPU time (user + system, /proc/PID/stat)
	// over the measured window only (not the warm-up), in seconds and
	// cores, and per unit of work: µs per delivery (broadcast) or per
	// echoed message (echo). Absent without --server-pid or without work.
	ServerCPUSeconds       *float64 `json:"server_cpu_s,omitempty"`
	ServerCPUCores         *float64 `json:"server_cpu_cores,omitempty"`
	ServerCPUUSPerDelivery *float64 `json:"server_cpu_us_per_delivery,omitempty"`
	ServerCPUUSPerMsg      *float64 `json:"server_cpu_us_per_msg,omitempty"`
	ServerCPUUSPerUpgrade  *float64 `json:"server_cpu_us_per_upgrade,omitempty"`

	// Broadcast over several URLs (--url A,B): each node's share.
	Nodes []NodeResult `json:"nodes,omitempty"`
	// --cpu-pid: each process's CPU time over the measured window.
	ServerCPU []ProcCPU `json:"server_cpu,omitempty"`

	Storm *StormResult `json:"storm,omitempty"` // storm only

	Totals   Counters `json:"totals"`
	Timeline []Sample `json:"timeline"`
	Latency  *Hist    `json:"latency_hist"`
	Upgrade  *Hist    `json:"upgrade_hist"`
}

// NodeResult is what the subscribers on one URL of a broadcast got.
type NodeResult struct {
	URL              string      `json:"url"`
	Subscribers      int64       `json:"subscribers"` // open (ws mode: subscribed) when traffic began
	DeliveriesPerSec float64     `json:"deliveries_per_sec"`
	LatencyMs        Percentiles `json:"latency_ms"` // publish→receive
	Latency          *Hist       `json:"latency_hist"`
}

// nodePart is one worker's share of a NodeResult.
type nodePart struct {
	Subscribers int64 `json:"subscribers"`
	Latency     *Hist `json:"latency"`
}

// WriteJSON writes r as indented JSON to path ("-" for stdout).
func WriteJSON(path string, v any) error {
	var w io.Writer = os.Stdout
	if path != "-" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ReadResults reads a JSON file holding one Result or a list of them.
func ReadResults(path string) ([]*Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var many []*Result
	if err := json.Unmarshal(b, &many); err == nil {
		return many, nil
	}
	var one Result
	if err := json.Unmarshal(b, &one); err != nil {
		return nil, err
	}
	return []*Result{&one}, nil
}

// workerResult is what one worker reports at the end of a run.
type workerResult struct {
	Index        int               `json:"index"`
	Total        Counters          `json:"total"`
	Window       Counters          `json:"window"`
	WindowNs     int64             `json:"window_ns"`
	OpenAtStop   int64             `json:"open_at_stop"`
	Subscribers  int64             `json:"subscribers"`
	ConnectNs    int64             `json:"connect_ns"`
	Latency      *Hist             `json:"latency"`
	Upgrade      *Hist             `json:"upgrade"`
	Reasons      map[string]uint64 `json:"reasons"`
	FirstStartNs int64             `json:"first_start_ns"`
	LastUpNs     int64             `json:"last_up_ns"`
	Storm        *stormPart        `json:"storm,omitempty"`
	Nodes        []nodePart        `json:"nodes,omitempty"` // broadcast over several URLs
}

// merge folds the workers' results into r.
func (r *Result) merge(ws []*workerResult) {
	r.Latency, r.Upgrade = NewHist(), NewHist()
	r.ErrorReasons = map[string]uint64{}
	var win Counters
	var windowNs, connectNs, first, last int64
	for _, w := range ws {
		r.Totals.Add(w.Total)
		win.Add(w.Window)
		windowNs += w.WindowNs
		connectNs = max(connectNs, w.ConnectNs)
		r.Latency.Merge(w.Latency)
		r.Upgrade.Merge(w.Upgrade)
		for k, v := range w.Reasons {
			r.ErrorReasons[k] += v
		}
		r.Subscribers += w.Subscribers
		if w.FirstStartNs != 0 && (first == 0 || w.FirstStartNs < first) {
			first = w.FirstStartNs
		}
		last = max(last, w.LastUpNs)
		r.mergeNodes(w.Nodes)
	}
	if len(ws) > 0 {
		windowNs /= int64(len(ws))
	}
	r.DurationS = float64(windowNs) / 1e9
	r.ConnectS = float64(connectNs) / 1e9
	r.ConnsUp = r.Totals.Up - int64(r.Totals.Reconnects) // storm: the first connections only
	r.Published = r.Totals.Published
	if last > first && first != 0 {
		r.UpgradesPerSec = float64(r.Totals.Up) / (float64(last-first) / 1e9)
	}
	per := func(n uint64) float64 {
		if r.DurationS <= 0 {
			return 0
		}
		return float64(n) / r.DurationS
	}
	switch r.Scenario {
	case ScenarioEcho:
		r.MsgsPerSec = per(win.Recv)
		r.DeliveriesPerSec = per(win.Deliveries)
		if r.Totals.Sent > r.Totals.Recv {
			r.Lost = r.Totals.Sent - r.Totals.Recv
		}
	case ScenarioBroadcast:
		r.MsgsPerSec = per(win.Published)
		r.DeliveriesPerSec = per(win.Deliveries)
		r.PubErrors = r.Totals.PubErrors
		want := uint64(r.Subscribers) * (r.Totals.Published - min(r.Totals.Published, r.Totals.PubErrors))
		if want > r.Totals.Unique {
			r.Lost = want - r.Totals.Unique
		}
		r.Duplicated = r.Totals.Dups
	case ScenarioIdle:
		r.MsgsPerSec = per(win.Pongs)
		if r.Totals.Pings > r.Totals.Pongs {
			r.Lost = r.Totals.Pings - r.Totals.Pongs
		}
	}
	r.BytesPerSec = per(win.BytesRecv)
	r.Mismatched = r.Totals.Mismatch
	if r.Lost > 0 {
		r.ErrorReasons["lost (never received)"] += r.Lost
	}
	if r.Duplicated > 0 {
		r.ErrorReasons["duplicated"] += r.Duplicated
	}
	for _, v := range r.ErrorReasons {
		r.Errors += v
	}
	r.nodeRates()
	r.UpgradeMs = PercentilesOf(r.Upgrade)
	if r.Scenario == ScenarioConnect {
		r.LatencyMs = r.UpgradeMs
	} else {
		r.LatencyMs = PercentilesOf(r.Latency)
	}
}

// mergeNodes adds one worker's per-node parts; r.Nodes already holds the
// URLs (Run sets them).
func (r *Result) mergeNodes(ps []nodePart) {
	for i, p := range ps {
		if i >= len(r.Nodes) {
			break
		}
		n := &r.Nodes[i]
		n.Subscribers += p.Subscribers
		if n.Latency == nil {
			n.Latency = NewHist()
		}
		n.Latency.Merge(p.Latency)
	}
}

// nodeRates fills each node's percentiles and its share of the run's
// deliveries/s. The share comes from the node's latency samples, which
// also include the drain after the window: scaling the window's rate by
// them keeps the nodes' rates summing to the run's.
func (r *Result) nodeRates() {
	var all uint64
	for i := range r.Nodes {
		all += r.Nodes[i].Latency.Count()
	}
	for i := range r.Nodes {
		n := &r.Nodes[i]
		n.LatencyMs = PercentilesOf(n.Latency)
		if all > 0 {
			n.DeliveriesPerSec = r.DeliveriesPerSec * float64(n.Latency.Count()) / float64(all)
		}
	}
}
