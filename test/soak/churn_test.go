package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

const (
	soakSubscribers = 50 // long-lived /ws subscribers that count offsets
	soakProbes      = 10 // long-lived /echo clients measuring the p99
)

// churnConfig is one soak's shape: $SOAK long (default 60 s, 15 s under
// -race), $SOAK_RATE connects+disconnects per second (default 1,000, 200
// under -race: the instrumented driver and daemon cannot do more on 2 cores).
func churnConfig(t *testing.T) (time.Duration, int) {
	dur, rate := 60*time.Second, 1000
	if raceBuild {
		dur, rate = 15*time.Second, 200
	}
	dur = envDuration(t, "SOAK", dur)
	if v := os.Getenv("SOAK_RATE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("SOAK_RATE=%q: want a positive integer", v)
		}
		rate = n
	}
	return dur, rate
}

// TestChurnSoak runs wsd as a process under connection churn for $SOAK:
// short-lived /echo and /ws clients (polite closes and TCP resets), echo
// probes, a 20/s API feed to long-lived subscribers, and abusive clients
// (garbage requests, 64 MiB frame headers, bad JSON at line rate, readers
// that stop reading). Afterwards wsd's goroutines, fds and RSS must be back
// within 10% (goroutines and fds: or +10, whichever is larger) of their
// values after the warm-up, and every long-lived subscriber must hold every
// publication once. The timeline (conns, RSS, echo p99, closes by cause) is
// written as HTML and JSON to the logged directory.
func TestChurnSoak(t *testing.T) {
	dur, rate := churnConfig(t)
	d := startWSD(t)
	s := &soak{t: t, d: d, dl: &dialer{}, rate: rate}
	ctx, cancel := context.WithTimeout(context.Background(), dur+10*time.Minute)
	defer cancel()
	s.ctx = ctx

	subs := s.startSubscribers()
	stopProbes := s.startProbes()
	var published atomic.Int64
	var lastOff atomic.Uint64
	stopFeed := make(chan struct{})
	feedDone := make(chan error, 1)
	go func() { feedDone <- feed(ctx, d, "soak", "", 50*time.Millisecond, stopFeed, &published, &lastOff) }()

	// Warm-up: the same load, so that pools, buffers and the heap reach
	// their working size before the baseline is taken.
	warm := min(max(dur/6, 5*time.Second), 30*time.Second)
	s.churn(warm, nil)
	base := s.settle("after warm-up")
	t.Logf("baseline after %v of warm-up: %s", warm, base)

	tl := &timeline{Rate: rate, Duration: dur.String(), Baseline: base}
	res := s.churn(dur, tl)
	t.Logf("churn: %s", res)

	close(stopFeed)
	if err := <-feedDone; err != nil {
		t.Fatalf("feed: %v", err)
	}
	stopProbes()
	s.checkSubscribers(subs, lastOff.Load(), int(published.Load()))

	end, ok := s.recovered(base)
	tl.End = end
	dir := artifactDir(t)
	if err := tl.write(dir); err != nil {
		t.Error(err)
	}
	t.Logf("timeline: %s", filepath.Join(dir, "soak.html"))
	t.Logf("end: %s (baseline %s)", end, base)
	if !ok {
		t.Errorf("wsd did not come back within 60 s: %s; baseline %s (bound: goroutines/fds ≤ max(+10%%, +10), RSS ≤ +10%%)", end, base)
	}
	if res.achieved < 0.5*float64(rate) {
		t.Logf("note: achieved %.0f of %d connects/s (the box could not do more; the dispatcher skips what does not fit)", res.achieved, rate)
	}
	if res.completed == 0 || float64(res.failed) > 0.01*float64(res.completed+res.failed) {
		t.Errorf("churn: %d of %d connections failed (want < 1%%); first error: %s", res.failed, res.completed+res.failed, res.firstErr)
	}
	for _, a := range s.abusers() {
		if res.abuseOK[a.name] == 0 {
			t.Errorf("abusive %s: never got the expected answer (%d unexpected)", a.name, res.abuseBad[a.name])
		}
	}
}

// soak is one churn run's driver state.
type soak struct {
	t    *testing.T
	ctx  context.Context
	d    *daemon
	dl   *dialer
	rate int

	mu      sync.Mutex
	samples []time.Duration // echo RTTs since the last timeline point
}

func (s *soak) addRTT(d time.Duration) {
	s.mu.Lock()
	s.samples = append(s.samples, d)
	s.mu.Unlock()
}

// takeP99 returns the p99 of the RTTs since the last call and resets them.
func (s *soak) takeP99() float64 {
	s.mu.Lock()
	v := s.samples
	s.samples = nil
	s.mu.Unlock()
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	return float64(v[min(len(v)-1, len(v)*99/100)]) / 1e6
}

func (s *soak) startSubscribers() []*feedSub {
	subs := make([]*feedSub, soakSubscribers)
	h := new(hist)
	for i := range subs {
		c, off, err := subscribe(s.ctx, s.dl, s.d.addr, "soak", 0)
		if err != nil {
			s.t.Fatalf("subscriber %d: %v", i, err)
		}
		subs[i] = &feedSub{c: c, first: off, done: make(chan struct{})}
		go subs[i].readFeed(h)
	}
	s.t.Cleanup(func() {
		for _, sub := range subs {
			sub.c.Close()
			<-sub.done
		}
	})
	return subs
}

// checkSubscribers waits (60 s at most) for every long-lived subscriber to
// reach the last offset, then requires each to have got every publication
// after its subscribe exactly once.
func (s *soak) checkSubscribers(subs []*feedSub, final uint64, published int) {
	deadline := time.Now().Add(60 * time.Second)
	for _, sub := range subs {
		for sub.last.Load() < final && sub.err.Load() == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i, sub := range subs {
		if sub.last.Load() != final || sub.gaps.Load() != 0 || sub.dups.Load() != 0 || sub.err.Load() != nil {
			e := "open"
			if p := sub.err.Load(); p != nil {
				e = (*p).Error()
			}
			s.t.Errorf("subscriber %d: offsets %d..%d of %d, %d missed, %d duplicated (%s)",
				i, sub.first+1, sub.last.Load(), final, sub.gaps.Load(), sub.dups.Load(), e)
		}
	}
	s.t.Logf("feed: %d publications at 20/s; %d long-lived subscribers each got offsets %d..%d contiguous",
		published, len(subs), subs[0].first+1, final)
}

// startProbes runs soakProbes echo clients, 20 round trips/s each.
func (s *soak) startProbes() (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range soakProbes {
		c, err := wsDial(s.ctx, s.dl, s.d.addr, "/echo", 0)
		if err != nil {
			s.t.Fatalf("probe %d: %v", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			msg := bytes.Repeat([]byte("p"), 1024)
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for range 1 << 24 {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				_ = c.SetDeadline(time.Now().Add(30 * time.Second))
				t0 := time.Now()
				if err := c.write(ws.OpBinary, msg); err != nil {
					s.t.Errorf("probe: %v", err)
					return
				}
				if _, _, err := c.read(); err != nil {
					s.t.Errorf("probe: %v", err)
					return
				}
				s.addRTT(time.Since(t0))
			}
		}()
	}
	var once sync.Once
	stop = func() { once.Do(func() { close(done); wg.Wait() }) }
	s.t.Cleanup(stop)
	return stop
}

// churnResult sums one churn period.
type churnResult struct {
	completed, failed, skipped int64
	achieved                   float64
	firstErr                   string
	abuseOK, abuseBad          map[string]int64
}

func (r churnResult) String() string {
	return fmt.Sprintf("%d connections completed (%.0f/s), %d failed, %d skipped (dispatcher full); abusive ok/unexpected: %v / %v",
		r.completed, r.achieved, r.failed, r.skipped, r.abuseOK, r.abuseBad)
}

// churn runs short-lived clients at s.rate per second (at most 256 in
// flight: what does not fit is skipped and shows as a lower achieved rate)
// and the abusive clients, for dur. With tl set, it samples a timeline
// point every second.
func (s *soak) churn(dur time.Duration, tl *timeline) churnResult {
	var completed, failed, skipped atomic.Int64
	var firstErr atomic.Pointer[string]
	abuse := newAbuseCounts()
	sem := make(chan struct{}, 256)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	start := time.Now()

	// The abusive clients: each kind its own paced loop.
	for _, a := range s.abusers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(a.every)
			defer tick.Stop()
			for range 1 << 24 {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				abuse.record(a.name, a.run())
			}
		}()
	}
	if tl != nil {
		wg.Add(1)
		go func() { defer wg.Done(); s.sample(tl, start, stop, &completed) }()
	}

	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	end := time.After(dur)
	var owed float64
	seq := 0
loop:
	for range 1 << 30 {
		select {
		case <-end:
			break loop
		case <-tick.C:
		}
		owed += float64(s.rate) / 100
		for ; owed >= 1; owed-- {
			select {
			case sem <- struct{}{}:
			default:
				skipped.Add(1)
				continue
			}
			seq++
			kind := seq % 20
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := s.shortLived(kind); err != nil {
					failed.Add(1)
					msg := err.Error()
					firstErr.CompareAndSwap(nil, &msg)
					return
				}
				completed.Add(1)
			}()
		}
	}
	close(stop)
	wg.Wait()
	r := churnResult{completed: completed.Load(), failed: failed.Load(), skipped: skipped.Load(),
		achieved: float64(completed.Load()) / time.Since(start).Seconds()}
	if p := firstErr.Load(); p != nil {
		r.firstErr = *p
	}
	r.abuseOK, r.abuseBad = abuse.snapshot()
	return r
}

// shortLived is one churn connection: 12 in 20 echo once and close
// politely, 5 subscribe on /ws and close politely, 3 reset the TCP
// connection right after the upgrade.
func (s *soak) shortLived(kind int) error {
	ctx, cancel := context.WithTimeout(s.ctx, 30*time.Second)
	defer cancel()
	switch {
	case kind < 12:
		c, err := wsDial(ctx, s.dl, s.d.addr, "/echo", 0)
		if err != nil {
			return err
		}
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := c.write(ws.OpText, []byte("churn")); err != nil {
			c.Close()
			return err
		}
		if _, msg, err := c.read(); err != nil || string(msg) != "churn" {
			c.Close()
			return fmt.Errorf("echo: %q, %v", msg, err)
		}
		return c.closeGraceful(30 * time.Second)
	case kind < 17:
		c, _, err := subscribe(ctx, s.dl, s.d.addr, "soak", 0)
		if err != nil {
			return err
		}
		return c.closeGraceful(30 * time.Second)
	default:
		c, err := wsDial(ctx, s.dl, s.d.addr, "/echo", 0)
		if err != nil {
			return err
		}
		if tc, ok := c.Conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST instead of FIN: the peer_gone path
		}
		return c.Close()
	}
}

// abuser is one kind of abusive client, run every `every`; run reports
// whether wsd answered as it should.
type abuser struct {
	name  string
	every time.Duration
	run   func() bool
}

func (s *soak) abusers() []abuser {
	return []abuser{
		{"garbage", 50 * time.Millisecond, s.garbage},
		{"frame_64MiB", 50 * time.Millisecond, s.hugeFrame},
		{"bad_json", 100 * time.Millisecond, s.badJSON},
		{"slow_reader", 500 * time.Millisecond, s.slowReader},
	}
}

// garbage sends bytes that are no HTTP request: wsd must answer 400 (or
// at least close).
func (s *soak) garbage() bool {
	c, err := s.dl.dial(s.ctx, s.d.addr, 0)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write([]byte("\x16\x03\x01\x00\xff garbage \x00\xff\r\n\r\n")); err != nil {
		return false
	}
	b, _ := io.ReadAll(io.LimitReader(c, 4096))
	return bytes.HasPrefix(b, []byte("HTTP/1.1 400")) || len(b) == 0
}

// hugeFrame announces a 64 MiB binary frame on /echo: 1009 before any of
// it is buffered.
func (s *soak) hugeFrame() bool {
	c, err := wsDial(s.ctx, s.dl, s.d.addr, "/echo", 0)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	h := ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 64 << 20, Masked: true, Mask: [4]byte{1, 2, 3, 4}}
	if err := ws.WriteHeader(c.Conn, h); err != nil {
		return false
	}
	c.Write(make([]byte, 1024))
	_, _, err = c.read()
	return closeCode(err) == 1009
}

// badJSON sends 200 lines of broken JSON at once on /ws: error replies,
// then the rate limit's 1008.
func (s *soak) badJSON() bool {
	c, err := wsDial(s.ctx, s.dl, s.d.addr, "/ws", 0)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	var buf bytes.Buffer
	for range 200 {
		ws.WriteFrame(&buf, ws.MaskFrame(ws.NewTextFrame([]byte(`{"op":"subscribe","channel":`))))
	}
	if _, err := c.Write(buf.Bytes()); err != nil {
		return false
	}
	for range 1000 {
		if _, _, err = c.read(); err != nil {
			break
		}
	}
	return closeCode(err) == 1008
}

// slowReader floods /echo with 64 KiB messages from a 4 KiB receive window
// and never reads: wsd must close it as a slow consumer (the socket is
// reset or closed; writes fail) instead of queueing without bound.
func (s *soak) slowReader() bool {
	c, err := wsDial(s.ctx, s.dl, s.d.addr, "/echo", 4096)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(20 * time.Second))
	msg := ws.MaskFrame(ws.NewBinaryFrame(make([]byte, 64<<10)))
	frame, _ := ws.CompileFrame(msg)
	for range 32 << 20 / len(frame) { // 32 MiB at most: well past 4 MiB sndbuf + 4 MiB queue
		if _, err := c.Write(frame); err != nil {
			return true // wsd closed it
		}
	}
	// Everything was written: look for the close behind the echoes.
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReaderSize(c.Conn, 64<<10)
	c.br = br
	for range 1 << 12 {
		if _, _, err = c.read(); err != nil {
			break
		}
	}
	return closeCode(err) == 1008 || errors.Is(err, io.EOF)
}

// abuseCounts counts abusive clients' outcomes by kind; safe for
// concurrent use.
type abuseCounts struct {
	mu      sync.Mutex
	ok, bad map[string]int64
}

func newAbuseCounts() *abuseCounts {
	return &abuseCounts{ok: map[string]int64{}, bad: map[string]int64{}}
}

func (a *abuseCounts) record(kind string, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ok {
		a.ok[kind]++
	} else {
		a.bad[kind]++
	}
}

func (a *abuseCounts) snapshot() (map[string]int64, map[string]int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps(a.ok), maps(a.bad)
}

func maps(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// settle waits (30 s at most) until only the long-lived clients are
// connected and RSS and goroutines hold still for two seconds, and returns
// the resources then.
func (s *soak) settle(when string) resources {
	deadline := time.Now().Add(30 * time.Second)
	var prev resources
	var conns float64
	stable := 0
	for time.Now().Before(deadline) {
		time.Sleep(time.Second) // sampling interval; the condition below is what is waited for
		m, err := s.d.metrics()
		if err != nil {
			s.t.Fatal(err)
		}
		r, err := s.d.resources()
		if err != nil {
			s.t.Fatal(err)
		}
		// wsd_connections also counts this test's keep-alive HTTP
		// connections (/metrics, /api/publish, pprof): up to 8 of them.
		prevConns := conns
		conns = m["wsd_connections"]
		if conns == prevConns && int(conns) <= soakSubscribers+soakProbes+8 && r.Goroutines == prev.Goroutines &&
			absDiff(r.RSS, prev.RSS) < prev.RSS/50 {
			if stable++; stable >= 2 {
				return r
			}
		} else {
			stable = 0
		}
		prev = r
	}
	s.t.Logf("%s: wsd did not settle within 30 s (%.0f connections, want %d + ≤ 8 HTTP); using %s", when, conns, soakSubscribers+soakProbes, prev)
	s.logSockets()
	return prev
}

// logSockets logs wsd's TCP sockets other than ESTABLISHED ones with
// the long-lived clients, to tell what did not close.
func (s *soak) logSockets() {
	_, port, _ := net.SplitHostPort(s.d.addr)
	out, err := exec.Command("ss", "-tnoi", "sport = :"+port).CombinedOutput()
	if err != nil {
		s.t.Logf("ss: %v", err)
		return
	}
	s.t.Logf("wsd's sockets (ss -tnoi sport = :%s):\n%s", port, out)
}

func absDiff(a, b int64) int64 {
	if a > b {
		return a - b
	}
	return b - a
}

// within reports whether r is back within the bounds around base.
func within(r, base resources) bool {
	slack := func(n int) int { return max(n/10, 10) }
	return r.Goroutines <= base.Goroutines+slack(base.Goroutines) &&
		r.FDs <= base.FDs+slack(base.FDs) &&
		r.RSS <= base.RSS+base.RSS/10
}

// recovered polls (60 s at most) until wsd is back within bounds.
func (s *soak) recovered(base resources) (resources, bool) {
	deadline := time.Now().Add(60 * time.Second)
	var r resources
	for range 600 {
		var err error
		if r, err = s.d.resources(); err != nil {
			s.t.Fatal(err)
		}
		if within(r, base) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling /proc: no event to wait on
	}
	return r, within(r, base)
}

// point is one second of the timeline.
type point struct {
	T          float64            `json:"t"` // seconds since the churn started
	Conns      float64            `json:"conns"`
	RSSMiB     float64            `json:"rss_mib"`
	Goroutines int                `json:"goroutines"`
	FDs        int                `json:"fds"`
	P99ms      float64            `json:"echo_p99_ms"`
	ConnsPerS  float64            `json:"churn_per_s"`
	Closes     map[string]float64 `json:"closes"` // by cause, in this second
}

// timeline is what soak.html and soak.json show.
type timeline struct {
	Rate     int       `json:"target_rate"`
	Duration string    `json:"duration"`
	Baseline resources `json:"baseline"`
	End      resources `json:"end"`
	Points   []point   `json:"points"`
}

// sample appends a point every second until stop.
func (s *soak) sample(tl *timeline, start time.Time, stop <-chan struct{}, completed *atomic.Int64) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	m0, _ := s.d.metrics()
	prevCloses := closes(m0)
	prevDone := int64(0)
	for range 1 << 20 {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		m, err := s.d.metrics()
		if err != nil {
			continue
		}
		r, _ := s.d.resources()
		c := closes(m)
		delta := map[string]float64{}
		for k, v := range c {
			if dv := v - prevCloses[k]; dv > 0 {
				delta[k] = dv
			}
		}
		prevCloses = c
		done := completed.Load()
		tl.Points = append(tl.Points, point{T: time.Since(start).Seconds(), Conns: m["wsd_connections"],
			RSSMiB: float64(r.RSS) / (1 << 20), Goroutines: r.Goroutines, FDs: r.FDs, P99ms: s.takeP99(),
			ConnsPerS: float64(done - prevDone), Closes: delta})
		prevDone = done
	}
}

func (tl *timeline) write(dir string) error {
	j, err := json.MarshalIndent(tl, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "soak.json"), j, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "soak.html"), tl.html(), 0o644)
}
