package natsbroker_test

import (
	"context"
	"fmt"
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
