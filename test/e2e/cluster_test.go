package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsdhq/wsd/client"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

// cluster is deploy/'s three-node setup on loopback: one nats-server with
// JetStream, three wsd processes on it, and nginx with
// deploy/nginx-wsd-cluster.conf (TLS, least_conn) in front.
type cluster struct {
	nodes []*daemon
	args  []string // every node's flags
	addr  string   // nginx
	pool  *x509.CertPool
}

func startCluster(t *testing.T) *cluster {
	ns := natstest.Start(t)
	c := &cluster{args: []string{"--broker", "nats", "--nats-url", ns.URL, "--api-key", "k", "--return-memory=false"}}
	upstreams := map[string]string{}
	for i := range 3 {
		d := startWSD(t, c.args...)
		c.nodes = append(c.nodes, d)
		upstreams[fmt.Sprintf("server wsd%d.internal:8080 ", i+1)] = "server " + d.Addr + " "
	}
	c.addr, c.pool = startNginxSite(t, "nginx-wsd-cluster.conf", upstreams)
	return c
}

// audience is n Go clients subscribed to "news" through nginx, each
// recording the sequence numbers it receives.
type audience struct {
	mu  sync.Mutex
	got [][]int
}

func (c *cluster) subscribe(t *testing.T, n int) *audience {
	a := &audience{got: make([][]int, n)}
	for i := range n {
		cl, err := client.New("wss://"+c.addr+"/ws", client.Options{
			TLSConfig:  &tls.Config{RootCAs: c.pool, ServerName: "127.0.0.1"},
			MinBackoff: 50 * time.Millisecond,
			MaxBackoff: 500 * time.Millisecond,
			OnPublication: func(_ string, _ uint64, _ string, data json.RawMessage) {
				var v struct{ N int }
				_ = json.Unmarshal(data, &v)
				a.mu.Lock()
				a.got[i] = append(a.got[i], v.N)
				a.mu.Unlock()
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close(context.Background()) })
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err = cl.Subscribe(ctx, "news")
		cancel()
		if err != nil {
			t.Fatalf("client %d: subscribe through nginx: %v", i, err)
		}
	}
	return a
}

// least is how many publications the furthest-behind client has.
func (a *audience) least() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := -1
	for _, g := range a.got {
		if n < 0 || len(g) < n {
			n = len(g)
		}
	}
	return n
}

// check requires every client to hold exactly 1..total, once, in order.
func (a *audience) check(t *testing.T, total int) {
	t.Helper()
	want := make([]int, total)
	for i := range want {
		want[i] = i + 1
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, g := range a.got {
		if !slices.Equal(g, want) {
			t.Errorf("client %d received %v, want 1..%d once, in order", i, g, total)
		}
	}
}

// publishRange publishes {"n":from}..{"n":to} through the live nodes in turn.
func (c *cluster) publishRange(t *testing.T, from, to int, live ...*daemon) {
	t.Helper()
	for n := from; n <= to; n++ {
		publish(t, live[n%len(live)].Addr, "k", "news", fmt.Sprintf(`{"n":%d}`, n))
	}
}

const clusterClients = 300

// One node is killed (SIGKILL) while publications go on through the others;
// its clients reconnect through nginx to the survivors and recover from
// JetStream: every client ends with the whole sequence, once, in order.
func TestClusterNodeLossBehindNginx(t *testing.T) {
	c := startCluster(t)
	a := c.subscribe(t, clusterClients)
	c.publishRange(t, 1, 20, c.nodes...)
	waitFor(t, func() bool { return a.least() >= 20 })

	victim := c.nodes[0]
	if n := connections(t, victim.Addr); n == 0 {
		t.Fatalf("nginx put no client on %s (least_conn over 3 nodes)", victim.Addr)
	}
	if err := victim.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	c.publishRange(t, 21, 60, c.nodes[1:]...)
	waitFor(t, func() bool { return a.least() >= 60 })
	a.check(t, 60)
}

// A rolling restart: each node in turn gets SIGTERM (its clients are told
// to go and reconnect through nginx to the others), exits, and starts again
// on its address, while publications go on through the other two. Every
// client ends with the whole sequence, once, in order.
func TestClusterRollingRestartBehindNginx(t *testing.T) {
	c := startCluster(t)
	a := c.subscribe(t, clusterClients)
	next := 1
	for i, d := range c.nodes {
		others := slices.Delete(slices.Clone(c.nodes), i, i+1)
		c.publishRange(t, next, next+9, others...)
		next += 10
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		c.publishRange(t, next, next+9, others...)
		next += 10
		if err := waitExit(d, 20*time.Second); err != nil {
			t.Fatalf("node %d after SIGTERM: %v", i, err)
		}
		c.nodes[i] = startWSDAt(t, d.Addr, c.args...)
		waitFor(t, func() bool { return a.least() >= next-1 })
	}
	c.publishRange(t, next, next+9, c.nodes...)
	next += 10
	waitFor(t, func() bool { return a.least() >= next-1 })
	a.check(t, next-1)
}

// waitExit waits for a daemon to exit by itself and reports a non-zero
// status or a timeout.
func waitExit(d *daemon, timeout time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(timeout):
		return fmt.Errorf("still running after %v", timeout)
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
