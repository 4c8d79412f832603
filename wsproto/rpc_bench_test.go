package wsproto

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// benchNode is a /ws server for benchmarks: no rate limit.
func benchNode(b *testing.B, cfg Config) string {
	b.Helper()
	cfg.Logger, cfg.RateLimit = quiet, -1
	e := start(b, cfg, nil)
	b.Cleanup(e.h.CloseProxies)
	return e.addr
}

// roundTrips sends b.N requests made by req one at a time on one
// connection and reports the p50 and p99 of request → reply.
func roundTrips(b *testing.B, addr string, req func(i int) []byte) {
	c, err := wstest.Dial(addr, "/ws")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := c.WriteMessage(codec.OpText, req(i)); err != nil {
			b.Fatal(err)
		}
		f, err := c.ReadData()
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		if i == 0 && (bytes.Contains(f.Payload, []byte(`"error"`)) || !bytes.Contains(f.Payload, []byte(`"result"`))) {
			b.Fatalf("reply %q", f.Payload)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkRPCRoundTrip: one client's rpc through wsd to a backend that
// answers at once, one call at a time.
func BenchmarkRPCRoundTrip(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"result":{"ok":true}}`))
	}))
	defer backend.Close()
	addr := benchNode(b, Config{Proxy: ProxyConfig{RPCURL: backend.URL}})
	roundTrips(b, addr, func(i int) []byte {
		return fmt.Appendf(nil, `{"id":%d,"op":"rpc","method":"move","data":{"x":%d}}`, i, i)
	})
}

// BenchmarkPingRoundTrip is the same without the backend: the difference
// is the proxy's overhead.
func BenchmarkPingRoundTrip(b *testing.B) {
	addr := benchNode(b, Config{})
	roundTrips(b, addr, func(i int) []byte { return fmt.Appendf(nil, `{"id":%d,"op":"ping"}`, i) })
}
