package wsproto

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/wsdhq/wsd/pubsub"
)

// historyBenchNode is a /ws server whose channel "h" keeps 1,000
// publications of 64-byte JSON objects.
func historyBenchNode(b *testing.B) *env {
	b.Helper()
	e := start(b, Config{Logger: quiet, RateLimit: -1}, pubsub.Namespaces{"": {HistorySize: 1000}})
	for i := range 1000 {
		data := fmt.Appendf(nil, `{"n":%4d,"text":"%0*d"}`, i, 64-len(`{"n":1234,"text":""}`), i)
		if _, err := e.hub.Publish(context.Background(), "h", data); err != nil {
			b.Fatal(err)
		}
	}
	return e
}

// BenchmarkHistoryOp: one client's history op (limit 50, the newest of
// 1,000 kept) over /ws, one at a time, request to reply.
func BenchmarkHistoryOp(b *testing.B) {
	e := historyBenchNode(b)
	b.ReportAllocs()
	roundTrips(b, e.addr, func(i int) []byte {
		return fmt.Appendf(nil, `{"id":%d,"op":"history","channel":"h","limit":50}`, i)
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkHistoryRead is the server's part of the op alone: the read
// from the memory broker and the reply's encoding, on every core.
func BenchmarkHistoryRead(b *testing.B) {
	e := historyBenchNode(b)
	limit := 50
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, ae := readHistory(context.Background(), e.hub.Broker(), "h", &limit, nil)
			if ae != nil || len(res.Publications) != 50 {
				panic(fmt.Sprint(ae, len(res.Publications)))
			}
			if _, err := json.Marshal(Reply{ID: json.RawMessage("1"), Result: res}); err != nil {
				panic(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
