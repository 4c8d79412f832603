package bench

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSpreadChannelPattern(t *testing.T) {
	for i, want := range map[int]string{0: "feed:0", 7: "feed:7", 12345: "feed:12345"} {
		if got := string(appendSpreadChannel([]byte("x"), "feed:%d", i)); got != "x"+want {
			t.Errorf("channel %d: %q, want %q", i, got, "x"+want)
		}
	}
	if got := string(appendSpreadChannel(nil, "user#%d.inbox", 3)); got != "user#3.inbox" {
		t.Errorf("slot in the middle: %q", got)
	}
	if err := checkChannelPattern("feed:%d", 10000); err != nil {
		t.Errorf("feed:%%d over 10000: %v", err)
	}
	long := strings.Repeat("a", 251) + "%d" // 251 + the 5 digits of 99999 > 255
	for _, bad := range []struct {
		pattern string
		n       int
	}{{"feed", 10}, {"feed:%d:%d", 10}, {"feed:%d", 0}, {"feed:%d", -1}, {"fe ed:%d", 10}, {"feed*%d", 10}, {long, 100000}} {
		if err := checkChannelPattern(bad.pattern, bad.n); err == nil {
			t.Errorf("%q over %d accepted", bad.pattern, bad.n)
		}
	}
	if err := checkChannelPattern(long, 10000); err != nil {
		t.Errorf("255 bytes is a valid name: %v", err)
	}
	if err := checkChannelPattern("feed", 10); !errors.Is(err, ErrChannelPattern) {
		t.Errorf("no slot: %v is not ErrChannelPattern", err)
	}
}

func TestAPIPubSpreadsOverChannels(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch, _, _ := strings.Cut(strings.TrimPrefix(string(b), `{"channel":"`), `"`)
		mu.Lock()
		seen[ch]++
		mu.Unlock()
		w.Write([]byte(`{"offset":1}`))
	}))
	t.Cleanup(srv.Close)
	for _, random := range []bool{false, true} {
		mu.Lock()
		clear(seen)
		mu.Unlock()
		cfg := APIPubConfig{URL: srv.URL + "/api/publish", Key: "K", Channel: "feed:%d", Channels: 4, Random: random,
			Size: 16, Conns: 3, Duration: 400 * time.Millisecond}
		r, err := RunAPIPub(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		var total uint64
		lo, hi := int(^uint(0)>>1), 0
		for _, ch := range []string{"feed:0", "feed:1", "feed:2", "feed:3"} {
			total += uint64(seen[ch])
			lo, hi = min(lo, seen[ch]), max(hi, seen[ch])
		}
		mu.Unlock()
		// Every request went to one of the four channels (a request
		// sent as a run ended, this one or the one before, may be seen
		// without its answer).
		if r.Failed != 0 || r.OK < 20 || total < r.OK || total > r.OK+2*uint64(cfg.Conns) || len(seen) != 4 {
			t.Fatalf("random %v: %+v, server saw %v", random, r, seen)
		}
		// Round robin over all connections: the counts differ by at most
		// the requests in flight at the end.
		if !random && hi-lo > 2*cfg.Conns {
			t.Fatalf("round robin uneven: %v", seen)
		}
	}
}

func TestAPIPubChecksChannels(t *testing.T) {
	base := APIPubConfig{URL: "http://127.0.0.1:1/api/publish", Channel: "feed:%d", Conns: 1, Duration: time.Second}
	for _, c := range []APIPubConfig{
		{Channels: 10, Channel: "feed"},
		{Channels: -1},
		{Channels: 0, Random: true, Channel: "feed"},
		{Channels: 0, Channel: `a"b`},
	} {
		cfg := base
		cfg.Channels, cfg.Random = c.Channels, c.Random
		if c.Channel != "" {
			cfg.Channel = c.Channel
		}
		if _, err := RunAPIPub(context.Background(), cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestAPIPubCPUPerPublish(t *testing.T) {
	r := APIPubResult{OK: 1000, CPUSeconds: 0.5}
	if got := r.CPUPerPublish(); got != 500*time.Microsecond {
		t.Fatalf("0.5 s over 1000 publishes: %v", got)
	}
	if (APIPubResult{CPUSeconds: 1}).CPUPerPublish() != 0 {
		t.Fatal("no publishes: want 0")
	}
}
