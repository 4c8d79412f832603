package wsproto

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/wsdhq/wsd/server"
)

// sseFanout opens n streams on "news" whose bodies are read and dropped
// until the test ends, and returns a publish function.
func sseFanout(tb testing.TB, n int) func() {
	tb.Helper()
	e := startSSE(tb, Config{}, nil, server.Options{MaxOutboundBytes: 64 << 20})
	for range n {
		c := e.openSSE(tb, "/sse?channel=news")
		c.expect("subscribed")
		go func() { _, _ = io.Copy(io.Discard, c.br) }() // ends when the cleanup closes the conn
	}
	data := []byte(`{"price":101.25,"symbol":"ACME"}`)
	return func() {
		if _, err := e.hub.Publish(context.Background(), "news", data); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkSSEFanout is one publication to n SSE streams: allocs/op stays
// flat as n grows, because the event is built once per publication and
// each stream only adds its id line to its pooled queue.
func BenchmarkSSEFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("streams=%d", n), func(b *testing.B) {
			publish := sseFanout(b, n)
			b.ReportAllocs()
			for b.Loop() {
				publish()
			}
		})
	}
}
