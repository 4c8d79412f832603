package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/wsdhq/wsd/client"
)

const (
	paceClients = 2000
	paceSpread  = 5 * time.Second
	// b takes at most this many upgrades per second (bursts of as many):
	// the paced reconnects (~400/s) pass; 2,000 at once would not.
	paceRate = 1000
)

// pacedClient records what one Go client went through.
type pacedClient struct {
	c *client.Client

	mu          sync.Mutex
	connects    []time.Time // when OnState reported Connected
	disconnects []error
}

// A wsd holding 2,000 clients is stopped with --drain-spread 5s: each client
// gets 1012 and a hint of its own, waits it out and reconnects to the second
// wsd (its other endpoint). From b's side (its upgrade counter, sampled
// every 50 ms) the reconnects arrive spread over the window, none is
// refused, and none before the hint its client was sent.
func TestDrainSpreadPacesReconnects(t *testing.T) {
	a := startWSD(t, "--drain-spread", paceSpread.String(), "--loops", "2", "--log-level", "warn")
	b := startWSD(t, "--max-accept-rate", strconv.Itoa(paceRate), "--loops", "2", "--log-level", "warn")

	var connected atomic.Int64
	clients := make([]*pacedClient, paceClients)
	for i := range clients {
		pc := &pacedClient{}
		c, err := client.New("ws://"+a.Addr+"/ws", client.Options{
			Endpoints:    []string{"ws://" + b.Addr + "/ws"},
			PingInterval: -1,
			OnState: func(s client.State, err error) {
				now := time.Now()
				pc.mu.Lock()
				defer pc.mu.Unlock()
				switch s {
				case client.StateConnected:
					pc.connects = append(pc.connects, now)
					connected.Add(1)
				case client.StateDisconnected:
					pc.disconnects = append(pc.disconnects, err)
				}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		pc.c = c
		clients[i] = pc
	}
	t.Cleanup(func() { closeClients(clients) })
	waitUntil(t, 60*time.Second, "every client on a", func() bool { return connected.Load() == paceClients })

	// Sample b's upgrade counter from before the SIGTERM until every
	// client is back.
	samples := make(chan []upgradeSample, 1)
	stopSampling := make(chan struct{})
	go func() { samples <- sampleUpgrades(b.Addr, stopSampling) }()
	sigterm := time.Now()
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, paceSpread+30*time.Second, "every client on b", func() bool { return connected.Load() == 2*paceClients })
	close(stopSampling)
	curve := <-samples
	if err := a.cmd.Wait(); err != nil {
		t.Errorf("a after SIGTERM: %v", err)
	}

	due := make([]time.Duration, 0, paceClients) // hint per client, from the SIGTERM
	for i, pc := range clients {
		pc.mu.Lock()
		connects, disconnects := pc.connects, pc.disconnects
		pc.mu.Unlock()
		var ce *client.CloseError
		if len(connects) != 2 {
			t.Fatalf("client %d connected %d times, want 2", i, len(connects))
		}
		if len(disconnects) != 1 || !errors.As(disconnects[0], &ce) || ce.Code != 1012 {
			t.Fatalf("client %d: disconnects %v, want one 1012 and no refused attempt", i, disconnects)
		}
		hint, ok := ce.RetryHint()
		if !ok || hint < 0 || hint >= paceSpread {
			t.Fatalf("client %d: close reason %q, want a hint in [0, %v)", i, ce.Reason, paceSpread)
		}
		// The close was read after the SIGTERM and the reconnect waited
		// the hint after that: a reconnect reported earlier broke it.
		if back := connects[1].Sub(sigterm); back < hint {
			t.Fatalf("client %d reconnected %v after the SIGTERM, before its hint of %v", i, back, hint)
		}
		due = append(due, hint)
	}
	slices.Sort(due)
	checkCurve(t, curve, sigterm, due)

	m := getMetrics(t, b.Addr)
	for _, refused := range []string{`wsd_closes_total{cause="accept_rate"} 0`, `wsd_closes_total{cause="over_capacity"} 0`} {
		if !regexp.MustCompile(regexp.QuoteMeta(refused) + `\n`).MatchString(m) {
			t.Errorf("b refused upgrades: /metrics lacks %q", refused)
		}
	}
}

// checkCurve asserts, from b's own counter, that the reconnects were spread
// over the window and that none came before its hint: at every sample, b
// cannot have upgraded more clients than had hints expired by then.
func checkCurve(t *testing.T, curve []upgradeSample, sigterm time.Time, due []time.Duration) {
	t.Helper()
	if len(curve) < 10 {
		t.Fatalf("only %d samples of b's counter", len(curve))
	}
	buckets := map[int]int{}
	var first, last time.Duration = -1, 0
	for i, s := range curve {
		at := s.at.Sub(sigterm)
		back := s.upgraded // b served nobody before
		if expired := countAtMost(due, at); back > expired {
			t.Fatalf("at %v after the SIGTERM b had %d reconnects, but only %d hints had expired", at, back, expired)
		}
		prev := 0
		if i > 0 {
			prev = curve[i-1].upgraded
		}
		if s.upgraded == prev {
			continue
		}
		buckets[int(at/time.Second)] += s.upgraded - prev
		if first < 0 {
			first = at
		}
		last = at
	}
	total := curve[len(curve)-1].upgraded
	if total != len(due) {
		t.Fatalf("b upgraded %d clients while sampled, want %d", total, len(due))
	}
	var top int
	for _, n := range buckets {
		top = max(top, n)
	}
	t.Logf("reconnects per second after the SIGTERM: %v; from %v to %v", buckets, first, last)
	if top*100 > 35*total {
		t.Errorf("one second took %d of %d reconnects (> 35%%): not spread (%v)", top, total, buckets)
	}
	if span := last - first; span < paceSpread*6/10 {
		t.Errorf("reconnects spanned %v, less than 60%% of the %v window", span, paceSpread)
	}
}

// countAtMost is how many of the sorted ds are ≤ d.
func countAtMost(ds []time.Duration, d time.Duration) int {
	n, _ := slices.BinarySearch(ds, d+1)
	return n
}

type upgradeSample struct {
	at       time.Time // when the answer arrived (the count is from before)
	upgraded int
}

var upgradedRe = regexp.MustCompile(`wsd_handshakes_total\{result="upgraded"\} (\d+)`)

// sampleUpgrades reads addr's upgrade counter every 50 ms until stop, and
// once more after it.
func sampleUpgrades(addr string, stop <-chan struct{}) []upgradeSample {
	var out []upgradeSample
	hc := &http.Client{Timeout: 5 * time.Second}
	sample := func() {
		resp, err := hc.Get("http://" + addr + "/metrics")
		if err != nil {
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := upgradedRe.FindSubmatch(body); m != nil {
			n, _ := strconv.Atoi(string(m[1]))
			out = append(out, upgradeSample{at: time.Now(), upgraded: n})
		}
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		sample()
		select {
		case <-stop:
			sample()
			return out
		case <-tick.C:
		}
	}
}

func getMetrics(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// closeClients closes every client, in parallel.
func closeClients(clients []*pacedClient) {
	var wg sync.WaitGroup
	for _, pc := range clients {
		if pc == nil || pc.c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = pc.c.Close(ctx)
		}()
	}
	wg.Wait()
}

// waitUntil polls cond every 10 ms, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
	}
}
