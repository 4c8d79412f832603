package pubsub

import (
	"context"
	"testing"
)

type countSub struct{ n int }

func (c *countSub) Deliver(*frame) { c.n++ }

// BenchmarkFanOut10k: one publication to 10,000 local subscribers (the
// hub's share of a broadcast; the server's queues are not included).
func BenchmarkFanOut10k(b *testing.B) {
	h := newHub(b, nil, Namespaces{"": {HistorySize: 100}})
	for range 10000 {
		if _, _, err := h.Subscribe(context.Background(), "c", &countSub{}, SubscribeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	data := []byte(`{"price":101.25,"symbol":"ACME"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := h.Publish(context.Background(), "c", data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*10000/b.Elapsed().Seconds(), "deliveries/s")
}

// BenchmarkPublishNoSubscribers: the cost of history alone.
func BenchmarkPublishNoSubscribers(b *testing.B) {
	h := newHub(b, nil, Namespaces{"": {HistorySize: 100}})
	data := []byte(`{"price":101.25,"symbol":"ACME"}`)
	b.ReportAllocs()
	for range b.N {
		_, _ = h.Publish(context.Background(), "c", data)
	}
}
