package wsproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// Clients sending bad JSON at line rate get error replies, then the rate
// limit's 1008; a probe client on /ws is served throughout (its p99 is
// reported, not asserted). WSD_ABUSE_FULL=1 (make soak-abuse) runs the
// full size.
func TestAbuseBadJSONAtLineRate(t *testing.T) {
	n := 20
	if os.Getenv("WSD_ABUSE_FULL") == "1" {
		n = 500
	}
	const rate, burst = 1000, 100
	e := start(t, Config{RateLimit: rate, RateBurst: burst}, nil)

	probe, err := wstest.Dial(e.addr, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	stop, probeDone := make(chan struct{}), make(chan struct{})
	var lat []time.Duration
	var probeErr error
	go func() {
		defer close(probeDone)
		for i := 0; i < 100_000; i++ {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond): // ≈ 150/s, under the rate limit
			}
			t0 := time.Now()
			req := fmt.Sprintf(`{"id":%d,"op":"ping"}`, i)
			if err := probe.WriteMessage(codec.OpText, []byte(req)); err != nil {
				probeErr = err
				return
			}
			f, err := probe.ReadData()
			if err != nil || !bytes.Contains(f.Payload, []byte(fmt.Sprintf(`"id":%d`, i))) {
				probeErr = fmt.Errorf("ping %d: %q %v", i, f.Payload, err)
				return
			}
			lat = append(lat, time.Since(t0))
		}
	}()

	bad := codec.AppendFrame(nil, codec.OpText, true, []byte(`{"id":1,"op":`))
	bad[1] |= 0x80 // masked, zero key
	bad = slices.Insert(bad, 2, 0, 0, 0, 0)
	flood := bytes.Repeat(bad, 5000)
	var wg sync.WaitGroup
	var mu sync.Mutex
	replies := 0
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := wstest.Dial(e.addr, "/ws")
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer c.Close()
			c.Timeout = 10 * time.Second
			t0 := time.Now()
			go func() { _ = c.WriteRaw(flood) }() // line rate, whatever comes back
			got := 0
			for {
				f, err := c.Read()
				if err != nil {
					t.Errorf("attacker: no 1008 after %d error replies: %v", got, err)
					return
				}
				if f.Op == codec.OpClose {
					code, reason, _ := codec.ParseClose(f.Payload)
					if code != 1008 || string(reason) != "rate limit exceeded" {
						t.Errorf("attacker closed %d %q", code, reason)
					}
					break
				}
				var m msg
				if json.Unmarshal(f.Payload, &m) != nil || m.Error == nil || m.Error.Code != CodeBadRequest {
					t.Errorf("reply to bad JSON: %q", f.Payload)
				}
				got++
			}
			// The bucket refills at rate while the flood is parsed.
			if most := burst + int(rate*time.Since(t0).Seconds()) + 1; got == 0 || got > most {
				t.Errorf("%d error replies before the 1008, want 1..%d", got, most)
			}
			mu.Lock()
			replies += got
			mu.Unlock()
		}()
	}
	wg.Wait()
	close(stop)
	<-probeDone
	if probeErr != nil {
		t.Fatalf("probe not served during the flood: %v", probeErr)
	}
	if len(lat) == 0 {
		t.Fatal("probe made no request during the flood")
	}
	slices.Sort(lat)
	st := e.h.Stats()
	t.Logf("%d bad-JSON flooders: %d error replies, rate_limited=%d; probe %d pings all served, p50 %v p99 %v",
		n, replies, st.RateLimited, len(lat), lat[len(lat)/2], lat[len(lat)*99/100])
	if st.RateLimited != uint64(n) {
		t.Fatalf("rate limited %d, want %d", st.RateLimited, n)
	}
}
