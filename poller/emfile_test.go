package poller

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// The descriptor tests run the engine in a re-executed copy of the test
// binary: RLIMIT_NOFILE is per process, and a low limit in the test process
// itself would starve the clients. The variable holds the MaxConns the child
// configures ("0" for the default).
const fdChildEnv = "WSD_POLLER_FD_CHILD"

const (
	childFileLimit = 128
	// More loops than cores on purpose: each loop costs descriptors of its
	// own (listener, epoll, eventfd) and can hold one accepted conn not yet
	// admitted, which is what a reserve that ignores loops gets wrong.
	childLoops = 8
	// Attempts in the burst: three times what the process may open.
	burstDials = 3 * childFileLimit
	fdDeadline = 10 * time.Second
)

// fdEchoHandler upgrades every request to an echo session.
type fdEchoHandler struct{}

func (fdEchoHandler) Upgrade(*Conn, *codec.Request, *codec.Accept) (Session, *codec.HTTPError) {
	return fdEchoSession{}, nil
}

type fdEchoSession struct{}

func (fdEchoSession) OnMessage(c *Conn, m Message) bool    { _ = c.Send(m.Op, m.Payload); return false }
func (fdEchoSession) OnClose(*Conn, uint16, string, Cause) {}

// A burst of three times the file limit in concurrent upgrades: the engine
// never runs out of descriptors (which would stop gnet), admits exactly
// MaxConns, answers the rest with 503 or a clean close, and serves again at
// full capacity once the clients leave.
func TestFileLimitBurst(t *testing.T) {
	if v, ok := os.LookupEnv(fdChildEnv); ok {
		runFDChild(t, v)
		return
	}
	ch := startFDChild(t, 0)
	if ch.maxConns <= 0 || ch.maxConns >= childFileLimit {
		t.Fatalf("default MaxConns %d with a file limit of %d", ch.maxConns, childFileLimit)
	}
	ch.burstAndRecover(t)
}

// An explicit MaxConns the file limit cannot hold is lowered, with a
// warning, and the engine survives the same burst.
func TestFileLimitClampsMaxConns(t *testing.T) {
	if v, ok := os.LookupEnv(fdChildEnv); ok {
		runFDChild(t, v)
		return
	}
	const asked = 100000
	ch := startFDChild(t, asked)
	if ch.maxConns >= childFileLimit {
		t.Fatalf("MaxConns %d kept with a file limit of %d", ch.maxConns, childFileLimit)
	}
	if !ch.hasLine(func(l string) bool {
		return strings.Contains(l, "level=WARN") && strings.Contains(l, "asked="+strconv.Itoa(asked))
	}) {
		t.Fatalf("no warning about lowering MaxConns %d; child said:\n%s", asked, ch.output())
	}
	ch.burstAndRecover(t)
}

// runFDChild is the child's side: the engine under a low file limit,
// serving until stdin closes. Its stdout is the parent's only view of it.
func runFDChild(t *testing.T, maxConns string) {
	n, err := strconv.Atoi(maxConns)
	if err != nil {
		t.Fatal(err)
	}
	lim := unix.Rlimit{Cur: childFileLimit, Max: childFileLimit}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	addr := freeLoopback(t)
	log := slog.New(slog.NewTextHandler(os.Stdout, nil))
	e := New(Config{MaxConns: n, Loops: childLoops, Logger: log}, fdEchoHandler{})
	served := make(chan error, 1)
	go func() { served <- e.Serve(addr) }()
	select {
	case <-e.Ready():
	case err := <-served:
		t.Fatalf("serve: %v", err)
	}
	fmt.Printf("ready %s %d\n", addr, e.Config().MaxConns)
	stdinClosed := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		close(stdinClosed)
	}()
	select {
	case err := <-served:
		// Only an engine that stopped by itself gets here.
		fmt.Printf("engine stopped: %v\n", err)
		<-stdinClosed
		return
	case <-stdinClosed:
	}
	ctx, cancel := context.WithTimeout(context.Background(), fdDeadline)
	defer cancel()
	if err := e.Stop(ctx); err != nil {
		t.Error(err)
	}
	<-served
}

func freeLoopback(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// fdChild is the parent's handle on a running child.
type fdChild struct {
	addr     string
	maxConns int

	mu      sync.Mutex
	lines   []string
	more    chan struct{} // a token after each new line
	exited  chan struct{} // closed once the child is gone
	exitErr error         // the child's exit, once exited is closed
}

// startFDChild runs this test in a child with maxConns and waits for it to
// listen. The child is stopped when the test ends.
func startFDChild(t *testing.T, maxConns int) *fdChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$")
	cmd.Env = append(os.Environ(), fdChildEnv+"="+strconv.Itoa(maxConns))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &fdChild{more: make(chan struct{}, 1), exited: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			ch.mu.Lock()
			ch.lines = append(ch.lines, sc.Text())
			ch.mu.Unlock()
			select {
			case ch.more <- struct{}{}:
			default:
			}
		}
		ch.exitErr = cmd.Wait()
		close(ch.exited)
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-ch.exited:
		case <-time.After(fdDeadline):
			_ = cmd.Process.Kill()
			<-ch.exited
			t.Errorf("the child did not stop when told to")
			return
		}
		if ch.exitErr != nil {
			t.Errorf("the child did not stop cleanly: %v; it said:\n%s", ch.exitErr, ch.output())
		}
	})
	ready := ch.waitLine(t, func(l string) bool { return strings.HasPrefix(l, "ready ") })
	if _, err := fmt.Sscanf(ready, "ready %s %d", &ch.addr, &ch.maxConns); err != nil {
		t.Fatalf("child: %q: %v", ready, err)
	}
	return ch
}

func (ch *fdChild) hasLine(match func(string) bool) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, l := range ch.lines {
		if match(l) {
			return true
		}
	}
	return false
}

func (ch *fdChild) output() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return strings.Join(ch.lines, "\n")
}

// waitLine waits for the child to print a line that matches.
func (ch *fdChild) waitLine(t *testing.T, match func(string) bool) string {
	t.Helper()
	deadline := time.After(fdDeadline)
	for {
		ch.mu.Lock()
		for _, l := range ch.lines {
			if match(l) {
				ch.mu.Unlock()
				return l
			}
		}
		ch.mu.Unlock()
		select {
		case <-ch.more:
		case <-ch.exited:
			if !ch.hasLine(match) {
				t.Fatalf("child exited; it said:\n%s", ch.output())
			}
		case <-deadline:
			t.Fatalf("child is silent; it said:\n%s", ch.output())
		}
	}
}

// alive fails the test if the engine stopped or accept ever failed.
func (ch *fdChild) alive(t *testing.T, when string) {
	t.Helper()
	select {
	case <-ch.exited:
		t.Fatalf("%s: the child exited; it said:\n%s", when, ch.output())
	default:
	}
	if ch.hasLine(func(l string) bool {
		return strings.HasPrefix(l, "engine stopped") || strings.Contains(l, "Accept() failed")
	}) {
		t.Fatalf("%s: the engine stopped; it said:\n%s", when, ch.output())
	}
}

// outcome is how one upgrade attempt ended.
type outcome int

const (
	upgraded outcome = iota
	refused          // 503
	dropped          // closed (EOF or reset) before an answer
)

// upgrade dials and upgrades once. Anything but 101, 503 or a clean close
// is an error: a timeout means the server hung, a refused dial that it is
// gone.
func (ch *fdChild) upgrade() (*wstest.Client, outcome, error) {
	conn, err := net.DialTimeout("tcp", ch.addr, fdDeadline)
	if err != nil {
		return nil, 0, fmt.Errorf("dial: %w", err)
	}
	_ = conn.SetWriteDeadline(time.Now().Add(fdDeadline))
	c, err := wstest.Upgrade(conn, ch.addr, "/")
	var se *wstest.HTTPStatusError
	switch {
	case err == nil:
		return c, upgraded, nil
	case errors.As(err, &se) && se.Status == 503:
		return nil, refused, nil
	case errors.As(err, &se):
		return nil, 0, err
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return nil, dropped, nil
	}
	return nil, 0, err
}

// upgradeWhenRoom retries while the server answers 503: the closes of
// earlier clients reach it a little after the client side returns.
func (ch *fdChild) upgradeWhenRoom(t *testing.T) *wstest.Client {
	t.Helper()
	deadline := time.Now().Add(fdDeadline)
	for {
		c, o, err := ch.upgrade()
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		if o == upgraded {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room within %v (last outcome %d)", fdDeadline, o)
		}
		// The freed room shows only through the next attempt; pace them.
		<-time.After(5 * time.Millisecond)
	}
}

func echoOnce(t *testing.T, c *wstest.Client, what string) {
	t.Helper()
	if err := c.WriteMessage(codec.OpText, []byte(what)); err != nil {
		t.Fatalf("echo %s: write: %v", what, err)
	}
	f, err := c.ReadData()
	if err != nil || string(f.Payload) != what {
		t.Fatalf("echo %s: %q, %v", what, f.Payload, err)
	}
}

func closeAll(cs []*wstest.Client) {
	for _, c := range cs {
		c.Close()
	}
}

func (ch *fdChild) burstAndRecover(t *testing.T) {
	held := ch.burst(t)
	defer func() { closeAll(held) }()
	ch.alive(t, "after the burst")

	// At capacity the server still answers, and the admitted conns work.
	if _, o, err := ch.upgrade(); err != nil || o == upgraded {
		t.Fatalf("an upgrade at capacity: outcome %d, %v", o, err)
	}
	for i, c := range held[:3] {
		echoOnce(t, c, "busy "+strconv.Itoa(i))
	}

	// Room freed by a few leaving clients is usable again.
	closeAll(held[:10])
	held = held[10:]
	probe := ch.upgradeWhenRoom(t)
	echoOnce(t, probe, "probe")
	probe.Close()

	// Once everyone has left, the full capacity is back: the count of
	// live conns did not leak, and the cap still bites at the same place.
	closeAll(held)
	held = nil
	for range ch.maxConns {
		held = append(held, ch.upgradeWhenRoom(t))
	}
	if _, o, err := ch.upgrade(); err != nil || o == upgraded {
		t.Fatalf("upgrade %d after recovery: outcome %d, %v", ch.maxConns+1, o, err)
	}
	echoOnce(t, held[len(held)-1], "recovered")
	ch.alive(t, "after recovery")
}

// burst makes burstDials concurrent upgrades and returns the admitted
// clients, still open.
func (ch *fdChild) burst(t *testing.T) []*wstest.Client {
	t.Helper()
	var (
		mu     sync.Mutex
		held   []*wstest.Client
		counts [3]int
		errs   []error
		wg     sync.WaitGroup
	)
	start := make(chan struct{})
	for range burstDials {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			c, o, err := ch.upgrade()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			counts[o]++
			if c != nil {
				held = append(held, c)
			}
		}()
	}
	close(start)
	wg.Wait()
	t.Logf("burst of %d: upgraded %d, 503 %d, closed %d, failed %d (MaxConns %d)",
		burstDials, counts[upgraded], counts[refused], counts[dropped], len(errs), ch.maxConns)
	if len(errs) > 0 {
		closeAll(held)
		t.Fatalf("%d attempts failed, first: %v; child said:\n%s", len(errs), errs[0], ch.output())
	}
	if counts[upgraded] != ch.maxConns || counts[refused] == 0 {
		closeAll(held)
		t.Fatalf("want exactly MaxConns=%d upgraded and some 503s; child said:\n%s", ch.maxConns, ch.output())
	}
	return held
}
