package natsbroker_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

// go test -run '^$' -bench . ./pubsub/natsbroker/ — one publisher
// goroutine, one channel vs. 1,000 channels round robin; each Publish waits
// for JetStream's ack (file storage).
func BenchmarkPublish(b *testing.B) {
	for _, channels := range []int{1, 1000} {
		b.Run(fmt.Sprintf("channels=%d", channels), func(b *testing.B) {
			srv := natstest.Start(b)
			br, _ := connect(b, srv.URL)
			names := make([]string, channels)
			for i := range names {
				names[i] = fmt.Sprintf("bench:c%d", i)
			}
			data := []byte(`{"price":101.5}`)
			for i := 0; b.Loop(); i++ {
				if _, err := br.Publish(context.Background(), names[i%channels], data, pubsub.PublishOptions{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPublishParallel is many publishers on one node at once (8 per
// core): one channel shows the per-channel serialisation, 1,000 channels
// how far JetStream acks pipeline across channels.
func BenchmarkPublishParallel(b *testing.B) {
	for _, channels := range []int{1, 1000} {
		b.Run(fmt.Sprintf("channels=%d", channels), func(b *testing.B) {
			srv := natstest.Start(b)
			br, _ := connect(b, srv.URL)
			data := []byte(`{"price":101.5}`)
			var next atomic.Int64
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					ch := fmt.Sprintf("bench:c%d", next.Add(1)%int64(channels))
					if _, err := br.Publish(context.Background(), ch, data, pubsub.PublishOptions{}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
