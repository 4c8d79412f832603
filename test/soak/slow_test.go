package soak

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// slowSize is one slow-consumer run's shape.
type slowSize struct {
	healthy, slow int
	phase         time.Duration // the feed runs at least this long per phase
}

// slowSizes: WSD_SLOW_FULL=1 is the full size (1,000 slow, 10,000
// healthy; needs ~11,000 fds of the 20,000 per process); make test uses
// 100 + 1,000; under -race the driver is instrumented and gets 20 + 100.
func slowSizes(t *testing.T) slowSize {
	switch {
	case os.Getenv("WSD_SLOW_FULL") == "1":
		return slowSize{healthy: 10_000, slow: 1_000, phase: envDuration(t, "WSD_SLOW_PHASE", 20*time.Second)}
	case raceBuild:
		return slowSize{healthy: 100, slow: 20, phase: 3 * time.Second}
	}
	return slowSize{healthy: 1_000, slow: 100, phase: envDuration(t, "WSD_SLOW_PHASE", 10*time.Second)}
}

// TestSlowConsumersAtScale: subscribers that stop reading (4 KiB receive
// windows; they also take a 48 KiB × 20 Hz bulk channel, because wsd's
// kernel send buffer grows to tcp_wmem's 4 MiB before its own queue fills,
// which the 100 Hz feed alone would take minutes to fill) must not cost the healthy subscribers of
// the same 100 Hz feed a single publication; they are closed with 1008
// (wsd's default slow-consumer policy; cmd/wsd has no lossy-drop flag) and
// counted in wsd_slow_consumers_total and wsd_closes_total{cause=
// "slow_consumer"}. The healthy p99 is reported next to a run without slow
// ones, not asserted: on a shared 2-core box it measures the box too.
func TestSlowConsumersAtScale(t *testing.T) {
	size := slowSizes(t)
	// 64 KiB queued per connection = ~230 publications (2.3 s of feed) of
	// slack for a healthy reader, while a stopped one is over it within
	// seconds.
	// A detected slow one waits up to --close-timeout for its reader; the
	// test reads them all once every one is counted, which under -race
	// can take longer than wsd's default 5 s after the first.
	args := []string{"--max-outbound", "64KiB", "--close-timeout", "60s"}
	// For comparisons (docs/bench/slow-consumers.md): WSD_SLOW_SNDBUF is
	// wsd's --socket-send-buffer (0: the kernel's autotuning; unset: wsd's
	// default), WSD_SLOW_BULK=0 leaves out the bulk channel (the 100 Hz
	// feed alone must fill the slow ones' buffers) and WSD_SLOW_DETECT is
	// how long after the phase wsd may take to count them (90 s).
	if v, ok := os.LookupEnv("WSD_SLOW_SNDBUF"); ok {
		args = append(args, "--socket-send-buffer", v)
	}
	d := startWSD(t, args...)
	dl := &dialer{}
	run := feedRun{phase: size.phase, bulk: os.Getenv("WSD_SLOW_BULK") != "0",
		detect: envDuration(t, "WSD_SLOW_DETECT", 90*time.Second)}

	quiet := runFeed(t, d, dl, "feed-quiet", size.healthy, 0, run)
	loaded := runFeed(t, d, dl, "feed-slow", size.healthy, size.slow, run)
	t.Logf("healthy %d, slow %d, 100 Hz, ~280-byte publications; wsd %v, bulk channel %v", size.healthy, size.slow, args, run.bulk)
	t.Logf("without slow consumers: %s", quiet)
	t.Logf("with %d slow consumers:   %s", size.slow, loaded)
	if quiet.p99 > 0 {
		t.Logf("p99 ratio loaded/quiet: %.2f", float64(loaded.p99)/float64(quiet.p99))
	}
}

// feedRun is how a phase runs.
type feedRun struct {
	phase  time.Duration // the feed runs at least this long
	bulk   bool          // the slow ones also take 48 KiB × 20 Hz
	detect time.Duration // then on until wsd counted every slow one, at most this long
}

// feedResult is one phase's outcome.
type feedResult struct {
	published       int
	rate            float64 // publications/s achieved
	delivered       uint64
	p50, p99        time.Duration
	slowClosed1008  int     // slow consumers that read the 1008 close frame
	slowCut         int     // slow consumers whose connection wsd cut after its close timeout
	slowMetric      float64 // wsd_slow_consumers_total delta
	slowCauseMetric float64 // wsd_closes_total{cause="slow_consumer"} delta
	detectAfter     time.Duration
	// TCP kernel memory (/proc/net/sockstat "mem", pages, box-wide)
	// before the phase and its highest sample (every 200 ms) while the
	// feed ran.
	memBefore, memPeak int64
	// slowQueuedPeak is the highest sum, over the slow consumers, of what
	// wsd's side of their connections had queued in the kernel (not yet
	// acknowledged: /proc/net/tcp tx_queue), sampled like memPeak.
	slowQueuedPeak int64
	slowQueuedMax  int64 // the most one of them held
}

func (r feedResult) String() string {
	return fmt.Sprintf("%d publications (%.0f/s), %d deliveries, p50 %v, p99 %v; slow: %d read the 1008, %d cut after the close timeout (metrics: slow_consumers +%.0f, closes{slow_consumer} +%.0f, all within %v of the feed's start); TCP kernel memory %d pages before, peak %d (+%.1f MiB); slow ones' kernel send queues at wsd: peak %.1f MiB in all, %.0f KiB the most in one",
		r.published, r.rate, r.delivered, r.p50, r.p99, r.slowClosed1008, r.slowCut, r.slowMetric, r.slowCauseMetric, r.detectAfter.Round(100*time.Millisecond),
		r.memBefore, r.memPeak, float64(r.memPeak-r.memBefore)*float64(os.Getpagesize())/(1<<20), float64(r.slowQueuedPeak)/(1<<20), float64(r.slowQueuedMax)/(1<<10))
}

// feedSub is a healthy subscriber's count of what it received.
type feedSub struct {
	c     *wsConn
	first uint64        // the subscribe result's offset: pushes start after it
	last  atomic.Uint64 // highest offset received
	gaps  atomic.Uint64
	dups  atomic.Uint64
	err   atomic.Pointer[error]
	done  chan struct{}

	started bool // readFeed runs (set before it starts)
}

// subscribe opens /ws, subscribes to channel and returns the channel's
// offset at subscribe time.
func subscribe(ctx context.Context, dl *dialer, addr, channel string, rcvbuf int) (*wsConn, uint64, error) {
	c, err := wsDial(ctx, dl, addr, "/ws", rcvbuf)
	if err != nil {
		return nil, 0, err
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.write(1, []byte(`{"id":1,"op":"subscribe","channel":"`+channel+`"}`)); err != nil {
		c.Close()
		return nil, 0, err
	}
	_, reply, err := c.read()
	if err != nil {
		c.Close()
		return nil, 0, err
	}
	off, ok := jsonUint(reply, `"offset":`)
	if !ok || !strings.Contains(string(reply), `"result"`) {
		c.Close()
		return nil, 0, fmt.Errorf("subscribe reply %s", reply)
	}
	_ = c.SetDeadline(time.Time{})
	return c, off, nil
}

// waitConns waits (60 s at most) until wsd holds at most n connections.
func waitConns(t *testing.T, d *daemon, n float64) {
	deadline := time.Now().Add(60 * time.Second)
	var conns float64
	for time.Now().Before(deadline) {
		m, err := d.metrics()
		if err != nil {
			t.Error(err)
			return
		}
		if conns = m["wsd_connections"]; conns <= n {
			return
		}
		time.Sleep(100 * time.Millisecond) // polling /metrics
	}
	t.Errorf("wsd still holds %.0f connections 60 s after the phase (want ≤ %.0f)", conns, n)
}

// subscribeMore subscribes c to one more channel.
func subscribeMore(c *wsConn, channel string) error {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	defer c.SetDeadline(time.Time{})
	if err := c.write(1, []byte(`{"id":2,"op":"subscribe","channel":"`+channel+`"}`)); err != nil {
		return err
	}
	_, reply, err := c.read()
	if err != nil {
		return err
	}
	if !strings.Contains(string(reply), `"result"`) {
		return fmt.Errorf("subscribe reply %s", reply)
	}
	return nil
}

// readFeed counts the pushes of one healthy subscriber until its
// connection ends; latency is now minus the publication's "t".
func (s *feedSub) readFeed(h *hist) {
	defer close(s.done)
	next := s.first + 1
	for range 1 << 30 { // bounded; ends when the test closes the connection
		_, msg, err := s.c.read()
		if err != nil {
			s.err.Store(&err)
			return
		}
		off, ok := jsonUint(msg, `"offset":`)
		if !ok {
			continue
		}
		switch {
		case off < next:
			s.dups.Add(1)
		case off > next:
			s.gaps.Add(off - next)
			fallthrough
		default:
			next = off + 1
			s.last.Store(off)
		}
		if ts, ok := jsonUint(msg, `"t":`); ok {
			h.add(time.Duration(time.Now().UnixNano() - int64(ts)))
		}
	}
}

// parallel runs f(i) for i in [0, n) on at most 64 goroutines.
func parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() { defer wg.Done(); defer func() { <-sem }(); f(i) }()
	}
	wg.Wait()
}

// runFeed subscribes healthy + slow clients to channel, publishes at
// 100 Hz through the API for at least run.phase (and until every slow one
// is counted, at most run.detect more), then checks that every healthy subscriber
// got every publication once, and that the slow ones were closed with 1008.
func runFeed(t *testing.T, d *daemon, dl *dialer, channel string, healthy, slow int, run feedRun) feedResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute+run.detect)
	defer cancel()
	subs := make([]*feedSub, healthy)
	slows := make([]*wsConn, slow)
	var dialErrs atomic.Int64
	var firstErr atomic.Pointer[error]
	connect := func(i int) {
		rcvbuf := 0
		if i >= healthy {
			rcvbuf = 4096
		}
		c, off, err := subscribe(ctx, dl, d.addr, channel, rcvbuf)
		if err == nil && i >= healthy && run.bulk {
			err = subscribeMore(c, channel+"-bulk")
		}
		if err != nil {
			dialErrs.Add(1)
			firstErr.CompareAndSwap(nil, &err)
			return
		}
		if i >= healthy {
			slows[i-healthy] = c
			return
		}
		subs[i] = &feedSub{c: c, first: off, done: make(chan struct{})}
	}
	parallel(healthy+slow, connect)
	// Closed at the end of the phase (and on a Fatal): the next phase
	// must find wsd without them.
	defer func() {
		for _, s := range subs {
			if s != nil {
				s.c.Close()
				if s.done != nil && s.started {
					<-s.done
				}
			}
		}
		for _, c := range slows {
			if c != nil {
				c.Close()
			}
		}
		waitConns(t, d, 100)
	}()
	if n := dialErrs.Load(); n > 0 {
		t.Fatalf("%s: %d of %d subscribers could not subscribe; first error: %v", channel, n, healthy+slow, *firstErr.Load())
	}
	slowKeys := procTCPKeys(t, d.addr, slows)
	h := new(hist)
	for _, s := range subs {
		s.started = true
		go s.readFeed(h)
	}

	m0, err := d.metrics()
	if err != nil {
		t.Fatal(err)
	}
	var res feedResult
	res.memBefore = tcpMemPages(t)
	sampleMem := func() {
		res.memPeak = max(res.memPeak, tcpMemPages(t))
		if slow > 0 {
			sum, one := txQueued(t, slowKeys)
			res.slowQueuedPeak = max(res.slowQueuedPeak, sum)
			res.slowQueuedMax = max(res.slowQueuedMax, one)
		}
	}
	var published atomic.Int64
	var lastOff atomic.Uint64
	stop := make(chan struct{})
	pubDone := make(chan error, 1)
	start := time.Now()
	bulk := ""
	if slow > 0 && run.bulk {
		bulk = channel + "-bulk"
	}
	go func() { pubDone <- feed(ctx, d, channel, bulk, 10*time.Millisecond, stop, &published, &lastOff) }()

	// The feed runs for the phase, and on until wsd has found every slow one
	// (polled every 200 ms). The slow ones are read after that: wsd waits
	// --close-timeout (60 s here) for a closed conn's peer to read its close
	// frame before it cuts the connection.
	poll := func() (counted bool) {
		sampleMem()
		m, err := d.metrics()
		if err != nil {
			t.Fatal(err)
		}
		res.slowMetric = m["wsd_slow_consumers_total"] - m0["wsd_slow_consumers_total"]
		res.slowCauseMetric = closes(m)["slow_consumer"] - closes(m0)["slow_consumer"]
		// slow_consumers counts a conn when wsd finds it slow and queues
		// its close; closes{slow_consumer} only once that close is over
		// (read, or cut at --close-timeout): the drain starts on the first.
		counted = res.slowMetric >= float64(slow)
		if counted && slow > 0 && res.detectAfter == 0 {
			res.detectAfter = time.Since(start)
		}
		return counted
	}
	phaseEnd := time.After(run.phase)
	sample := time.NewTicker(200 * time.Millisecond)
	defer sample.Stop()
	for waiting := true; waiting; {
		select {
		case <-phaseEnd:
			waiting = false
		case <-sample.C:
			poll()
		}
	}
	deadline := time.Now().Add(run.detect)
	for !poll() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond) // polling /metrics, the only signal
	}
	if res.detectAfter == 0 {
		res.detectAfter = time.Since(start)
	}
	close(stop)
	if err := <-pubDone; err != nil {
		t.Fatalf("%s: publisher: %v", channel, err)
	}
	res.published = int(published.Load())
	res.rate = float64(res.published) / time.Since(start).Seconds()
	final := lastOff.Load()

	// Every healthy subscriber must reach the last offset: poll with a deadline.
	waitUntil := time.Now().Add(60 * time.Second)
	for _, s := range subs {
		for s.last.Load() < final && s.err.Load() == nil && time.Now().Before(waitUntil) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	var lossy []string
	for i, s := range subs {
		if s.last.Load() != final || s.gaps.Load() > 0 || s.dups.Load() > 0 {
			e := "open"
			if p := s.err.Load(); p != nil {
				e = (*p).Error()
			}
			lossy = append(lossy, fmt.Sprintf("#%d: first %d last %d of %d, %d missed, %d duplicated (%s)",
				i, s.first, s.last.Load(), final, s.gaps.Load(), s.dups.Load(), e))
		}
		res.delivered += s.last.Load() - s.first - s.gaps.Load()
	}
	res.p50, _ = h.quantile(0.50)
	res.p99, _ = h.quantile(0.99)
	if len(lossy) > 0 {
		t.Errorf("%s: %d of %d healthy subscribers did not get every publication once; first: %s",
			channel, len(lossy), healthy, strings.Join(lossy[:min(5, len(lossy))], "; "))
	}
	if slow == 0 {
		return res
	}
	res.slowClosed1008, res.slowCut = drainSlow(t, slows)
	for end := time.Now().Add(10 * time.Second); res.slowCauseMetric < float64(slow) && time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond) // polling /metrics, the only signal
		poll()
	}
	if res.slowCauseMetric < float64(slow) || res.slowMetric < float64(slow) {
		t.Errorf("%s: wsd counted slow_consumers +%.0f within %v, closes{slow_consumer} +%.0f after they were read; want ≥ %d",
			channel, res.slowMetric, res.detectAfter, res.slowCauseMetric, slow)
	}
	// Without the bulk channel the slow ones are found over tens of
	// seconds; one found more than --close-timeout before the last may be
	// cut before it is read, so there a 1008 is not required.
	if res.slowClosed1008+res.slowCut != slow || (res.slowClosed1008 == 0 && run.bulk) {
		t.Errorf("%s: of %d slow consumers %d saw a 1008 close and %d were cut; want all ended, some with 1008",
			channel, slow, res.slowClosed1008, res.slowCut)
	}
	return res
}

// tcpMemPages is the kernel's TCP memory in pages (/proc/net/sockstat,
// line "TCP: ... mem N"): what socket buffers hold, box-wide.
func tcpMemPages(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/net/sockstat")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "TCP:") {
			continue
		}
		f := strings.Fields(line)
		for i := 1; i+1 < len(f); i++ {
			if f[i] == "mem" {
				n, err := strconv.ParseInt(f[i+1], 10, 64)
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
		}
	}
	t.Fatalf("no TCP mem in /proc/net/sockstat:\n%s", b)
	return 0
}

// procTCPKeys names, as /proc/net/tcp writes them, wsd's side of each of
// conns: local address wsdAddr, remote address the conn's local one.
func procTCPKeys(t *testing.T, wsdAddr string, conns []*wsConn) map[[2]string]bool {
	ap, err := netip.ParseAddrPort(wsdAddr)
	if err != nil {
		t.Fatal(err)
	}
	keys := make(map[[2]string]bool, len(conns))
	for _, c := range conns {
		if c != nil {
			keys[[2]string{procTCPAddr(ap), procTCPAddr(c.LocalAddr().(*net.TCPAddr).AddrPort())}] = true
		}
	}
	return keys
}

// procTCPAddr is an IPv4 address and port as /proc/net/tcp prints them:
// the address's 32 bits as the host reads them, in hex, then the port.
func procTCPAddr(ap netip.AddrPort) string {
	a4 := ap.Addr().Unmap().As4()
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a4[:]), ap.Port())
}

// txQueued sums /proc/net/tcp's tx_queue (bytes sent and not yet
// acknowledged, plus those not sent yet) over the sockets in keys, and
// returns the largest one too. The
// file is read in pieces and the kernel resumes its walk of the socket
// table between them, so a socket can be listed twice while other
// connections come and go: each is counted once, by inode.
func txQueued(t *testing.T, keys map[[2]string]bool) (sum int64, max1 int64) {
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || !keys[[2]string{f[1], f[2]}] || seen[f[9]] {
			continue
		}
		seen[f[9]] = true
		tx, _, _ := strings.Cut(f[4], ":")
		n, err := strconv.ParseInt(tx, 16, 64)
		if err != nil {
			t.Fatalf("/proc/net/tcp: tx_queue %q", f[4])
		}
		sum += n
		max1 = max(max1, n)
	}
	return sum, max1
}

// feed publishes {"t":now,"p":pad} every tick (100 Hz: 10 ms) until stop,
// and, when bulk is set, 48 KiB to bulk at 20 Hz (only slow consumers
// subscribe to it). Up to 16 publishes are in flight, so that one slow
// API answer (a fan-out to 10,000) does not slow the feed; a tick that
// finds 16 in flight is skipped, and shows in the achieved rate.
func feed(ctx context.Context, d *daemon, channel, bulk string, every time.Duration, stop <-chan struct{}, n *atomic.Int64, last *atomic.Uint64) error {
	tick := time.NewTicker(every)
	defer tick.Stop()
	pad := strings.Repeat("x", 200)
	big := []byte(`"` + strings.Repeat("y", 48<<10) + `"`)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var firstErr atomic.Pointer[error]
	defer wg.Wait()
	publish := func(ch string, data []byte) {
		defer wg.Done()
		defer func() { <-sem }()
		off, err := d.publish(ctx, ch, data)
		if err != nil {
			firstErr.CompareAndSwap(nil, &err)
			return
		}
		if ch != channel {
			return
		}
		n.Add(1)
		for cur := last.Load(); off > cur && !last.CompareAndSwap(cur, off); cur = last.Load() {
		}
	}
	for i := range 1 << 24 {
		select {
		case <-stop:
			wg.Wait()
			if p := firstErr.Load(); p != nil {
				return *p
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if bulk != "" && i%5 == 0 {
			select {
			case sem <- struct{}{}:
				wg.Add(1)
				go publish(bulk, big)
			default:
			}
		}
		select {
		case sem <- struct{}{}:
			data := `{"t":` + strconv.FormatInt(time.Now().UnixNano(), 10) + `,"p":"` + pad + `"}`
			wg.Add(1)
			go publish(channel, []byte(data))
		default:
		}
	}
	return errors.New("feed: loop bound reached")
}

// drainSlow reads what the slow consumers' sockets hold, up to the end:
// wsd queues a 1008 close behind what the socket holds, and cuts the TCP
// connection if the peer has not read it within its close timeout. It
// returns how many saw the 1008 and how many were cut (EOF or reset);
// anything else (a read timeout: still open) is logged.
func drainSlow(t *testing.T, slows []*wsConn) (saw1008, cut int) {
	var n1008, ncut atomic.Int64
	var other sync.Map
	parallel(len(slows), func(i int) {
		c := slows[i]
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		for range 1 << 20 {
			_, _, err := c.read()
			if err == nil {
				continue
			}
			switch {
			case closeCode(err) == 1008:
				n1008.Add(1)
			case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
				ncut.Add(1)
			default:
				other.Store(i, err.Error())
			}
			break
		}
		c.Close()
	})
	k := 0
	other.Range(func(key, v any) bool {
		if k++; k <= 3 {
			t.Logf("slow consumer #%v ended with: %v", key, v)
		}
		return true
	})
	return int(n1008.Load()), int(ncut.Load())
}
