package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/client"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

// A three-node cluster as deploy/ describes it: one nats-server with
// JetStream, three wsd processes on it, nginx (deploy/nginx-wsd-cluster.conf)
// in front with TLS. Clients subscribe through nginx and land on every node;
// one node is killed (SIGKILL) while publications go on through the
// others; its clients reconnect through nginx to the survivors and recover
// from JetStream: every client ends with the whole sequence, once, in order.
func TestClusterNodeLossBehindNginx(t *testing.T) {
	ns := natstest.Start(t)
	var nodes []*daemon
	upstreams := map[string]string{}
	for i := range 3 {
		d := startWSD(t, "--broker", "nats", "--nats-url", ns.URL, "--api-key", "k", "--return-memory=false")
		nodes = append(nodes, d)
		host := fmt.Sprintf("server wsd%d.internal:8080 ", i+1)
		upstreams[host] = "server " + d.Addr + " "
	}
	addr, pool := startNginxSite(t, "nginx-wsd-cluster.conf", upstreams)

	const clients, total = 30, 60
	var mu sync.Mutex
	got := make([][]int, clients)
	for i := range clients {
		c, err := client.New("wss://"+addr+"/ws", client.Options{
			TLSConfig:  &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"},
			MinBackoff: 50 * time.Millisecond,
			MaxBackoff: 500 * time.Millisecond,
			OnPublication: func(_ string, _ uint64, _ string, data json.RawMessage) {
				var v struct{ N int }
				_ = json.Unmarshal(data, &v)
				mu.Lock()
				got[i] = append(got[i], v.N)
				mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err = c.Subscribe(ctx, "news")
		cancel()
		if err != nil {
			t.Fatalf("client %d: subscribe through nginx: %v", i, err)
		}
	}
	least := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := total
		for _, g := range got {
			n = min(n, len(g))
		}
		return n
	}

	for n := 1; n <= 20; n++ {
		publish(t, nodes[n%3].Addr, "k", "news", fmt.Sprintf(`{"n":%d}`, n))
	}
	waitFor(t, func() bool { return least() >= 20 })

	// kill -9 a node holding clients; publications go on through the others.
	victim := nodes[0]
	if n := connections(t, victim.Addr); n == 0 {
		t.Fatalf("nginx put no client on %s (least_conn over 3 nodes)", victim.Addr)
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	for n := 21; n <= total; n++ {
		publish(t, nodes[1+n%2].Addr, "k", "news", fmt.Sprintf(`{"n":%d}`, n))
	}
	waitFor(t, func() bool { return least() >= total })

	want := make([]int, total)
	for i := range want {
		want[i] = i + 1
	}
	mu.Lock()
	defer mu.Unlock()
	for i, g := range got {
		if !slices.Equal(g, want) {
			t.Errorf("client %d received %v, want 1..%d once, in order", i, g, total)
		}
	}
}

// connections reads the live connection count from a node's /healthz
// ("ok N connections").
func connections(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n int
	if _, err := fmt.Fscanf(resp.Body, "ok %d connections", &n); err != nil {
		t.Fatalf("healthz of %s: %v", addr, err)
	}
	return n
}
