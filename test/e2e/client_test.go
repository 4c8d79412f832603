package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/client"
)

// The Go client against the real daemon: subscribe, publish over HTTP,
// lose the TCP connection while publications go on, reconnect by itself,
// recover what it missed, and receive every publication exactly once and in
// order.
func TestClientRecoversAcrossDrop(t *testing.T) {
	d := startWSD(t, "--api-key", "k")
	px := newProxy(t, d.Addr)

	var mu sync.Mutex
	var got []int
	var offsets []uint64
	// Callbacks run on the client's event goroutine: never block it.
	connected := make(chan struct{}, 16)
	disconnected := make(chan struct{}, 16)
	recovered := make(chan bool, 16)
	c, err := client.New("ws://"+px.Addr()+"/ws", client.Options{
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 300 * time.Millisecond,
		OnState: func(s client.State, err error) {
			switch s {
			case client.StateConnected:
				notify(connected, struct{}{})
			case client.StateDisconnected:
				notify(disconnected, struct{}{})
			}
		},
		OnRecover: func(ch string, ok bool, epoch string) { notify(recovered, ok) },
		OnPublication: func(ch string, offset uint64, epoch string, data json.RawMessage) {
			var v struct{ N int }
			json.Unmarshal(data, &v)
			mu.Lock()
			got = append(got, v.N)
			offsets = append(offsets, offset)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	await(t, connected, "the first connection")
	received := func() int { mu.Lock(); defer mu.Unlock(); return len(got) }
	const total = 61 // the last one marks the end
	for n := 1; n <= 20; n++ {
		publish(t, d.Addr, "k", "news", fmt.Sprintf(`{"n":%d}`, n))
	}
	waitFor(t, func() bool { return received() >= 20 })

	// Drop the client's TCP connection and keep it out: publications go on
	// while it is disconnected, before and after a reconnect attempt fails.
	px.setRefuse(true)
	px.cut()
	await(t, disconnected, "the client to notice the drop")
	for n := 21; n <= 30; n++ {
		publish(t, d.Addr, "k", "news", fmt.Sprintf(`{"n":%d}`, n))
	}
	await(t, px.refused, "a refused reconnect attempt")
	for n := 31; n <= 40; n++ {
		publish(t, d.Addr, "k", "news", fmt.Sprintf(`{"n":%d}`, n))
	}
	px.setRefuse(false)
	await(t, connected, "the reconnect")
	if ok := await(t, recovered, "OnRecover after the reconnect"); !ok {
		t.Fatal("recovery after the reconnect reported recovered:false: publications 21..40 are lost")
	}
	for n := 41; n <= total; n++ {
		publish(t, d.Addr, "k", "news", fmt.Sprintf(`{"n":%d}`, n))
	}
	// Delivery is in offset order, so once the last publication is in, a
	// duplicate or a straggler could only have arrived before it.
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) > 0 && got[len(got)-1] == total
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != total {
		t.Fatalf("got %d publications, want %d: %v", len(got), total, got)
	}
	for i, n := range got {
		if n != i+1 || offsets[i] != uint64(i+1) {
			t.Fatalf("publication %d is n=%d offset=%d: lost, duplicated or out of order: %v", i, n, offsets[i], got)
		}
	}
	select {
	case ok := <-recovered:
		if !ok {
			t.Fatal("a later OnRecover reported recovered:false")
		}
	default:
	}
	if c.Reconnects() < 1 {
		t.Fatal("no reconnect counted")
	}
}

// notify sends v without blocking: the channels are buffered beyond what a
// test waits for, and a callback must not stall the client.
func notify[T any](ch chan T, v T) {
	select {
	case ch <- v:
	default:
	}
}

// await receives from ch, failing the test after 10 s.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out waiting")
}
