// Command wsbench load-tests WebSocket servers: connect, idle, echo and
// broadcast scenarios over many connections held by a few epoll loops, with
// multi-process runs, latency histograms and JSON/HTML reports.
//
//	wsbench echo --url ws://127.0.0.1:8080/echo --conns 1000 --duration 10s
//	wsbench idle --url ws://127.0.0.1:8080/echo --conns 19000 --procs 2 --server-pid $(pidof wsd)
//	wsbench idle --url ws://127.0.0.1:8080/ws --conns 10000 --subscribe feed:%d   (a channel each)
//	wsbench broadcast --url ws://127.0.0.1:8080/broadcast --conns 10000
//	wsbench broadcast --mode ws --url ws://127.0.0.1:8080/ws --channel bench --conns 10000 [--publish http --api-key KEY]
//	wsbench broadcast --mode ws --url ws://127.0.0.1:8081/ws,ws://127.0.0.1:8082/ws --publish-url ws://127.0.0.1:8081/ws --conns 18000 --procs 2 --cpu-pid a=PID --cpu-pid b=PID
//	wsbench broadcast --url ws://127.0.0.1:8080/broadcast --conns 10000 --rates 10:40:5 --max-p99 100ms --duration 5s --server-pid $(pidof wsd)
//	wsbench storm --url ws://127.0.0.1:8080/ws --fallback ws://127.0.0.1:8081/ws --conns 2000 --kill-pid $(pidof wsd) --signal KILL
//	wsbench suite --server wsd=bin/wsd --server gorilla=bin/peer-gorilla --out docs/bench
//	wsbench report --html out.html results.json
//
// Targets must be loopback unless --allow-remote is given.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/wsdhq/wsd/bench"
	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == bench.WorkerArg {
		if err := bench.ServeWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "wsbench worker:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `Usage: wsbench <scenario> [flags]

Scenarios:
  connect    open --conns connections at --connect-rate; upgrade latency, upgrades/s, failures
  idle       open --conns and hold them --duration, pinging a sample; with --server-pid
             (or --prometheus) report the server's RSS per connection; --subscribe PATTERN
             subscribes each to its own channel of wsd's /ws and counts the pushes;
             always: the kernel's TCP sockets, socket-buffer pages (/proc/net/sockstat)
             and socket slab caches (/proc/slabinfo, as root) added per connection
  echo       --conns connections echo --size byte messages, closed loop or --rate per conn
  broadcast  --conns subscribers; one publisher sends to the same URL (closed loop or --rate);
             --mode ws: wsd's /ws protocol, subscribe to --channel, publish over /ws or --publish http;
             --url A,B spreads the subscribers over the nodes of a cluster, --publish-url picks the
             publisher's node; --cpu-pid reports each server process's CPU per delivery;
             --rates R1,R2,FROM:TO:STEP sweeps publish rates for the highest one sustained
             with p99 ≤ --max-p99 and nothing lost
  storm      --conns clients on --url; when that node goes (--kill-pid, or kill it yourself) each
             reconnects to the next of --fallback, at once or as the server's hints say
             (--honor-hints); the reconnect curve, connect times, refused upgrades

Other commands:
  suite      run the standard scenarios against several servers, write results.md/json/html
  report     turn result JSON files into an HTML report (--html) or tables; --sweep: sweeps side by side
  apipub     POST /api/publish over --conns keep-alive connections for --duration; publishes/s;
             --channels N spreads them over the N channels of a --channel pattern

Run "wsbench <command> -h" for its flags.
`

func isTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case bench.ScenarioConnect, bench.ScenarioIdle, bench.ScenarioEcho, bench.ScenarioBroadcast, bench.ScenarioStorm:
		err = runScenario(cmd, rest, stdout, stderr)
	case "suite":
		err = runSuite(rest, stdout, stderr)
	case "report":
		err = runReport(rest, stdout, stderr)
	case "apipub":
		err = runAPIPub(rest, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "wsbench: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "wsbench:", err)
		return 1
	}
	return 0
}

// scenarioFlags registers the flags shared by the scenarios and the suite.
func scenarioFlags(fs *flag.FlagSet, c *bench.Config, sourceIPs *string) {
	fs.IntVar(&c.Conns, "conns", 100, "connections (broadcast: subscribers); at most 1,000,000")
	fs.Float64Var(&c.ConnectRate, "connect-rate", 0, "new connections per second, all procs together (0 = as fast as --concurrency allows)")
	fs.IntVar(&c.Concurrency, "concurrency", 256, "handshakes in flight at once, all procs together")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured window (idle: how long to hold)")
	fs.DurationVar(&c.Warmup, "warmup", 0, "traffic before measuring (default 1s; idle: settle time before sampling RSS, default 3s)")
	fs.DurationVar(&c.Timeout, "timeout", 0, "hard cap on the whole run (default duration+warmup+2m, at most 1h)")
	fs.IntVar(&c.Procs, "procs", 1, "worker processes (each holds its share under its own file limit)")
	fs.IntVar(&c.Loops, "loops", 0, "epoll loops per process (default GOMAXPROCS)")
	fs.StringVar(sourceIPs, "source-ips", "", "bind connections round-robin to these local addresses, e.g. 127.0.0.2-127.0.0.60")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow non-loopback targets (only hosts you own)")
	fs.DurationVar(&c.Sample, "sample", 500*time.Millisecond, "timeline and RSS sampling period")
}

func runScenario(name string, args []string, stdout, stderr io.Writer) error {
	c := bench.Config{Scenario: name}
	var sourceIPs, jsonPath, htmlPath string
	var quiet bool
	var cpuProfile string
	defaultURL := "ws://127.0.0.1:8080/echo"
	switch name {
	case bench.ScenarioBroadcast:
		defaultURL = "ws://127.0.0.1:8080/broadcast"
	case bench.ScenarioStorm:
		defaultURL = "ws://127.0.0.1:8080/ws"
	}
	var fallback string
	honor := true
	var rates string
	sweep := bench.Sweep{MaxP99: bench.DefaultSweepMaxP99, StopAfter: 1}
	fs := flag.NewFlagSet("wsbench "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", defaultURL, "target ws:// URL (broadcast --mode ws: default ws://127.0.0.1:8080/ws; broadcast: several, comma-separated, get the subscribers round robin)")
	fs.StringVar(&c.Label, "label", "", "name of the server under test, for reports")
	scenarioFlags(fs, &c, &sourceIPs)
	fs.IntVar(&c.ServerPID, "server-pid", 0, "the server's PID: sample its RSS (/proc/PID/status VmRSS) and its CPU time over the measured window (/proc/PID/stat user+system; echo and broadcast: µs per message or delivery; connect: µs per upgrade over the connect phase)")
	fs.StringVar(&c.PrometheusURL, "prometheus", "", "or scrape process_resident_memory_bytes from this URL")
	fs.StringVar(&jsonPath, "json", "", "write the result as JSON to `file` (- for stdout)")
	fs.StringVar(&htmlPath, "html", "", "write a self-contained HTML report to `file`")
	fs.BoolVar(&quiet, "quiet", false, "no progress output")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write wsbench's own CPU profile to `file` (to check the client is not the bottleneck)")
	switch name {
	case bench.ScenarioEcho, bench.ScenarioBroadcast:
		fs.Func("cpu-pid", "report this process's CPU time (user+system, /proc/PID/stat) over the measured window and per delivery: PID or label=PID; repeat for several (e.g. each server node and its broker)", cpuPID(&c))
		fs.IntVar(&c.Size, "size", 0, "payload bytes (default 1024; broadcast 64, at least 32)")
		fs.BoolVar(&c.Text, "text", false, "text frames (default binary)")
		fs.BoolVar(&c.Deflate, "deflate", false, "offer permessage-deflate (no context takeover)")
		fs.Float64Var(&c.Rate, "rate", 0, "echo: messages/s per connection; broadcast: publishes/s (0 = closed loop)")
		fs.IntVar(&c.Pipeline, "pipeline", 1, "closed loop: messages in flight per connection (broadcast: publishes not yet delivered to every local subscriber)")
		if name == bench.ScenarioBroadcast {
			fs.StringVar(&c.Mode, "mode", bench.ModeRaw, "raw: every message sent to --url is relayed to every connection (/broadcast, the peers' hubs); "+
				"ws: wsd's /ws protocol: subscribers subscribe to --channel, the publisher publishes on it (start wsd with --rate-limit -1)")
			fs.StringVar(&c.Channel, "channel", "", "ws mode: channel (default \""+bench.DefaultChannel+"\"); use one nobody else publishes on")
			fs.StringVar(&c.Publish, "publish", "", "ws mode: ws (publish ops on a /ws connection of its own, the default) or http (POST /api/publish, one at a time, at most "+fmt.Sprint(bench.MaxHTTPPublishRate)+"/s)")
			fs.BoolVar(&c.Binary, "binary", false, "ws mode, --publish ws: binary publications (binary publish frames; subscribers get binary pushes)")
			fs.StringVar(&c.APIKey, "api-key", "", "ws mode, --publish http: wsd's --api-key (or $WSBENCH_API_KEY)")
			fs.StringVar(&c.APIURL, "api-url", "", "ws mode, --publish http: the publish endpoint (default http://HOST:PORT/api/publish of --publish-url)")
			fs.StringVar(&c.PublishURL, "publish-url", "", "where the publisher connects (--publish http: whose /api/publish it posts to); default the first --url")
			fs.StringVar(&rates, "rates", "", "sweep: run the broadcast at each of these publishes/s in turn (list and FROM:TO:STEP ranges, e.g. 5,10:30:5), each a whole run of --duration on fresh connections, "+
				"and report the highest rate sustained (nothing lost, no errors, p99 ≤ --max-p99, every lower rate sustained too); --json gets the sweep")
			fs.DurationVar(&sweep.MaxP99, "max-p99", bench.DefaultSweepMaxP99, "with --rates: the p99 publish→receive latency a sustained step stays within")
			fs.IntVar(&sweep.StopAfter, "stop-after", 1, "with --rates: stop after this many steps in a row not kept up with (something lost; steps over --max-p99 alone go on)")
		}
	case bench.ScenarioStorm:
		fs.StringVar(&fallback, "fallback", "", "comma-separated ws:// URLs a client moves on to, in turn, when its node closes or cannot be reached (default: --url again)")
		fs.BoolVar(&honor, "honor-hints", true, "wait for the retry hint of a 1012 close and the Retry-After of a 503, and back off after a hintless loss; false: the naive client, back at once")
		fs.DurationVar(&c.BackoffMin, "backoff-min", bench.DefaultBackoffMin, "base of the backoff after failures: full jitter over min·2^failures")
		fs.DurationVar(&c.BackoffMax, "backoff-max", bench.DefaultBackoffMax, "cap of the backoff")
		fs.IntVar(&c.MaxAttempts, "max-attempts", bench.DefaultStormAttempts, "failed attempts in a row before a client gives up")
		fs.IntVar(&c.KillPID, "kill-pid", 0, "signal this process (the node under --url) once every client is up; only the PID you name")
		fs.StringVar(&c.KillSignal, "signal", "", "with --kill-pid: TERM (default), KILL or INT")
		fs.DurationVar(&c.KillAfter, "kill-after", 0, "with --kill-pid: how long after every client is up (default 500ms)")
	case bench.ScenarioIdle:
		fs.Func("cpu-pid", "report this process's CPU time (user+system, /proc/PID/stat) over the measured window: PID or label=PID; repeat for several", cpuPID(&c))
		fs.DurationVar(&c.PingEvery, "ping-every", time.Second, "ping interval for the sampled connections")
		fs.IntVar(&c.PingSample, "ping-sample", 100, "connections pinged each interval (all procs)")
		fs.StringVar(&c.Subscribe, "subscribe", "", "over wsd's /ws: subscribe each connection to a channel of this pattern, e.g. feed:%d (connection i: channel i mod --channels), and count the pushes")
		fs.IntVar(&c.SubChannels, "channels", 0, "with --subscribe: how many channels (default --conns: one each)")
		fs.StringVar(&c.Mode, "mode", "", "sse: hold Server-Sent Events streams (GET --url, e.g. http://127.0.0.1:8080/sse?channel=bench, the default then) instead of WebSocket connections; nothing is pinged")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if name == bench.ScenarioStorm {
		if err := stormFlags(fs, &c, fallback, honor); err != nil {
			return err
		}
	}
	if name == bench.ScenarioBroadcast {
		if err := splitURLs(&c); err != nil {
			return err
		}
	}
	if name == bench.ScenarioIdle && c.Mode == bench.ModeSSE {
		urlSet := false
		fs.Visit(func(f *flag.Flag) { urlSet = urlSet || f.Name == "url" })
		if !urlSet {
			c.URL = "ws://127.0.0.1:8080/sse?channel=" + bench.DefaultChannel
		}
		if rest, ok := strings.CutPrefix(c.URL, "http://"); ok {
			c.URL = "ws://" + rest // the target's address and path; the request is a plain GET
		}
	}
	if name == bench.ScenarioBroadcast && c.Mode == bench.ModeWS {
		urlSet := false
		fs.Visit(func(f *flag.Flag) { urlSet = urlSet || f.Name == "url" })
		if !urlSet {
			c.URL = "ws://127.0.0.1:8080/ws"
		}
		if c.APIKey == "" && c.Publish == bench.PublishHTTP {
			c.APIKey = os.Getenv("WSBENCH_API_KEY")
		}
	}
	ips, err := bench.ParseSourceIPs(sourceIPs, c.AllowRemote)
	if err != nil {
		return err
	}
	for _, ip := range ips {
		c.SourceIPs = append(c.SourceIPs, ip.String())
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opt := bench.RunOptions{}
	if !quiet {
		opt.Progress, opt.TTY = stderr, isTTY(os.Stderr)
	}
	if rates != "" {
		return runSweep(ctx, c, rates, sweep, opt, jsonPath, htmlPath, stdout, stderr)
	}
	res, err := bench.Run(ctx, c, opt)
	if err != nil {
		return err
	}
	tableOut := stdout
	if jsonPath == "-" {
		tableOut = stderr
	}
	bench.WriteTable(tableOut, res)
	if jsonPath != "" {
		if err := bench.WriteJSON(jsonPath, res); err != nil {
			return err
		}
	}
	if htmlPath != "" {
		if err := bench.WriteHTMLFile(htmlPath, bench.Report{Title: "wsbench " + name, Machine: bench.DescribeMachine(), Results: []*bench.Result{res}}); err != nil {
			return err
		}
	}
	return nil
}

func runReport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsbench report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var htmlPath, title string
	var sweeps bool
	fs.StringVar(&htmlPath, "html", "", "write a self-contained HTML report to `file`")
	fs.StringVar(&title, "title", "wsbench report", "report title")
	fs.BoolVar(&sweeps, "sweep", false, "the files are broadcast --rates sweeps (one per server): print them side by side as one Markdown table")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("report: give one or more result JSON files")
	}
	if sweeps {
		var srs []*bench.SweepResult
		for _, p := range fs.Args() {
			sr, err := bench.ReadSweep(p)
			if err != nil {
				return err
			}
			srs = append(srs, sr)
		}
		bench.WriteSweepCompare(stdout, srs)
		return nil
	}
	var all []*bench.Result
	for _, p := range fs.Args() {
		rs, err := bench.ReadResults(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		all = append(all, rs...)
	}
	if htmlPath != "" {
		return bench.WriteHTMLFile(htmlPath, bench.Report{Title: title, Machine: bench.DescribeMachine(), Results: all})
	}
	for _, r := range all {
		bench.WriteTable(stdout, r)
		fmt.Fprintln(stdout)
	}
	return nil
}

// splitServer parses name=command args.
func splitServer(s string) (string, []string, error) {
	name, cmd, ok := strings.Cut(s, "=")
	if !ok || name == "" || strings.TrimSpace(cmd) == "" {
		return "", nil, fmt.Errorf("--server %q: want name=command", s)
	}
	return name, strings.Fields(cmd), nil
}

// stormFlags applies the storm's flags that need more than a Var: the
// fallback list, the honour switch and the storm's own default duration.
func stormFlags(fs *flag.FlagSet, c *bench.Config, fallback string, honor bool) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["duration"] {
		c.Duration = bench.DefaultStormDuration
	}
	for _, u := range strings.Split(fallback, ",") {
		if u = strings.TrimSpace(u); u != "" {
			c.Fallback = append(c.Fallback, u)
		}
	}
	c.IgnoreHints = !honor
	if c.Label == "" {
		c.Label = "hints honoured"
		if !honor {
			c.Label = "naive"
		}
	}
	return nil
}

// cpuPID is the --cpu-pid flag: one process per use.
func cpuPID(c *bench.Config) func(string) error {
	return func(v string) error {
		p, err := bench.ParseCPUProc(v)
		if err != nil {
			return err
		}
		c.CPUProcs = append(c.CPUProcs, p)
		return nil
	}
}

// splitURLs turns a broadcast's comma-separated --url into URL (the first,
// whose host --mode ws defaults apply to) and Nodes.
func splitURLs(c *bench.Config) error {
	if !strings.Contains(c.URL, ",") {
		return nil
	}
	var us []string
	for _, u := range strings.Split(c.URL, ",") {
		if u = strings.TrimSpace(u); u != "" {
			us = append(us, u)
		}
	}
	if len(us) == 0 {
		return errors.New("--url: no URL")
	}
	c.URL, c.Nodes = us[0], us[1:]
	return nil
}

// runSweep runs broadcast --rates: each rate a whole run, then the sweep's
// table (stdout, or stderr when the JSON goes to stdout), its JSON and an
// HTML report of every step's run.
func runSweep(ctx context.Context, c bench.Config, rates string, sw bench.Sweep, opt bench.RunOptions, jsonPath, htmlPath string, stdout, stderr io.Writer) error {
	if c.Rate != 0 {
		return errors.New("--rates and --rate: give one")
	}
	var err error
	if sw.Rates, err = bench.ParseRates(rates); err != nil {
		return err
	}
	sw.Progress = stderr
	opt.TTY = false // one line per step, not a live line that the step lines would cut
	sr, err := bench.RunSweep(ctx, c, sw, opt)
	if err != nil {
		return err
	}
	tableOut := stdout
	if jsonPath == "-" {
		tableOut = stderr
	}
	bench.WriteSweepTable(tableOut, sr)
	if jsonPath != "" {
		if err := bench.WriteJSON(jsonPath, sr); err != nil {
			return err
		}
	}
	if htmlPath != "" {
		title := "wsbench broadcast sweep"
		if c.Label != "" {
			title += " — " + c.Label
		}
		if err := bench.WriteHTMLFile(htmlPath, bench.Report{Title: title, Machine: bench.DescribeMachine(), Results: sr.Runs}); err != nil {
			return err
		}
	}
	return ctx.Err()
}
