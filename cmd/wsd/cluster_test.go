package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/client"
	"github.com/wsdhq/wsd/internal/leakcheck"
	"github.com/wsdhq/wsd/pubsub/natsbroker/natstest"
)

// clusterWait bounds each wait of the cluster tests (a loaded 2-core box).
const clusterWait = 30 * time.Second

// NATS unreachable at start: a clear error and exit status 2.
func TestNATSUnreachableExits2(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--listen", "127.0.0.1:0", "--broker", "nats", "--nats-url", "nats://127.0.0.1:1",
		"--nats-connect-timeout", "1s"}, &stderr, nil)
	if code != 2 || !strings.Contains(stderr.String(), "cannot use NATS JetStream at nats://127.0.0.1:1") {
		t.Fatalf("exit %d, stderr %q; want 2 and a message naming the URL", code, stderr.String())
	}
}

func TestBadBrokerFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--broker", "redis"},
		{"--broker", "nats", "--nats-url", ""},
		{"--broker", "nats", "--nats-storage", "tape"},
		{"--broker", "nats", "--nats-tls-cert", "c.pem"},
	} {
		var stderr bytes.Buffer
		if code := run(args, &stderr, nil); code != 2 || !strings.Contains(stderr.String(), "--") {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming the flag", args, code, stderr.String())
		}
	}
}

// binDir holds the wsd built by wsdBinary; TestMain removes it.
var binDir string

func TestMain(m *testing.M) {
	code := leakcheck.After(m.Run())
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// wsdBinary builds this package's wsd once per test binary.
var wsdBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "wsd-cluster-test")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "wsd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		return "", &configError{"building wsd: " + err.Error() + "\n" + string(out)}
	}
	return bin, nil
})

// node is a wsd process of a test cluster.
type node struct {
	t    *testing.T
	addr string
	args []string
	env  []string // added to the test's environment
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
	mu   sync.Mutex
}

// startNode starts a wsd process on a free loopback port, on natsURL's
// NATS, or alone on the memory broker when natsURL is "".
func startNode(t *testing.T, natsURL string, extraArgs ...string) *node {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n := &node{t: t, addr: addr, args: []string{"--listen", addr, "--loops", "1", "--workers", "4",
		"--broker", "nats", "--nats-url", natsURL, "--return-memory=false"}}
	if natsURL == "" { // one node on the memory broker
		n.args = []string{"--listen", addr, "--return-memory=false"}
	}
	n.args = append(n.args, extraArgs...)
	n.start()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			n.mu.Lock()
			t.Logf("wsd %s log:\n%s", n.addr, n.log.String())
			n.mu.Unlock()
		}
	})
	return n
}

func (n *node) start() {
	t := n.t
	t.Helper()
	bin, err := wsdBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, n.args...)
	cmd.Env = append(os.Environ(), n.env...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	if n.log == nil {
		n.log = &bytes.Buffer{}
	}
	n.mu.Unlock()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			n.mu.Lock()
			n.log.WriteString(sc.Text() + "\n")
			n.mu.Unlock()
		}
	}()
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); pw.Close(); close(done) }()
	n.cmd, n.done = cmd, done
	deadline := time.Now().Add(clusterWait)
	for {
		if code, _ := n.health(); code == http.StatusOK {
			return
		}
		select {
		case <-done:
			t.Fatalf("wsd %s exited at start", n.addr)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("wsd %s not healthy after %v", n.addr, clusterWait)
		}
	}
}

// stop ends the process with SIGTERM (SIGKILL if it hangs) and waits.
func (n *node) stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(os.Interrupt)
	select {
	case <-n.done:
	case <-time.After(clusterWait):
		_ = n.cmd.Process.Kill()
		<-n.done
	}
	n.cmd = nil
}

// kill ends the process with SIGKILL (no cleanup at all) and waits.
func (n *node) kill() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Kill()
	<-n.done
	n.cmd = nil
}

func (n *node) health() (int, string) {
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + n.addr + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitHealth waits until /healthz answers code.
func (n *node) waitHealth(t *testing.T, code int) string {
	t.Helper()
	deadline := time.Now().Add(clusterWait)
	for {
		got, body := n.health()
		if got == code {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("wsd %s /healthz: %d %q, want %d", n.addr, got, body, code)
		}
		time.Sleep(50 * time.Millisecond) // polling a state, not synchronising
	}
}

// receiver is a client's publications, in arrival order.
type receiver struct {
	mu      sync.Mutex
	offsets []uint64
	epochs  map[string]bool
	recover []bool
	changed chan struct{}
}

func newReceiver() *receiver {
	return &receiver{epochs: map[string]bool{}, changed: make(chan struct{}, 1)}
}

func (r *receiver) options() client.Options {
	return client.Options{
		OnPublication: func(_ string, off uint64, epoch string, _ json.RawMessage) {
			r.mu.Lock()
			r.offsets = append(r.offsets, off)
			r.epochs[epoch] = true
			r.mu.Unlock()
			r.poke()
		},
		OnRecover: func(_ string, ok bool, _ string) {
			r.mu.Lock()
			r.recover = append(r.recover, ok)
			r.mu.Unlock()
			r.poke()
		},
	}
}

func (r *receiver) poke() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// waitOffsets waits until the receiver holds want (exactly, in order).
func (r *receiver) waitOffsets(t *testing.T, want []uint64) {
	t.Helper()
	deadline := time.After(clusterWait)
	for {
		r.mu.Lock()
		got := slices.Clone(r.offsets)
		r.mu.Unlock()
		if len(got) >= len(want) {
			if !slices.Equal(got, want) {
				t.Fatalf("received %v, want %v", got, want)
			}
			return
		}
		select {
		case <-r.changed:
		case <-deadline:
			t.Fatalf("received %v after %v, want %v", got, clusterWait, want)
		}
	}
}

func dial(t *testing.T, n *node, r *receiver) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+n.addr+"/ws", r.options())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		defer cancel()
		_ = c.Close(ctx)
	})
	return c
}

func publishN(t *testing.T, c *client.Client, channel string, from, to int) client.PublishResult {
	t.Helper()
	var last client.PublishResult
	for i := from; i <= to; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
		res, err := c.Publish(ctx, channel, map[string]int{"i": i})
		cancel()
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if res.Offset != uint64(i) {
			t.Fatalf("publish %d landed at %+v", i, res)
		}
		last = res
	}
	return last
}

// Two wsd processes on one nats-server: a publication over /ws on node B
// reaches a subscriber on node A; a client that left node A recovers
// exactly what it missed from node B, and from node A after A restarts
// (same epoch); NATS lost: /healthz says so, publishing fails, and both
// come back with NATS.
func TestClusterOfTwoOnNATS(t *testing.T) {
	nsrv := natstest.Start(t)
	a, b := startNode(t, nsrv.URL), startNode(t, nsrv.URL)
	if body := a.waitHealth(t, http.StatusOK); !strings.Contains(body, "broker nats connected") {
		t.Fatalf("/healthz: %q", body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterWait)
	defer cancel()

	ra := newReceiver()
	ca := dial(t, a, ra)
	if _, err := ca.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	cb := dial(t, b, newReceiver())
	last := publishN(t, cb, "news", 1, 5)
	ra.waitOffsets(t, []uint64{1, 2, 3, 4, 5})
	if err := ca.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// Missed 6..8, recovers them on the other node.
	publishN(t, cb, "news", 6, 8)
	rb := newReceiver()
	cb2 := dial(t, b, rb)
	res, err := cb2.SubscribeSince(ctx, "news", client.Position{Offset: last.Offset, Epoch: last.Epoch})
	if err != nil || !res.Recovered || res.Epoch != last.Epoch {
		t.Fatalf("recovery on node B: %+v %v", res, err)
	}
	rb.waitOffsets(t, []uint64{6, 7, 8})

	// A wsd restart keeps the epoch: recovery works on the restarted node.
	a.stop()
	a.start()
	ra2 := newReceiver()
	ca2 := dial(t, a, ra2)
	res, err = ca2.SubscribeSince(ctx, "news", client.Position{Offset: last.Offset, Epoch: last.Epoch})
	if err != nil || !res.Recovered || res.Epoch != last.Epoch || res.Offset != 8 {
		t.Fatalf("recovery on restarted node A: %+v %v (epoch before %q)", res, err, last.Epoch)
	}
	ra2.waitOffsets(t, []uint64{6, 7, 8})

	// NATS lost: health says so and a publish gets an error reply.
	nsrv.Stop()
	body := a.waitHealth(t, http.StatusServiceUnavailable)
	if !strings.Contains(body, "broker nats reconnecting") {
		t.Fatalf("/healthz while NATS is down: %q", body)
	}
	pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
	_, err = ca2.Publish(pctx, "news", map[string]int{"i": 9})
	pcancel()
	var se *client.ServerError
	if !errors.As(err, &se) {
		t.Fatalf("publish while NATS is down: %v, want an error reply", err)
	}
	nsrv.Resume()
	a.waitHealth(t, http.StatusOK)
	b.waitHealth(t, http.StatusOK)
	publishN(t, cb, "news", 9, 9)
	rb.waitOffsets(t, []uint64{6, 7, 8, 9})
	ra2.waitOffsets(t, []uint64{6, 7, 8, 9})
}

// The example nats-server config in deploy/ is one nats-server accepts.
func TestDeployNATSConfigValid(t *testing.T) {
	cmd := exec.Command(natstest.Binary(t), "-c", "../../deploy/nats-server.conf", "-t")
	cmd.Env = append(os.Environ(), "NATS_NAME=nats1", "WSD_NATS_PASSWORD=secret")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "is valid") {
		t.Fatalf("nats-server -t: %v\n%s", err, out)
	}
}
