package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// TestMemoryBudgetBoundsProcessRSS: wsd as its own process, --max-memory
// 64MiB, attacked by connections that each announce a 16 MiB message and
// send 1 MiB of it a chunk at a time. wsd's resident memory (VmRSS, its
// process only) must grow by less than 1.5× the budget, while probe conns
// keep getting every echo. make test: 200 offenders, 64 KiB every 5 ms (a
// flood); WSD_MEMORY_SOAK=1: 2,000 offenders trickling 4 KiB every 50 ms.
func TestMemoryBudgetBoundsProcessRSS(t *testing.T) {
	const budget = 64 << 20
	nOff, chunk, every, nProbe := 200, 64<<10, 5*time.Millisecond, 10
	if os.Getenv("WSD_MEMORY_SOAK") != "" {
		nOff, chunk, every, nProbe = 2000, 4<<10, 50*time.Millisecond, 100
	}
	n := startNode(t, "", "--max-memory", "64MiB", "--loops", "2", "--log-level", "error")
	pid := n.cmd.Process.Pid
	probes := make([]*wstest.Client, nProbe)
	for i := range probes {
		c, err := wstest.Dial(n.addr, "/echo")
		if err != nil {
			t.Fatal(err)
		}
		c.Timeout = 30 * time.Second
		t.Cleanup(func() { c.Conn.Close() })
		probes[i] = c
	}
	quiet := probeEchoes(t, probes, nil)
	rss0 := processRSS(t, pid)

	offenders := make([]net.Conn, 0, nOff)
	t.Cleanup(func() {
		for _, c := range offenders {
			c.Close()
		}
	})
	for i := range nOff {
		c, err := wstest.Dial(n.addr, "/echo")
		if err != nil {
			t.Fatalf("offender %d: %v", i, err)
		}
		hdr := codec.AppendHeader(nil, codec.OpBinary, true, false, 16<<20)
		hdr[1] |= 0x80
		if err := c.WriteRaw(append(hdr, 1, 2, 3, 4)); err != nil {
			t.Fatal(err)
		}
		offenders = append(offenders, c.Conn)
	}
	stop := make(chan struct{})
	var peak int64 // written by the sampler, read after wg.Wait
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // wsd's RSS, every 50 ms
		defer wg.Done()
		for {
			peak = max(peak, processRSS(t, pid))
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	go func() {
		defer wg.Done()
		defer close(stop)
		sendChunks(offenders, 1<<20, chunk, every)
		// What was sent may still sit in the sockets' kernel buffers:
		// the attack is over once wsd's inbound account stops moving.
		waitSettled(t, n.addr)
	}()
	attack := probeEchoes(t, probes, stop)
	wg.Wait()
	// A shed conn is counted when its close completes (after draining).
	for deadline := time.Now().Add(10 * time.Second); closesByCause(t, n.addr, "memory_shed") == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no offender was shed: the attack never reached the budget")
		}
		time.Sleep(100 * time.Millisecond)
	}
	grew := peak - rss0
	t.Logf("%d offenders, %d B every %v: %.0f shed; wsd RSS %.1f MiB before, peak +%.1f MiB (budget %d MiB); probe echo p99 quiet %v, under attack %v",
		nOff, chunk, every, closesByCause(t, n.addr, "memory_shed"), float64(rss0)/(1<<20), float64(grew)/(1<<20), budget>>20, quiet, attack)
	// The budget counts what clients make wsd hold (buffer capacities);
	// the heap around them (garbage of grown and shed buffers, the GC's
	// headroom) comes on top. The soft memory limit that follows the
	// budget keeps that under half of it: without it the flood grew RSS by
	// 1.66× the budget.
	if grew >= budget*3/2 {
		t.Errorf("wsd's RSS grew by %d bytes under the attack, past 1.5× the %d budget", grew, budget)
	}
}

// sendChunks sends total bytes to every conn, chunk bytes per conn each
// period, and returns when all are sent or refused. A write that fails
// (wsd closed the conn) or cannot go out within 2 s ends that conn's part.
func sendChunks(conns []net.Conn, total, chunk int, every time.Duration) {
	buf := make([]byte, chunk)
	live := slices.Clone(conns)
	for sent := 0; sent < total && len(live) > 0; sent += chunk {
		next := time.Now().Add(every)
		kept := live[:0]
		for _, c := range live {
			_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if _, err := c.Write(buf); err == nil {
				kept = append(kept, c)
			}
		}
		live = kept
		time.Sleep(time.Until(next))
	}
}

// probeEchoes echoes 1 KiB on every probe, one at a time each, until stop
// closes (or 50 round trips each when stop is nil), fails the test on any
// missing echo, and returns the p99 round trip.
func probeEchoes(t *testing.T, probes []*wstest.Client, stop <-chan struct{}) time.Duration {
	t.Helper()
	msg := bytes.Repeat([]byte{'p'}, 1024)
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	for i, c := range probes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; stop != nil || n < 50; n++ {
				if stop != nil {
					select {
					case <-stop:
						return
					default:
					}
				}
				t0 := time.Now()
				if err := c.WriteMessage(codec.OpBinary, msg); err != nil {
					t.Errorf("probe %d: %v", i, err)
					return
				}
				f, err := c.ReadData()
				if err != nil || !bytes.Equal(f.Payload, msg) {
					t.Errorf("probe %d: no echo (%v)", i, err)
					return
				}
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(lat) == 0 {
		return 0
	}
	slices.Sort(lat)
	return lat[len(lat)*99/100]
}

// processRSS is pid's VmRSS in bytes.
func processRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// waitSettled waits (at most 30 s) until wsd's accounted inbound bytes
// have not changed for a second.
func waitSettled(t *testing.T, addr string) {
	last, since := -1.0, time.Now()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if v := metricValue(t, addr, `wsd_memory_accounted_bytes{kind="inbound"} `); v != last {
			last, since = v, time.Now()
		} else if time.Since(since) >= time.Second {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("wsd's inbound bytes still moving after 30 s")
}

// closesByCause reads wsd_closes_total{cause=...} from wsd's /metrics.
func closesByCause(t *testing.T, addr, cause string) float64 {
	return metricValue(t, addr, `wsd_closes_total{cause="`+cause+`"} `)
}

// metricValue reads the sample whose line starts with prefix (name,
// labels and a space) from wsd's /metrics.
func metricValue(t *testing.T, addr, prefix string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	t.Fatalf("/metrics has no %s", strings.TrimSpace(prefix))
	return 0
}
