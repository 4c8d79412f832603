//go:build linux

package bench

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Two linked test servers stand for two nodes of a cluster: subscribers
// spread over both, the publisher on the second; every publication must
// reach every subscriber on either node, and each node's share must be
// reported.
func TestBroadcastAcrossNodes(t *testing.T) {
	a, addrA := startTiny(t, nil)
	b, addrB := startTiny(t, nil)
	linkTiny(a, b)
	urlA, urlB := "ws://"+addrA+"/ws", "ws://"+addrB+"/ws"
	cfg := Config{Scenario: ScenarioBroadcast, Mode: ModeWS, URL: urlA, Nodes: []string{urlB}, PublishURL: urlB,
		Conns: 41, Procs: 2, Pipeline: 4, CPUProcs: []CPUProc{{Label: "test servers", PID: os.Getpid()}}}
	res := quickRun(t, cfg)
	if res.Subscribers != 41 || res.Lost != 0 || res.Duplicated != 0 || res.Errors != 0 || res.Published == 0 ||
		res.Totals.Unique != 41*res.Published {
		t.Fatalf("subs %d lost %d dup %d published %d unique %d %v",
			res.Subscribers, res.Lost, res.Duplicated, res.Published, res.Totals.Unique, res.ErrorReasons)
	}
	// The publisher talked to B only.
	if got := b.published.Load(); got != int64(res.Published) || a.published.Load() != 0 {
		t.Fatalf("publishes seen by A %d, by B %d; wsbench published %d", a.published.Load(), got, res.Published)
	}
	if res.PublishURL != urlB {
		t.Fatalf("publish_url %q, want %q", res.PublishURL, urlB)
	}
	// Round robin over both workers: 21 on A, 20 on B, as each node counted.
	if len(res.Nodes) != 2 || res.Nodes[0].URL != urlA || res.Nodes[1].URL != urlB {
		t.Fatalf("nodes %+v", res.Nodes)
	}
	if res.Nodes[0].Subscribers != 21 || res.Nodes[1].Subscribers != 20 {
		t.Fatalf("subscribers per node %d, %d; want 21, 20", res.Nodes[0].Subscribers, res.Nodes[1].Subscribers)
	}
	if a.wsSubscribers() != 0 || b.wsSubscribers() != 0 {
		t.Fatal("the run ended with subscribers still connected")
	}
	var sum uint64
	for _, n := range res.Nodes {
		if n.LatencyMs.Count == 0 || n.DeliveriesPerSec <= 0 {
			t.Fatalf("node %s: %+v", n.URL, n)
		}
		sum += n.LatencyMs.Count
	}
	// Each delivery measured is counted on exactly one node, and the
	// nodes' rates add up to the run's.
	if sum != res.LatencyMs.Count {
		t.Fatalf("per-node latency samples %d, all %d", sum, res.LatencyMs.Count)
	}
	if d := res.Nodes[0].DeliveriesPerSec + res.Nodes[1].DeliveriesPerSec - res.DeliveriesPerSec; d > 1e-6*res.DeliveriesPerSec || d < -1e-6*res.DeliveriesPerSec {
		t.Fatalf("nodes' deliveries/s %v + %v, run's %v", res.Nodes[0].DeliveriesPerSec, res.Nodes[1].DeliveriesPerSec, res.DeliveriesPerSec)
	}
	if len(res.ServerCPU) != 1 || res.ServerCPU[0].PID != os.Getpid() || res.ServerCPU[0].CPUSeconds < 0 {
		t.Fatalf("server cpu %+v", res.ServerCPU)
	}
	var tbl strings.Builder
	WriteTable(&tbl, res)
	for _, want := range []string{"publisher", urlB, "21 subscribers", "20 subscribers", "cpu test servers"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
}

// Without --publish-url the publisher goes to the first URL; a single URL
// reports no per-node breakdown.
func TestBroadcastPublisherDefaultsToFirstURL(t *testing.T) {
	a, addrA := startTiny(t, nil)
	b, addrB := startTiny(t, nil)
	linkTiny(a, b)
	res := quickRun(t, Config{Scenario: ScenarioBroadcast, Mode: ModeWS, URL: "ws://" + addrA + "/ws", Nodes: []string{"ws://" + addrB + "/ws"}, Conns: 10, Rate: 100})
	if res.Lost != 0 || res.Errors != 0 || a.published.Load() == 0 || b.published.Load() != 0 {
		t.Fatalf("lost %d publishes at A %d at B %d %v", res.Lost, a.published.Load(), b.published.Load(), res.ErrorReasons)
	}
	if res.Nodes[0].Subscribers != 5 || res.Nodes[1].Subscribers != 5 {
		t.Fatalf("nodes %+v", res.Nodes)
	}
	res = quickRun(t, Config{Scenario: ScenarioBroadcast, Mode: ModeWS, URL: "ws://" + addrA + "/ws", Conns: 4, Rate: 100})
	if res.Nodes != nil || res.Errors != 0 {
		t.Fatalf("one URL: nodes %+v %v", res.Nodes, res.ErrorReasons)
	}
}

func TestNodeConfig(t *testing.T) {
	const a, b, c = "ws://127.0.0.1:1/ws", "ws://127.0.0.1:2/ws", "ws://127.0.0.1:3/ws"
	for _, tc := range []struct {
		cfg                     Config
		urls, subs              []string
		pub                     int
		publishURL, apiURL, err string
	}{
		{cfg: Config{URL: a}, urls: []string{a}, subs: []string{a}, pub: 0, publishURL: a},
		{cfg: Config{URL: a, Nodes: []string{b}}, urls: []string{a, b}, subs: []string{a, b}, pub: 0, publishURL: a},
		{cfg: Config{URL: a, Nodes: []string{b}, PublishURL: b}, urls: []string{a, b}, subs: []string{a, b}, pub: 1, publishURL: b},
		// A publisher on a node without subscribers.
		{cfg: Config{URL: a, Nodes: []string{b}, PublishURL: c}, urls: []string{a, b, c}, subs: []string{a, b}, pub: 2, publishURL: c},
		{cfg: Config{URL: a, Nodes: []string{b}, PublishURL: b, Publish: PublishHTTP, APIKey: "k"}, urls: []string{a, b}, subs: []string{a, b}, pub: 1,
			publishURL: b, apiURL: "http://127.0.0.1:2/api/publish"},
		{cfg: Config{URL: a, Nodes: []string{a}}, err: "given twice"},
		{cfg: Config{URL: a, Nodes: []string{"ws://192.0.2.1/ws"}}, err: "loopback"},
		{cfg: Config{URL: a, PublishURL: "ws://192.0.2.1/ws"}, err: "--publish-url"},
		{cfg: Config{URL: a, Nodes: make([]string, MaxNodes)}, err: "at most"},
	} {
		cfg := tc.cfg
		cfg.Scenario, cfg.Mode = ScenarioBroadcast, ModeWS
		got, err := cfg.withDefaults()
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: %v", tc.cfg, err)
			continue
		}
		us := got.URLs()
		if !reflect.DeepEqual(us, tc.urls) || !reflect.DeepEqual(got.SubscriberURLs(), tc.subs) || got.pubTarget(us) != tc.pub ||
			got.PublishURL != tc.publishURL || (tc.apiURL != "" && got.APIURL != tc.apiURL) {
			t.Errorf("%+v: urls %v subs %v pub %d publish %q api %q", tc.cfg, us, got.SubscriberURLs(), got.pubTarget(us), got.PublishURL, got.APIURL)
		}
	}
	// Other scenarios take neither.
	for _, cfg := range []Config{
		{Scenario: ScenarioEcho, URL: a, Nodes: []string{b}},
		{Scenario: ScenarioEcho, URL: a, PublishURL: b},
		{Scenario: ScenarioStorm, URL: a, Nodes: []string{b}},
	} {
		if _, err := cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), "broadcast only") {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
	// The storm's targets are unchanged: URL, then Fallback.
	st, err := Config{Scenario: ScenarioStorm, URL: a, Fallback: []string{b, c}}.withDefaults()
	if err != nil || !reflect.DeepEqual(st.URLs(), []string{a, b, c}) {
		t.Fatalf("storm urls %v %v", st.URLs(), err)
	}
}

func TestSubscriberTargetRoundRobin(t *testing.T) {
	// Two workers of 5 and 4 subscribers over three URLs: 9 subscribers,
	// 3 per URL, counted across the workers.
	count := make([]int, 3)
	for _, w := range []*worker{{idBase: 0, spread: 3}, {idBase: 5, spread: 3}} {
		n := 5 - w.idBase/5
		for range n {
			count[w.subscriberTarget()]++
		}
	}
	if !reflect.DeepEqual(count, []int{3, 3, 3}) {
		t.Fatalf("subscribers per URL %v", count)
	}
	if (&worker{spread: 1}).subscriberTarget() != 0 {
		t.Fatal("one URL: target must be 0")
	}
}

func TestCPUMeterOwnProcess(t *testing.T) {
	m := &cpuMeter{procs: []CPUProc{{Label: "me", PID: os.Getpid()}}}
	if err := m.begin(); err != nil {
		t.Fatal(err)
	}
	// Burn CPU until the kernel has charged at least 5 ticks (bounded).
	t0, _ := procCPUTicks(os.Getpid())
	deadline := time.Now().Add(10 * time.Second)
	x := 0
	for time.Now().Before(deadline) {
		for i := range 1_000_000 {
			x += i
		}
		if v, _ := procCPUTicks(os.Getpid()); v-t0 >= 5 {
			break
		}
	}
	ps, err := m.end()
	if err != nil {
		t.Fatal(err, x)
	}
	if len(ps) != 1 || ps[0].CPUSeconds < 0.05 || ps[0].Cores <= 0 {
		t.Fatalf("%+v", ps)
	}
	perDelivery(ps, 1000)
	if want := ps[0].Cores / 1000 * 1e6; ps[0].USPerDelivery != want {
		t.Fatalf("µs per delivery %v, want %v", ps[0].USPerDelivery, want)
	}
	// A process that is gone is an error, not a zero.
	m = &cpuMeter{procs: []CPUProc{{Label: "gone", PID: 1 << 30}}}
	if err := m.begin(); err == nil {
		t.Fatal("no error for a missing process")
	}
}
