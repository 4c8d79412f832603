package pubsub

import (
	"bytes"
	"context"
	"fmt"
	"testing"
)

type countSub struct{ n int }

func (c *countSub) Deliver(*frame) { c.n++ }

// BenchmarkFanOut10k: one publication to 10,000 local subscribers (the
// hub's share of a broadcast; the server's queues are not included).
func BenchmarkFanOut10k(b *testing.B) { benchFanOut10k(b, (*Hub[*frame]).Publish) }

// fanOutData is the fan-out benchmarks' publication.
var fanOutData = []byte(`{"price":101.25,"symbol":"ACME"}`)

func benchFanOut10k(b *testing.B, publish func(*Hub[*frame], context.Context, string, []byte) (StreamPosition, error)) {
	h := newHub(b, nil, Namespaces{"": {HistorySize: 100}})
	for range 10000 {
		if _, _, err := h.Subscribe(context.Background(), "c", &countSub{}, SubscribeOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := publish(h, context.Background(), "c", fanOutData); err != nil {
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

// BenchmarkFanOut10kBinary: BenchmarkFanOut10k with a binary publication
// of the same size.
func BenchmarkFanOut10kBinary(b *testing.B) { benchFanOut10k(b, (*Hub[*frame]).PublishBinary) }

// BenchmarkEncodePush: one push's encoding, JSON against binary, for 64 B
// and 1 KiB of data (the JSON data is a string of that many bytes).
func BenchmarkEncodePush(b *testing.B) {
	for _, size := range []int{64, 1024} {
		jsonData := append(append([]byte{'"'}, bytes.Repeat([]byte{'x'}, size-2)...), '"')
		p := &Publication{Channel: "game:board", Offset: 123456, Epoch: "AbCdEfGh", Data: jsonData}
		buf := make([]byte, 0, PushSize(p)+BinaryPushSize(p))
		b.Run(fmt.Sprintf("json/%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				buf = AppendPush(buf[:0], p)
			}
		})
		b.Run(fmt.Sprintf("binary/%dB", size), func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				buf = AppendBinaryPush(buf[:0], p)
			}
		})
	}
}
