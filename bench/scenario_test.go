//go:build linux

package bench

import (
	"context"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

func quickRun(t *testing.T, cfg Config) *Result {
	t.Helper()
	if cfg.Duration == 0 {
		cfg.Duration = 500 * time.Millisecond
	}
	if cfg.Warmup == 0 {
		cfg.Warmup = 100 * time.Millisecond
	}
	cfg.Timeout = 60 * time.Second
	cfg.Sample = 100 * time.Millisecond
	res, err := Run(context.Background(), cfg, RunOptions{Exe: workerExe()})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestEchoClosedLoop(t *testing.T) {
	_, addr := startTiny(t, nil)
	for _, text := range []bool{false, true} {
		res := quickRun(t, Config{Scenario: ScenarioEcho, URL: "ws://" + addr + "/echo", Conns: 20, Size: 1024, Text: text, Pipeline: 2})
		if res.ConnsUp != 20 || res.Errors != 0 || res.MsgsPerSec <= 0 || res.LatencyMs.Count == 0 || res.Lost != 0 {
			t.Fatalf("text=%v: %+v %v", text, res, res.ErrorReasons)
		}
		if res.LatencyMs.P50 <= 0 || res.LatencyMs.P99 < res.LatencyMs.P50 || res.LatencyMs.Max < res.LatencyMs.P999 {
			t.Fatalf("percentiles out of order: %+v", res.LatencyMs)
		}
		if len(res.Timeline) < 3 {
			t.Fatalf("timeline has %d samples", len(res.Timeline))
		}
	}
}

func TestEchoLargeFramesInPieces(t *testing.T) {
	_, addr := startTiny(t, nil)
	res := quickRun(t, Config{Scenario: ScenarioEcho, URL: "ws://" + addr + "/echo", Conns: 3, Size: 300 << 10})
	if res.Errors != 0 || res.Totals.Recv == 0 {
		t.Fatalf("%+v %v", res.Totals, res.ErrorReasons)
	}
}

func TestEchoFixedRate(t *testing.T) {
	_, addr := startTiny(t, nil)
	res := quickRun(t, Config{Scenario: ScenarioEcho, URL: "ws://" + addr + "/echo", Conns: 10, Rate: 100, Size: 64, Duration: time.Second})
	// 10 conns × 100/s = 1000 msgs/s offered.
	if res.MsgsPerSec < 800 || res.MsgsPerSec > 1200 || res.Errors != 0 {
		t.Fatalf("offered 1000/s, got %.0f/s, errors %v", res.MsgsPerSec, res.ErrorReasons)
	}
}

func TestEchoDetectsCorruptReplies(t *testing.T) {
	_, addr := startTiny(t, func(s *tinyServer) { s.corrupt = 10 })
	res := quickRun(t, Config{Scenario: ScenarioEcho, URL: "ws://" + addr + "/echo", Conns: 5, Size: 256})
	if res.Mismatched == 0 || res.Errors < res.Mismatched {
		t.Fatalf("a server corrupting every 10th reply went unnoticed: %+v", res.Totals)
	}
	ratio := float64(res.Mismatched) / float64(res.Totals.Recv)
	if ratio < 0.08 || ratio > 0.12 {
		t.Fatalf("mismatch ratio %.3f, want ≈0.1", ratio)
	}
}

func TestEchoWithDeflate(t *testing.T) {
	_, addr := startTiny(t, nil) // the tiny server declines deflate: the client must cope
	res := quickRun(t, Config{Scenario: ScenarioEcho, URL: "ws://" + addr + "/echo", Conns: 3, Deflate: true})
	if res.Errors != 0 || res.Totals.Recv == 0 {
		t.Fatalf("%v", res.ErrorReasons)
	}
}

func TestBroadcastCountsLossAndDuplicates(t *testing.T) {
	_, addr := startTiny(t, nil)
	res := quickRun(t, Config{Scenario: ScenarioBroadcast, URL: "ws://" + addr + "/broadcast", Conns: 30, Pipeline: 2})
	if res.Subscribers != 30 || res.Lost != 0 || res.Duplicated != 0 || res.Errors != 0 || res.DeliveriesPerSec <= 0 || res.Published == 0 {
		t.Fatalf("clean run: subs %d lost %d dup %d %v", res.Subscribers, res.Lost, res.Duplicated, res.ErrorReasons)
	}
	if res.Totals.Unique != uint64(res.Subscribers)*res.Published {
		t.Fatalf("unique %d != %d × %d", res.Totals.Unique, res.Subscribers, res.Published)
	}

	_, addr = startTiny(t, func(s *tinyServer) { s.dropNth = 7; s.dupNth = 11 })
	res = quickRun(t, Config{Scenario: ScenarioBroadcast, URL: "ws://" + addr + "/broadcast", Conns: 30, Rate: 200})
	if res.Lost == 0 || res.Duplicated == 0 {
		t.Fatalf("lossy server: lost %d dup %d", res.Lost, res.Duplicated)
	}
	// Deliveries the server attempted: subscribers+publisher per publish.
	attempts := float64(res.Published) * 31
	if l := float64(res.Lost) / attempts; l < 0.1 || l > 0.18 {
		t.Fatalf("lost fraction %.3f, want ≈1/7", l)
	}
	if res.Errors < res.Lost+res.Duplicated {
		t.Fatalf("errors %d must include lost %d and duplicated %d", res.Errors, res.Lost, res.Duplicated)
	}
}

func TestIdlePingsSample(t *testing.T) {
	_, addr := startTiny(t, nil)
	res := quickRun(t, Config{Scenario: ScenarioIdle, URL: "ws://" + addr + "/echo", Conns: 50, PingSample: 10,
		PingEvery: 100 * time.Millisecond, Duration: time.Second, ServerPID: os.Getpid()})
	if res.ConnsUp != 50 || res.Totals.Pongs < 50 || res.Lost != 0 || res.Errors != 0 {
		t.Fatalf("%+v %v", res.Totals, res.ErrorReasons)
	}
	if res.ServerRSSBytesPerConn == nil || res.ServerRSSBefore <= 0 || res.ServerRSSAfter <= 0 {
		t.Fatalf("RSS not sampled: %+v", res)
	}
	for _, s := range res.Timeline {
		if s.RSS <= 0 {
			t.Fatal("timeline sample without RSS")
		}
	}
	// Both ends are in this process: each connection adds TCP sockets to
	// this netns's sockstat (other tests may add or close some meanwhile).
	if runtime.GOOS == "linux" && (res.Kernel == nil || res.Kernel.SocketsPerConn <= 0) {
		t.Fatalf("kernel figures missing: %+v", res.Kernel)
	}
	// The "server" is this process: where its memory cgroup is readable,
	// it is wsbench's own, and must be said to be.
	if k := res.Kernel; k != nil && k.ServerCgroupKernelBytesPerConn != nil && !k.ServerCgroupShared {
		t.Fatalf("server cgroup %s not marked shared with wsbench", k.ServerCgroup)
	}
}

func TestConnectCountsRefusals(t *testing.T) {
	_, addr := startTiny(t, nil)
	res := quickRun(t, Config{Scenario: ScenarioConnect, URL: "ws://" + addr + "/echo", Conns: 300, Concurrency: 32})
	if res.ConnsUp != 300 || res.UpgradesPerSec <= 0 || res.UpgradeMs.Count != 300 || res.LatencyMs.Count != 300 {
		t.Fatalf("%+v", res)
	}
	_, addr = startTiny(t, func(s *tinyServer) { s.refuse = true })
	res = quickRun(t, Config{Scenario: ScenarioConnect, URL: "ws://" + addr + "/echo", Conns: 20})
	if res.ConnsUp != 0 || res.Totals.Failed != 20 || res.ErrorReasons["handshake: HTTP 503"] != 20 {
		t.Fatalf("%+v %v", res.Totals, res.ErrorReasons)
	}
	res = quickRun(t, Config{Scenario: ScenarioConnect, URL: "ws://127.0.0.1:1/echo", Conns: 5})
	if res.Totals.Failed != 5 || res.ErrorReasons["connect: refused"] != 5 {
		t.Fatalf("%v", res.ErrorReasons)
	}
}

func TestSourceIPs(t *testing.T) {
	_, addr := startTiny(t, nil)
	res := quickRun(t, Config{Scenario: ScenarioEcho, URL: "ws://" + addr + "/echo", Conns: 20, SourceIPs: []string{"127.0.0.2", "127.0.0.3"}})
	if res.ConnsUp != 20 || res.Errors != 0 {
		t.Fatalf("%v", res.ErrorReasons)
	}
}

func TestMultiProcessMerge(t *testing.T) {
	_, addr := startTiny(t, nil)
	res := quickRun(t, Config{Scenario: ScenarioEcho, URL: "ws://" + addr + "/echo", Conns: 30, Procs: 3})
	if res.ConnsUp != 30 || res.Errors != 0 || res.Procs != 3 || res.MsgsPerSec <= 0 || res.Latency.Count() != res.LatencyMs.Count {
		t.Fatalf("%+v %v", res.Totals, res.ErrorReasons)
	}
	res = quickRun(t, Config{Scenario: ScenarioBroadcast, URL: "ws://" + addr + "/broadcast", Conns: 20, Procs: 2, Rate: 100})
	if res.Subscribers != 20 || res.Lost != 0 || res.Published == 0 || res.Totals.Unique != 20*res.Published {
		t.Fatalf("subs %d lost %d published %d unique %d %v", res.Subscribers, res.Lost, res.Published, res.Totals.Unique, res.ErrorReasons)
	}
}

func TestRunRefusesRemoteAndBounds(t *testing.T) {
	_, err := Run(context.Background(), Config{Scenario: ScenarioEcho, URL: "ws://192.0.2.1/echo"}, RunOptions{})
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("remote target: %v", err)
	}
	_, err = Run(context.Background(), Config{Scenario: "flood", URL: "ws://127.0.0.1/"}, RunOptions{})
	if err == nil {
		t.Fatal("unknown scenario accepted")
	}
}

func TestRunTimesOut(t *testing.T) {
	// A server that accepts TCP but never answers the upgrade: the run must
	// end by itself within its timeout.
	ln := mustListen(t)
	start := time.Now()
	_, err := Run(context.Background(), Config{Scenario: ScenarioConnect, URL: "ws://" + ln + "/echo", Conns: 2, Timeout: 2 * time.Second}, RunOptions{})
	if err == nil && time.Since(start) > 15*time.Second {
		t.Fatal("run did not stop")
	}
	if time.Since(start) > 15*time.Second {
		t.Fatalf("took %v", time.Since(start))
	}
}

func TestBroadcastWSCountsDeliveries(t *testing.T) {
	s, addr := startTiny(t, nil)
	res := quickRun(t, Config{Scenario: ScenarioBroadcast, Mode: ModeWS, URL: "ws://" + addr + "/ws", Conns: 30, Pipeline: 2})
	if res.Subscribers != 30 || res.Totals.Subscribed != 30 || res.Lost != 0 || res.Duplicated != 0 || res.Errors != 0 ||
		res.DeliveriesPerSec <= 0 || res.Published == 0 || res.LatencyMs.Count == 0 {
		t.Fatalf("clean run: subs %d subscribed %d lost %d dup %d published %d %v",
			res.Subscribers, res.Totals.Subscribed, res.Lost, res.Duplicated, res.Published, res.ErrorReasons)
	}
	// Every publish reached every subscriber once; the publisher's replies
	// are not deliveries.
	if res.Totals.Unique != 30*res.Published || res.Totals.Deliveries != res.Totals.Unique {
		t.Fatalf("unique %d deliveries %d, want 30 × %d", res.Totals.Unique, res.Totals.Deliveries, res.Published)
	}
	if res.Mode != ModeWS || res.Channel != DefaultChannel || res.PublishVia != PublishWS || res.Size != 64 {
		t.Fatalf("result does not say how it ran: %q %q %q %d", res.Mode, res.Channel, res.PublishVia, res.Size)
	}
	s.mu.Lock()
	seen := s.offset
	s.mu.Unlock()
	if seen != res.Published {
		t.Fatalf("server saw %d publishes, wsbench counted %d", seen, res.Published)
	}

	// Larger data, several processes.
	_, addr = startTiny(t, nil)
	res = quickRun(t, Config{Scenario: ScenarioBroadcast, Mode: ModeWS, URL: "ws://" + addr + "/ws", Channel: "chat:bench", Conns: 20, Procs: 2, Rate: 100, Size: 3000})
	if res.Subscribers != 20 || res.Lost != 0 || res.Errors != 0 || res.Published == 0 || res.Totals.Unique != 20*res.Published {
		t.Fatalf("procs 2: subs %d lost %d published %d unique %d %v", res.Subscribers, res.Lost, res.Published, res.Totals.Unique, res.ErrorReasons)
	}
}

func TestBroadcastWSDetectsLossAndDuplicates(t *testing.T) {
	_, addr := startTiny(t, func(s *tinyServer) { s.dropNth = 7; s.dupNth = 11 })
	res := quickRun(t, Config{Scenario: ScenarioBroadcast, Mode: ModeWS, URL: "ws://" + addr + "/ws", Conns: 30, Rate: 200})
	if res.Lost == 0 || res.Duplicated == 0 {
		t.Fatalf("lossy server: lost %d dup %d %v", res.Lost, res.Duplicated, res.ErrorReasons)
	}
	// The server attempted subscribers (not the publisher) deliveries per publish.
	attempts := float64(res.Published) * 30
	if l := float64(res.Lost) / attempts; l < 0.1 || l > 0.18 {
		t.Fatalf("lost fraction %.3f, want ≈1/7", l)
	}
	if res.Errors < res.Lost+res.Duplicated {
		t.Fatalf("errors %d must include lost %d and duplicated %d", res.Errors, res.Lost, res.Duplicated)
	}

	_, addr = startTiny(t, func(s *tinyServer) { s.misroute = 5 })
	res = quickRun(t, Config{Scenario: ScenarioBroadcast, Mode: ModeWS, URL: "ws://" + addr + "/ws", Conns: 10, Rate: 100})
	if res.Mismatched == 0 || res.ErrorReasons["broadcast: push on a channel not subscribed to"] != res.Mismatched || res.Lost < res.Mismatched {
		t.Fatalf("pushes on another channel: mismatched %d lost %d %v", res.Mismatched, res.Lost, res.ErrorReasons)
	}
}

func TestBroadcastWSOverHTTP(t *testing.T) {
	s, addr := startTiny(t, nil)
	api := httptest.NewServer(s.apiHandler("sesame"))
	t.Cleanup(api.Close)
	cfg := Config{Scenario: ScenarioBroadcast, Mode: ModeWS, Publish: PublishHTTP, APIKey: "sesame", APIURL: api.URL + "/api/publish",
		URL: "ws://" + addr + "/ws", Conns: 25, Pipeline: 4}
	res := quickRun(t, cfg)
	if res.Subscribers != 25 || res.ConnsUp != 25 || res.Lost != 0 || res.Errors != 0 || res.Published == 0 || res.Totals.Unique != 25*res.Published {
		t.Fatalf("over HTTP: subs %d up %d lost %d published %d unique %d %v",
			res.Subscribers, res.ConnsUp, res.Lost, res.Published, res.Totals.Unique, res.ErrorReasons)
	}
	if res.PublishVia != PublishHTTP || res.LatencyMs.Count == 0 {
		t.Fatalf("%q, latency %+v", res.PublishVia, res.LatencyMs)
	}

	cfg.APIKey = "wrong"
	res = quickRun(t, cfg)
	if res.PubErrors == 0 || res.PubErrors != res.Published || res.Lost != 0 || res.ErrorReasons["http publish: HTTP 401 unauthorized"] != res.PubErrors {
		t.Fatalf("wrong key: published %d refused %d lost %d %v", res.Published, res.PubErrors, res.Lost, res.ErrorReasons)
	}
	// Refused publishes hold the publisher off instead of hammering the API.
	if res.Published > 30 {
		t.Fatalf("%d refused publishes in 0.6 s", res.Published)
	}
}

func TestBroadcastWSSubscribeRefused(t *testing.T) {
	_, addr := startTiny(t, nil)
	res := quickRun(t, Config{Scenario: ScenarioBroadcast, Mode: ModeWS, URL: "ws://" + addr + "/ws", Channel: "forbidden", Conns: 10, Rate: 50})
	if res.Totals.Subscribed != 0 || res.Subscribers != 0 || res.Totals.Dropped != 10 || res.ErrorReasons["subscribe: error forbidden"] != 10 {
		t.Fatalf("subscribed %d subs %d dropped %d %v", res.Totals.Subscribed, res.Subscribers, res.Totals.Dropped, res.ErrorReasons)
	}
}

func TestBroadcastWSConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Scenario: ScenarioBroadcast, Mode: "grpc"}, "unknown --mode"},
		{Config{Scenario: ScenarioBroadcast, Channel: "x"}, "need --mode ws"},
		{Config{Scenario: ScenarioEcho, Mode: ModeWS}, "broadcast only"},
		{Config{Scenario: ScenarioBroadcast, Mode: ModeWS, Channel: "a*b"}, "not allowed"},
		{Config{Scenario: ScenarioBroadcast, Mode: ModeWS, Publish: "carrier-pigeon"}, "unknown --publish"},
		{Config{Scenario: ScenarioBroadcast, Mode: ModeWS, Publish: PublishHTTP}, "needs --api-key"},
		{Config{Scenario: ScenarioBroadcast, Mode: ModeWS, Publish: PublishHTTP, APIKey: "k", Rate: 10_000}, "at most"},
		{Config{Scenario: ScenarioBroadcast, Mode: ModeWS, Publish: PublishHTTP, APIKey: "k", APIURL: "http://192.0.2.1/api/publish"}, "loopback"},
		{Config{Scenario: ScenarioBroadcast, Mode: ModeWS, APIKey: "k"}, "need --publish http"},
	} {
		c.cfg.URL = "ws://127.0.0.1:1/ws"
		if _, err := c.cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	cfg, err := Config{Scenario: ScenarioBroadcast, Mode: ModeWS, Publish: PublishHTTP, APIKey: "k", URL: "ws://127.0.0.1:8080/ws", Size: 10}.withDefaults()
	if err != nil || cfg.APIURL != "http://127.0.0.1:8080/api/publish" || cfg.Channel != DefaultChannel || cfg.Size != wsDataMin || !cfg.Text {
		t.Fatalf("%+v %v", cfg, err)
	}
}

// --server-pid meters the server's CPU over the measured window: the run
// reports it per delivery (broadcast), per message (echo) and per upgrade
// (connect), and does not list the server among --cpu-pid's processes.
func TestServerPIDReportsCPUPerUnit(t *testing.T) {
	_, addr := startTiny(t, nil)
	b := quickRun(t, Config{Scenario: ScenarioBroadcast, URL: "ws://" + addr + "/broadcast", Conns: 20, Pipeline: 4, ServerPID: os.Getpid()})
	if b.ServerCPUCores == nil || b.ServerCPUUSPerDelivery == nil || b.ServerCPUUSPerMsg != nil || len(b.ServerCPU) != 0 {
		t.Fatalf("broadcast: cores %v, µs/delivery %v, µs/msg %v, cpu list %+v", b.ServerCPUCores, b.ServerCPUUSPerDelivery, b.ServerCPUUSPerMsg, b.ServerCPU)
	}
	if want := usPer(*b.ServerCPUCores, b.DeliveriesPerSec); *b.ServerCPUUSPerDelivery != want {
		t.Fatalf("µs per delivery %v, want %v", *b.ServerCPUUSPerDelivery, want)
	}
	e := quickRun(t, Config{Scenario: ScenarioEcho, URL: "ws://" + addr + "/echo", Conns: 10, ServerPID: os.Getpid()})
	if e.ServerCPUUSPerMsg == nil || e.ServerCPUUSPerDelivery != nil || *e.ServerCPUUSPerMsg != usPer(*e.ServerCPUCores, e.MsgsPerSec) {
		t.Fatalf("echo: µs/msg %v, µs/delivery %v", e.ServerCPUUSPerMsg, e.ServerCPUUSPerDelivery)
	}
	// connect: the window is the connect phase itself.
	c := quickRun(t, Config{Scenario: ScenarioConnect, URL: "ws://" + addr + "/echo", Conns: 50, ServerPID: os.Getpid()})
	if c.ServerCPUSeconds == nil || c.ServerCPUUSPerUpgrade == nil || c.ConnsUp != 50 ||
		*c.ServerCPUUSPerUpgrade != *c.ServerCPUSeconds*1e6/float64(c.ConnsUp) {
		t.Fatalf("connect: cpu %v, µs/upgrade %v, up %d", c.ServerCPUSeconds, c.ServerCPUUSPerUpgrade, c.ConnsUp)
	}
	var tb strings.Builder
	WriteTable(&tb, c)
	if !strings.Contains(tb.String(), "while connecting") || !strings.Contains(tb.String(), "µs per upgrade") {
		t.Errorf("connect table lacks the CPU per upgrade:\n%s", tb.String())
	}
}

// A sweep runs each rate on fresh connections and judges it; an
// unreachable p99 bound fails every step but the sweep goes on (the server
// keeps up), and a step with deliveries lost stops it.
func TestBroadcastSweep(t *testing.T) {
	_, addr := startTiny(t, nil)
	cfg := Config{Scenario: ScenarioBroadcast, URL: "ws://" + addr + "/broadcast", Conns: 20, Label: "tiny",
		Duration: 500 * time.Millisecond, Warmup: 100 * time.Millisecond, Timeout: time.Minute, ServerPID: os.Getpid()}
	opt := RunOptions{Exe: workerExe()}
	sr, err := RunSweep(context.Background(), cfg, Sweep{Rates: []float64{50, 100}, MaxP99: time.Minute, Pause: time.Millisecond}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Steps) != 2 || len(sr.Runs) != 2 || sr.MaxSustainedRate != 100 || sr.Runs[1].Rate != 100 {
		t.Fatalf("steps %+v, max sustained %v", sr.Steps, sr.MaxSustainedRate)
	}
	for _, st := range sr.Steps {
		if !st.Sustained || st.OfferedDeliveriesPerSec != st.Rate*20 || st.ServerCPUUSPerDelivery == nil {
			t.Fatalf("step %+v", st)
		}
	}
	sr, err = RunSweep(context.Background(), cfg, Sweep{Rates: []float64{50, 100}, MaxP99: time.Nanosecond, Pause: time.Millisecond}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Steps) != 2 || sr.Steps[0].Sustained || !strings.Contains(sr.Steps[0].Why, "p99") || sr.MaxSustainedRate != 0 || sr.MaxKeptUpRate != 100 {
		t.Fatalf("steps %+v, max sustained %v, kept up %v", sr.Steps, sr.MaxSustainedRate, sr.MaxKeptUpRate)
	}
	// A server that drops deliveries does not keep up: the sweep stops at once.
	_, lossy := startTiny(t, func(s *tinyServer) { s.dropNth = 7 })
	cfg.URL = "ws://" + lossy + "/broadcast"
	sr, err = RunSweep(context.Background(), cfg, Sweep{Rates: []float64{50, 100}, Pause: time.Millisecond}, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(sr.Steps) != 1 || sr.Steps[0].KeptUp || !strings.Contains(sr.Steps[0].Why, "lost") || sr.MaxKeptUpRate != 0 {
		t.Fatalf("steps %+v", sr.Steps)
	}
}
