//go:build linux

package bench

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// waitSubscribed waits until s has n /ws subscribers.
func waitSubscribed(t *testing.T, s *tinyServer, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.wsSubscribers() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d subscribed after 30 s", s.wsSubscribers(), n)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition with a deadline
	}
}

func TestIdleSubscribesEachToItsChannel(t *testing.T) {
	for _, tc := range []struct {
		name     string
		misroute int64
		procs    int
	}{{"clean", 0, 1}, {"two procs", 0, 2}, {"misrouted", 4, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, addr := startTiny(t, func(s *tinyServer) { s.misroute = tc.misroute })
			const conns, channels = 30, 10
			type result struct {
				r   *Result
				err error
			}
			done := make(chan result, 1)
			go func() {
				r, err := Run(context.Background(), Config{Scenario: ScenarioIdle, URL: "ws://" + addr + "/ws", Conns: conns, Procs: tc.procs,
					Subscribe: "feed:%d", SubChannels: channels, PingSample: 1, Duration: 3 * time.Second, Warmup: 100 * time.Millisecond,
					Timeout: 60 * time.Second, Sample: 100 * time.Millisecond}, RunOptions{Exe: workerExe()})
				done <- result{r, err}
			}()
			waitSubscribed(t, srv, conns)
			srv.mu.Lock()
			per := map[string]int{}
			for _, ch := range srv.wsSubs {
				per[ch]++
			}
			srv.mu.Unlock()
			for i := range channels {
				if ch := fmt.Sprintf("feed:%d", i); per[ch] != conns/channels {
					t.Errorf("%s has %d subscribers, want %d (%v)", ch, per[ch], conns/channels, per)
				}
			}
			for i := range channels {
				srv.publish(fmt.Sprintf("feed:%d", i), []byte(`"x"`))
			}
			out := <-done
			if out.err != nil {
				t.Fatal(out.err)
			}
			res := out.r
			if res.Totals.Subscribed != conns || res.ConnsUp != conns {
				t.Fatalf("subscribed %d, up %d", res.Totals.Subscribed, res.ConnsUp)
			}
			wrong := uint64(tc.misroute)
			if wrong > 0 {
				wrong = conns / wrong
			}
			if res.Totals.Deliveries != conns-wrong || res.Mismatched != wrong ||
				res.ErrorReasons["idle: push on a channel not subscribed to"] != wrong {
				t.Fatalf("deliveries %d mismatched %d, want %d and %d: %v", res.Totals.Deliveries, res.Mismatched, conns-wrong, wrong, res.ErrorReasons)
			}
		})
	}
}

func TestIdleSubscribeRefused(t *testing.T) {
	_, addr := startTiny(t, nil)
	// A one-channel pattern of "forbidden" is refused by the tiny server.
	res := quickRun(t, Config{Scenario: ScenarioIdle, URL: "ws://" + addr + "/ws", Conns: 5, Subscribe: "forbidden%d", SubChannels: 1})
	if res.Totals.Subscribed != 0 || res.Totals.Dropped != 5 {
		t.Fatalf("subscribed %d dropped %d %v", res.Totals.Subscribed, res.Totals.Dropped, res.ErrorReasons)
	}
}

func TestSubscribeConfig(t *testing.T) {
	for _, c := range []Config{
		{Scenario: ScenarioIdle, URL: "ws://127.0.0.1:1/ws", SubChannels: 3},
		{Scenario: ScenarioEcho, URL: "ws://127.0.0.1:1/ws", Subscribe: "feed:%d"},
		{Scenario: ScenarioIdle, URL: "ws://127.0.0.1:1/ws", Subscribe: "feed"},
	} {
		if _, err := c.withDefaults(); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
	c, err := Config{Scenario: ScenarioIdle, URL: "ws://127.0.0.1:1/ws", Conns: 77, Subscribe: "feed:%d"}.withDefaults()
	if err != nil || c.SubChannels != 77 {
		t.Fatalf("default channels: %d %v", c.SubChannels, err)
	}
}
