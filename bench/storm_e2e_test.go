//go:build linux

package bench

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestStormEndToEnd runs the storm against two in-process servers: A holds
// every client and then closes each with 1012 and a retry hint, the hints
// spread evenly over 2 s; the clients move on to B. With hints honoured the
// reconnects spread over the window and none is early, by wsbench's count
// and by B's (the k-th upgrade B sees comes no sooner than the k-th
// smallest hint after the closes began). The naive client is back at once:
// one spike, early by both counts.
func TestStormEndToEnd(t *testing.T) {
	const n = 200
	const spread = 2 * time.Second
	hint := func(i int) time.Duration { return spread * time.Duration(i) / n } // increasing in i
	for _, tc := range []struct {
		name  string
		honor bool
		procs int
	}{{"honour", true, 2}, {"naive", false, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			a, addrA := startTiny(t, nil)
			b, addrB := startTiny(t, nil)
			cfg := Config{Scenario: ScenarioStorm, URL: "ws://" + addrA + "/echo", Fallback: []string{"ws://" + addrB + "/echo"},
				Conns: n, Procs: tc.procs, Loops: 2, Duration: 15 * time.Second, Timeout: 40 * time.Second, IgnoreHints: !tc.honor}
			type outcome struct {
				r   *Result
				err error
			}
			done := make(chan outcome, 1)
			go func() {
				r, err := Run(context.Background(), cfg, RunOptions{Exe: workerExe()})
				done <- outcome{r, err}
			}()
			deadline := time.Now().Add(20 * time.Second)
			for open, _ := a.upgraded(); open < n; open, _ = a.upgraded() {
				if time.Now().After(deadline) {
					t.Fatalf("A holds %d of %d clients after 20 s", open, n)
				}
				select {
				case o := <-done:
					t.Fatalf("run ended before the storm: %v", o.err)
				case <-time.After(10 * time.Millisecond):
				}
			}
			began := a.closeEach(1012, func(i int) string { return fmt.Sprintf("restart; retry=%.3f", hint(i).Seconds()) })
			var o outcome
			select {
			case o = <-done:
			case <-time.After(45 * time.Second):
				t.Fatal("the run did not end")
			}
			if o.err != nil {
				t.Fatal(o.err)
			}
			s := o.r.Storm
			if s == nil || s.Clients != n || s.Hit != n || s.Back != n || s.NotBack != 0 || s.Refused != 0 || s.AllBackS == nil ||
				s.CloseKinds["close 1012 with retry hint"] != n || s.ConnectMs.Count != n {
				t.Fatalf("storm: %+v", s)
			}
			busy := 0
			for _, p := range s.Curve {
				if p.Reconnects > 0 {
					busy++
				}
			}
			_, times := b.upgraded()
			slices.SortFunc(times, func(x, y time.Time) int { return x.Compare(y) })
			early := 0
			for k, at := range times {
				if at.Before(began.Add(hint(k))) {
					early++
				}
			}
			if len(times) != n {
				t.Fatalf("B saw %d upgrades, want %d", len(times), n)
			}
			t.Logf("%s: all back %.3fs, %d busy buckets, peak %d, early %d (B: %d), connect p99 %.3f ms",
				tc.name, *s.AllBackS, busy, s.PeakPerBucket, s.Early, early, s.ConnectMs.P99)
			if tc.honor {
				if s.Early != 0 || early != 0 {
					t.Errorf("early reconnects: wsbench counted %d, B saw %d", s.Early, early)
				}
				if busy < 12 || s.PeakPerBucket > n/3 || *s.AllBackS < 1.9 {
					t.Errorf("reconnects not spread over the 2 s window: %d busy buckets, peak %d, all back in %.3fs", busy, s.PeakPerBucket, *s.AllBackS)
				}
				return
			}
			if s.Early < n/2 || early < n/2 {
				t.Errorf("naive clients should be early: wsbench counted %d, B saw %d", s.Early, early)
			}
			// Within 1.2 s at most, where the hints ask for 2: a spike, its
			// width only the time B takes to accept 200 clients at once.
			if *s.AllBackS > 1.2 || busy > 12 {
				t.Errorf("naive clients should come back in one spike: %d busy buckets, all back in %.3fs", busy, *s.AllBackS)
			}
		})
	}
}
