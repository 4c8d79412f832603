package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

func human(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2fG", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func humanBytes(v float64) string {
	switch {
	case v >= 1<<30:
		return fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		return fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		return fmt.Sprintf("%.1f KiB", v/(1<<10))
	default:
		return fmt.Sprintf("%.0f B", v)
	}
}

// WriteTable prints a human summary of one result.
func WriteTable(w io.Writer, r *Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "  %s\t"+format+"\n", append([]any{k}, a...)...) }
	title := r.Scenario
	if r.Label != "" {
		title += " — " + r.Label
	}
	fmt.Fprintf(tw, "%s  %s\n", title, r.URL)
	row("connections", "%d up of %d (%d procs), opened in %.2fs", r.ConnsUp, r.Conns, r.Procs, r.ConnectS)
	switch r.Scenario {
	case ScenarioConnect:
		row("upgrades/s", "%s", human(r.UpgradesPerSec))
		row("upgrade latency ms", "%s", fmtPct(r.LatencyMs))
	case ScenarioIdle:
		row("held", "%.1fs", r.DurationS)
		if r.Totals.Subscribed > 0 {
			row("subscribed", "%d, pushes received over the whole run %d", r.Totals.Subscribed, r.Totals.Deliveries)
		}
		row("ping rtt ms", "%s", fmtPct(r.LatencyMs))
	case ScenarioEcho:
		mode := "closed loop"
		if r.Rate > 0 {
			mode = fmt.Sprintf("%.4g msg/s per conn", r.Rate)
		}
		row("payload", "%d B %s%s, %s", r.Size, map[bool]string{true: "text", false: "binary"}[r.Text], map[bool]string{true: ", deflate", false: ""}[r.Deflate], mode)
		row("msgs/s", "%s  (%s/s payload in)", human(r.MsgsPerSec), humanBytes(r.BytesPerSec))
		row("latency ms", "%s", fmtPct(r.LatencyMs))
	case ScenarioBroadcast:
		if r.Mode == ModeWS {
			row("mode", "/ws protocol, channel %q, publish over %s", r.Channel, map[bool]string{true: "HTTP (POST /api/publish)", false: "/ws (publish op)"}[r.PublishVia == PublishHTTP])
			if r.Binary {
				row("data", "binary publications (binary frames)")
			}
			row("subscribers", "%d (subscribed %d), data %d B", r.Subscribers, r.Totals.Subscribed, r.Size)
		} else {
			row("subscribers", "%d, payload %d B", r.Subscribers, r.Size)
		}
		if r.PublishURL != "" && (len(r.Nodes) > 0 || r.PublishURL != r.URL) {
			row("publisher", "%s", r.PublishURL)
		}
		row("publishes/s", "%s", human(r.MsgsPerSec))
		row("deliveries/s", "%s", human(r.DeliveriesPerSec))
		row("latency ms", "%s", fmtPct(r.LatencyMs))
		for _, n := range r.Nodes {
			row("  "+n.URL, "%d subscribers, deliveries/s %s, latency ms %s", n.Subscribers, human(n.DeliveriesPerSec), fmtPct(n.LatencyMs))
		}
	case ScenarioStorm:
		writeStormRows(row, r)
	}
	if r.Scenario != ScenarioConnect {
		row("window", "%.2fs", r.DurationS)
	}
	if r.ServerRSSBytesPerConn != nil {
		row("server RSS", "%s before, %s with conns: %.0f B/conn", humanBytes(float64(r.ServerRSSBefore)), humanBytes(float64(r.ServerRSSAfter)), *r.ServerRSSBytesPerConn)
	}
	writeKernelRows(row, r.Kernel)
	if r.ServerCPUSeconds != nil && r.ServerCPUCores != nil {
		window := "over the window"
		if r.Scenario == ScenarioConnect {
			window = "while connecting"
		}
		line := fmt.Sprintf("%.2f s (%.2f cores) %s", *r.ServerCPUSeconds, *r.ServerCPUCores, window)
		switch {
		case r.ServerCPUUSPerDelivery != nil:
			line += fmt.Sprintf(", %.3f µs per delivery", *r.ServerCPUUSPerDelivery)
		case r.ServerCPUUSPerMsg != nil:
			line += fmt.Sprintf(", %.3f µs per message", *r.ServerCPUUSPerMsg)
		case r.ServerCPUUSPerUpgrade != nil:
			line += fmt.Sprintf(", %.1f µs per upgrade", *r.ServerCPUUSPerUpgrade)
		}
		row("server cpu", "%s", line)
	}
	for _, p := range r.ServerCPU {
		if p.USPerDelivery > 0 {
			row("cpu "+p.Label, "%.2f s (%.2f cores), %.3f µs per delivery", p.CPUSeconds, p.Cores, p.USPerDelivery)
		} else {
			row("cpu "+p.Label, "%.2f s (%.2f cores)", p.CPUSeconds, p.Cores)
		}
	}
	if r.PubErrors > 0 {
		row("errors", "%d (lost %d, duplicated %d, mismatched %d, publishes refused %d)", r.Errors, r.Lost, r.Duplicated, r.Mismatched, r.PubErrors)
	} else {
		row("errors", "%d (lost %d, duplicated %d, mismatched %d)", r.Errors, r.Lost, r.Duplicated, r.Mismatched)
	}
	keys := make([]string, 0, len(r.ErrorReasons))
	for k := range r.ErrorReasons {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row("", "%8d  %s", r.ErrorReasons[k], k)
	}
	tw.Flush()
}

func fmtPct(p Percentiles) string {
	if p.Count == 0 {
		return "no samples"
	}
	return strings.Join([]string{
		fmt.Sprintf("p50 %.3f", p.P50), fmt.Sprintf("p90 %.3f", p.P90), fmt.Sprintf("p99 %.3f", p.P99),
		fmt.Sprintf("p99.9 %.3f", p.P999), fmt.Sprintf("max %.3f", p.Max), fmt.Sprintf("(n=%d)", p.Count),
	}, "  ")
}

func writeStormRows(row func(k, format string, a ...any), r *Result) {
	s := r.Storm
	if s == nil {
		return
	}
	mode := "naive (back at once, hints ignored)"
	if s.HonorHints {
		mode = fmt.Sprintf("hints honoured, backoff %.0f ms..%.0f ms", s.BackoffMinMs, s.BackoffMaxMs)
	}
	row("clients", "%s: %s", strings.Join(s.URLs, " → "), mode)
	if s.Kill != nil {
		row("kill", "SIG%s to pid %d, %.2fs after every client was up", s.Kill.Signal, s.Kill.PID, s.Kill.AtS)
	}
	row("hit", "%d of %d clients closed (%d closes); %d back, %d not back (%d gave up)", s.Hit, s.Clients, s.Closes, s.Back, s.NotBack, s.GaveUp)
	if s.AllBackS != nil {
		row("all back", "%.3fs after the storm began", *s.AllBackS)
	} else {
		row("all back", "no")
	}
	row("reconnects", "%d, peak %d per %.0f ms", s.Reconnects, s.PeakPerBucket, s.BucketMs)
	row("connect ms", "%s", fmtPct(s.ConnectMs))
	row("downtime ms", "%s", fmtPct(s.DowntimeMs))
	row("refused upgrades", "%d (other failures %d)", s.Refused, s.OtherFailures)
	row("early", "%d attempts before the server's hint", s.Early)
	keys := make([]string, 0, len(s.CloseKinds))
	for k := range s.CloseKinds {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row("", "%8d  %s", s.CloseKinds[k], k)
	}
}

// writeKernelRows prints the kernel's share (idle): what each connection
// added to sockstat and the socket slabs.
func writeKernelRows(row func(k, format string, a ...any), k *KernelResult) {
	if k == nil {
		return
	}
	row("kernel TCP sockets", "%.2f per conn (sockstat inuse, this netns); tw %+d (this netns), orphan %+d (whole machine)", k.SocketsPerConn, k.TWDelta, k.OrphanDelta)
	row("kernel TCP mem", "%+d pages = %.0f B/conn (sockstat mem, whole machine)", k.TCPMemBytesDelta/max(k.PageSize, 1), k.TCPMemBytesPerConn)
	if len(k.Slabs) > 0 {
		parts := make([]string, 0, len(k.Slabs))
		for _, s := range k.Slabs {
			if s.MergedInto != "" {
				parts = append(parts, fmt.Sprintf("%s (in %s) %.0f", s.Name, s.MergedInto, s.BytesPerConn))
			} else {
				parts = append(parts, fmt.Sprintf("%s %.0f", s.Name, s.BytesPerConn))
			}
		}
		row("kernel slabs", "%.0f B/conn: %s (whole machine)", k.SlabBytesPerConn, strings.Join(parts, ", "))
		if len(k.OtherSlabs) > 0 {
			parts = parts[:0]
			for _, s := range k.OtherSlabs {
				parts = append(parts, fmt.Sprintf("%s %+d objs %.0f B/conn", s.Name, s.ObjsDelta, s.BytesPerConn))
			}
			row("  other caches moved", "%s (not counted: may be other processes)", strings.Join(parts, ", "))
		}
	} else {
		row("kernel slabs", "/proc/slabinfo unreadable (needs root)")
	}
	row("kernel total", "%.0f B/conn, %.0f B per socket (both ends count when the clients are on this box)", k.BytesPerConn, k.BytesPerSocket)
	if v := k.ServerCgroupKernelBytesPerConn; v != nil {
		note := "the server's own; its accepted sockets' TCP objects are not charged there"
		if k.ServerCgroupShared {
			note = "SHARED with wsbench: the clients' sockets count too"
		}
		row("kernel, server cgroup", "%.0f B/conn charged to %s (%s)", *v, k.ServerCgroup, note)
	}
}
