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
// and receive every publication exactly once and in order.
func TestClientRecoversAcrossDrop(t *testing.T) {
	d := startWSD(t, "--api-key", "k")
	px := newProxy(t, d.Addr)

	var mu sync.Mutex
	var got []int
	var offsets []uint64
	connected := make(chan struct{}, 16)
	recovered := make(chan bool, 16)
	c, err := client.New("ws://"+px.Addr()+"/ws", client.Options{
		MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 300 * time.Millisecond,
		OnState: func(s client.State, err error) {
			if s == client.StateConnected {
				connected <- struct{}{}
			}
		},
		OnRecover: func(ch string, ok bool, epoch string) { recovered <- ok },
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
	<-connected
	const total = 60
	for n := 1; n <= 20; n++ {
		publish(t, d.Addr, "k", "news", fmt.Sprintf(`{"n":%d}`, n))
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= 20 })

	// Drop the client's TCP connection and keep it out for a while.
	px.setRefuse(true)
	px.cut()
	for n := 21; n <= 40; n++ {
		publish(t, d.Addr, "k", "news", fmt.Sprintf(`{"n":%d}`, n))
		time.Sleep(10 * time.Millisecond)
	}
	px.setRefuse(false)
	select {
	case <-connected:
	case <-time.After(10 * time.Second):
		t.Fatal("client did not reconnect")
	}
	for n := 41; n <= total; n++ {
		publish(t, d.Addr, "k", "news", fmt.Sprintf(`{"n":%d}`, n))
	}
	waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= total })
	time.Sleep(200 * time.Millisecond) // any duplicate would arrive now
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
			t.Fatal("recovery reported recovered:false")
		}
	default:
	}
	if c.Reconnects() < 1 {
		t.Fatal("no reconnect counted")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("timed out waiting")
}
