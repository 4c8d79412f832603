package client

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// gnet's package-level ants pool (the real servers of
		// realserver_test.go) starts these at init and never stops them.
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
		goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"))
}

// recorder collects what the callbacks report.
type recorder struct {
	mu       sync.Mutex
	pubs     map[string][]pubRec
	states   []stateRec
	recovers []recoverRec
	errs     []error
}

type pubRec struct {
	offset uint64
	epoch  string
	data   string
}

type stateRec struct {
	state State
	err   error
}

type recoverRec struct {
	channel   string
	recovered bool
	epoch     string
}

func newRecorder() *recorder { return &recorder{pubs: map[string][]pubRec{}} }

func (r *recorder) options(o Options) Options {
	o.OnState = func(s State, err error) {
		r.mu.Lock()
		r.states = append(r.states, stateRec{s, err})
		r.mu.Unlock()
	}
	o.OnPublication = func(ch string, off uint64, epoch string, data json.RawMessage) {
		r.mu.Lock()
		r.pubs[ch] = append(r.pubs[ch], pubRec{off, epoch, string(data)})
		r.mu.Unlock()
	}
	o.OnRecover = func(ch string, recovered bool, epoch string) {
		r.mu.Lock()
		r.recovers = append(r.recovers, recoverRec{ch, recovered, epoch})
		r.mu.Unlock()
	}
	o.OnError = func(err error) {
		r.mu.Lock()
		r.errs = append(r.errs, err)
		r.mu.Unlock()
	}
	return o
}

func (r *recorder) offsets(ch string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, p := range r.pubs[ch] {
		out = append(out, p.offset)
	}
	return out
}

func (r *recorder) count(ch string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pubs[ch])
}

func (r *recorder) recoverList() []recoverRec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]recoverRec(nil), r.recovers...)
}

func (r *recorder) stateList() []State {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []State
	for _, s := range r.states {
		out = append(out, s.state)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func equalU64(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fast are options that make the tests quick: short backoff, no pings.
func fast() Options {
	return Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, PingInterval: -1}
}

func dial(t *testing.T, s *fakeServer, o Options) *Client {
	t.Helper()
	c, err := Dial(ctxT(t), s.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func TestSubscribePublishPresence(t *testing.T) {
	s := newFakeServer(t)
	s.publish("chat", `"before"`)
	rec := newRecorder()
	o := rec.options(fast())
	o.Token = "tok en"
	c := dial(t, s, o)
	ctx := ctxT(t)

	res, err := c.Subscribe(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	if res != (SubscribeResult{Epoch: "e1", Offset: 1}) {
		t.Fatalf("subscribe result %+v", res)
	}
	pr, err := c.Publish(ctx, "chat", map[string]string{"text": "hi"})
	if err != nil {
		t.Fatal(err)
	}
	if pr != (PublishResult{Offset: 2, Epoch: "e1"}) {
		t.Fatalf("publish result %+v", pr)
	}
	waitFor(t, "own publication", func() bool { return rec.count("chat") == 1 })
	rec.mu.Lock()
	got := rec.pubs["chat"][0]
	rec.mu.Unlock()
	if got != (pubRec{2, "e1", `{"text":"hi"}`}) {
		t.Fatalf("publication %+v", got)
	}
	// Subscribing again returns the first answer, without a new request.
	if res2, err := c.Subscribe(ctx, "chat"); err != nil || res2 != res {
		t.Fatalf("second subscribe: %+v %v", res2, err)
	}
	p, err := c.Presence(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	if p.Channel != "chat" || p.Count != 1 || p.Connections != 1 || len(p.Clients) != 1 || !strings.Contains(string(p.Raw), `"count":1`) {
		t.Fatalf("presence %+v", p)
	}
	s.with(func() {
		if len(s.tokens) != 1 || s.tokens[0] != "tok en" || s.tokenInURL {
			t.Errorf("tokens seen by the server: %q (in the URL: %v)", s.tokens, s.tokenInURL)
		}
		if subscribes := len(s.requestsWith(`"op":"subscribe"`)); subscribes != 1 {
			t.Errorf("%d subscribe requests, want 1", subscribes)
		}
	})
	if st := rec.stateList(); len(st) != 2 || st[0] != StateConnecting || st[1] != StateConnected {
		t.Errorf("states %v", st)
	}
}

// The server drops the TCP connection and refuses upgrades for a while;
// meanwhile publications go on. The client must come back, subscribe with
// since = the last offset it delivered and deliver every missed publication
// exactly once, in order — also when the server replays some it already
// had and sends everything fragmented.
func TestReconnectRecoversExactlyOnce(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.replayOverlap = 3; s.fragment = true })
	rec := newRecorder()
	c := dial(t, s, rec.options(fast()))
	ctx := ctxT(t)
	if _, err := c.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		s.publish("news", fmt.Sprint(i))
	}
	waitFor(t, "5 publications", func() bool { return rec.count("news") == 5 })

	s.with(func() { s.refuse = 503 })
	s.dropAll()
	for i := 6; i <= 20; i++ {
		s.publish("news", fmt.Sprint(i))
	}
	s.publish("other", `"x"`)
	waitFor(t, "the client to notice", func() bool { return c.State() != StateConnected })
	// A publish made while disconnected waits for the next connection.
	type pubOut struct {
		r   PublishResult
		err error
	}
	pubDone := make(chan pubOut, 1)
	go func() {
		r, err := c.Publish(ctx, "news", "from-client")
		pubDone <- pubOut{r, err}
	}()
	waitFor(t, "refused attempts", func() bool {
		var n int
		s.with(func() { n = s.handshakes })
		return n >= 4
	})
	if st := c.State(); st == StateConnected {
		t.Fatalf("state %v while the server refuses", st)
	}
	s.with(func() { s.refuse = 0 })
	po := <-pubDone
	if po.err != nil || po.r.Offset != 21 {
		t.Fatalf("publish across the drop: %+v %v", po.r, po.err)
	}
	for i := 22; i <= 30; i++ {
		s.publish("news", fmt.Sprint(i))
	}
	waitFor(t, "30 publications", func() bool { return rec.count("news") >= 30 })
	time.Sleep(20 * time.Millisecond) // would-be duplicates have time to arrive
	if got := rec.offsets("news"); !equalU64(got, seq(1, 30)) {
		t.Fatalf("offsets %v", got)
	}
	if got := rec.offsets("other"); !equalU64(got, []uint64{1}) {
		t.Fatalf("other: offsets %v", got)
	}
	rec.mu.Lock()
	for i, p := range rec.pubs["news"] {
		want := fmt.Sprint(i + 1)
		if i+1 == 21 {
			want = `"from-client"`
		}
		if p.data != want || p.epoch != "e1" {
			t.Errorf("publication %d: %+v", i+1, p)
		}
	}
	rec.mu.Unlock()
	s.with(func() {
		var last *Position
		for _, r := range s.sinces {
			if r.channel == "news" {
				last = r.since
			}
		}
		if last == nil || *last != (Position{Offset: 5, Epoch: "e1"}) {
			t.Errorf("resubscribed with since %+v, want {5 e1}", last)
		}
	})
	want := map[recoverRec]bool{{"news", true, "e1"}: true, {"other", true, "e1"}: true}
	if got := rec.recoverList(); len(got) != 2 || !want[got[0]] || !want[got[1]] {
		t.Errorf("recovers %+v", got)
	}
	if c.Reconnects() != 1 {
		t.Errorf("Reconnects() = %d", c.Reconnects())
	}
	st := rec.stateList()
	if st[len(st)-1] != StateConnected || !containsState(st, StateDisconnected) {
		t.Errorf("states %v", st)
	}
}

func containsState(st []State, s State) bool {
	for _, x := range st {
		if x == s {
			return true
		}
	}
	return false
}

// After a server restart the history is gone: the client must say so
// (OnRecover false with the new epoch) before delivering the new epoch's
// publications, and resume from its latest offset.
func TestRecoveredFalse(t *testing.T) {
	s := newFakeServer(t)
	rec := newRecorder()
	c := dial(t, s, rec.options(fast()))
	ctx := ctxT(t)
	if _, err := c.Subscribe(ctx, "news"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		s.publish("news", fmt.Sprint(i))
	}
	waitFor(t, "3 publications", func() bool { return rec.count("news") == 3 })
	s.with(func() { s.refuse = 503 })
	s.restart("e2")
	s.publish("news", `"lost-1"`)
	s.publish("news", `"lost-2"`)
	s.with(func() { s.refuse = 0 })
	waitFor(t, "recover event", func() bool { return len(rec.recoverList()) == 1 })
	if got := rec.recoverList()[0]; got != (recoverRec{"news", false, "e2"}) {
		t.Fatalf("recover %+v", got)
	}
	s.publish("news", `"new"`)
	waitFor(t, "4 publications", func() bool { return rec.count("news") == 4 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if got := rec.pubs["news"][3]; got != (pubRec{3, "e2", `"new"`}) {
		t.Fatalf("after the reset: %+v", got)
	}
}

// A publication missing from the live stream (offset jumps) makes the
// client subscribe again with since, and the server fills the gap.
func TestGapIsRepaired(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.skipLive[3] = true })
	rec := newRecorder()
	c := dial(t, s, rec.options(fast()))
	if _, err := c.Subscribe(ctxT(t), "news"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		s.publish("news", fmt.Sprint(i))
	}
	waitFor(t, "6 publications", func() bool { return rec.count("news") >= 6 })
	time.Sleep(20 * time.Millisecond)
	if got := rec.offsets("news"); !equalU64(got, seq(1, 6)) {
		t.Fatalf("offsets %v", got)
	}
	s.with(func() {
		last := s.sinces[len(s.sinces)-1]
		if last.since == nil || *last.since != (Position{2, "e1"}) {
			t.Errorf("gap repair asked since %+v, want {2 e1}", last.since)
		}
	})
}

func TestBackoff(t *testing.T) {
	min, max := 100*time.Millisecond, 2*time.Second
	for attempt := 0; attempt < 100; attempt++ {
		limit := max
		if attempt < 5 {
			limit = min << attempt
		}
		var top time.Duration
		for i := 0; i < 200; i++ {
			d := backoff(attempt, min, max)
			if d < 0 || d > limit {
				t.Fatalf("attempt %d: %v outside [0, %v]", attempt, d, limit)
			}
			top = maxDur(top, d)
		}
		if top < limit/2 {
			t.Errorf("attempt %d: jitter never went above %v (limit %v)", attempt, top, limit)
		}
	}
}

func maxDur(a, b time.Duration) time.Duration {
	if a > b {
		return a
	}
	return b
}

// The attempt counter grows while attempts fail and starts again from zero
// once a connection stayed up for HealthyAfter.
func TestBackoffResetsAfterHealthyPeriod(t *testing.T) {
	s := newFakeServer(t)
	var mu sync.Mutex
	var attempts []int
	o := fast()
	o.MinBackoff, o.MaxBackoff, o.HealthyAfter = time.Millisecond, 4*time.Millisecond, 100*time.Millisecond
	o.testHookBackoff = func(a int, d time.Duration) {
		if d > min(o.MaxBackoff, o.MinBackoff<<a) {
			t.Errorf("attempt %d: delay %v", a, d)
		}
		mu.Lock()
		attempts = append(attempts, a)
		mu.Unlock()
	}
	get := func() []int {
		mu.Lock()
		defer mu.Unlock()
		return append([]int(nil), attempts...)
	}
	c := dial(t, s, o)
	s.with(func() { s.refuse = 503 })
	s.dropAll()
	waitFor(t, "5 attempts", func() bool { return len(get()) >= 5 })
	s.with(func() { s.refuse = 0 })
	waitFor(t, "reconnect", func() bool { return c.State() == StateConnected })
	n := len(get())
	for i, a := range get() {
		if a != i {
			t.Fatalf("attempts %v, want 0, 1, 2, ...", get())
		}
	}
	// A connection that dies at once does not reset the counter...
	s.dropAll()
	waitFor(t, "reconnect", func() bool { return len(get()) > n && c.State() == StateConnected })
	if got := get()[n]; got != n {
		t.Fatalf("after a short connection: attempt %d, want %d", got, n)
	}
	// ...one that stayed up for HealthyAfter does.
	time.Sleep(150 * time.Millisecond)
	n = len(get())
	s.dropAll()
	waitFor(t, "reconnect", func() bool { return len(get()) > n })
	if got := get()[n]; got != 0 {
		t.Fatalf("after a healthy connection: attempt %d, want 0", got)
	}
}

func TestPermanentRefusal(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.refuse = 403 })
	_, err := Dial(ctxT(t), s.url(), fast())
	var he *HandshakeError
	if !errors.As(err, &he) || he.Status != 403 || !he.Permanent() {
		t.Fatalf("Dial: %v", err)
	}
	// 503 is retried until ctx ends.
	s.with(func() { s.refuse = 503 })
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, s.url(), fast())
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Dial against 503: %v", err)
	}
	var n int
	s.with(func() { n = s.handshakes })
	if n < 3 {
		t.Errorf("only %d attempts in 300ms", n)
	}
}

func TestHandshakeChecksAccept(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.badAccept = true })
	c := &Client{opts: fast()}
	c.opts.setDefaults()
	tg, err := parseTarget(s.url())
	if err != nil {
		t.Fatal(err)
	}
	c.targets = []target{tg}
	cn, _, err := c.dial(ctxT(t))
	if err == nil || !strings.Contains(err.Error(), "Sec-WebSocket-Accept") {
		if cn != nil {
			cn.nc.Close()
		}
		t.Fatalf("dial with a bad accept: %v", err)
	}
}

func TestBadURL(t *testing.T) {
	for _, u := range []string{"ftp://x/ws", "ws:///ws", "://"} {
		if _, err := New(u, Options{}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
	if _, err := New("ws://x/ws", Options{Header: map[string][]string{"X": {"a\r\nb"}}}); err == nil {
		t.Error("header with CRLF accepted")
	}
}

func TestContextAndFailFast(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.refuse = 503 })

	// Waiting mode: requests wait for a connection, bounded by ctx.
	c, err := New(s.url(), fast())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = c.Publish(ctx, "chat", 1)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish while disconnected: %v", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err = c.Subscribe(ctx, "gone")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Subscribe while disconnected: %v", err)
	}
	// The abandoned subscription is not made once connected.
	s.with(func() { s.refuse = 0 })
	waitFor(t, "connected", func() bool { return c.State() == StateConnected })
	if _, err := c.Subscribe(ctxT(t), "kept"); err != nil {
		t.Fatal(err)
	}
	if s.subscribers("gone") != 0 || s.subscribers("kept") != 1 {
		t.Errorf("server subscriptions: gone=%d kept=%d", s.subscribers("gone"), s.subscribers("kept"))
	}
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctxT(t), "chat", 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Publish after Close: %v", err)
	}
	if _, err := c.Subscribe(ctxT(t), "chat"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}

	// Fail-fast mode.
	s.with(func() { s.refuse = 503 })
	o := fast()
	o.FailFast = true
	c2, err := New(s.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(context.Background())
	start := time.Now()
	if _, err := c2.Publish(ctxT(t), "chat", 1); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("fail-fast Publish: %v", err)
	}
	if _, err := c2.Subscribe(ctxT(t), "chat"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("fail-fast Subscribe: %v", err)
	}
	if time.Since(start) > time.Second {
		t.Error("fail-fast requests waited")
	}
}

// Close with a ctx that ends before the server answers the close frame
// cuts the connection and still ends every goroutine (goleak checks).
func TestCloseContext(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.ignoreClose = true })
	rec := newRecorder()
	c, err := Dial(ctxT(t), s.url(), rec.options(fast()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close: %v", err)
	}
	if c.State() != StateClosed {
		t.Fatalf("state %v", c.State())
	}
	// The callbacks still run, the last one being OnState(StateClosed).
	waitFor(t, "OnState(closed)", func() bool {
		st := rec.stateList()
		return st[len(st)-1] == StateClosed
	})
	// A second Close returns at once.
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCloseGraceful(t *testing.T) {
	s := newFakeServer(t)
	c, err := Dial(ctxT(t), s.url(), fast())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctxT(t), "a"); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "server sees the close", func() bool { return s.subscribers("a") == 0 })
}

func TestCloseFromCallback(t *testing.T) {
	s := newFakeServer(t)
	done := make(chan error, 1)
	var c *Client
	o := fast()
	ready := make(chan struct{})
	o.OnPublication = func(string, uint64, string, json.RawMessage) {
		<-ready
		done <- c.Close(context.Background())
	}
	c, err := Dial(ctxT(t), s.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	close(ready)
	if _, err := c.Subscribe(ctxT(t), "a"); err != nil {
		t.Fatal(err)
	}
	s.publish("a", "1")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close from a callback hung")
	}
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
}

// A callback may make requests that wait for a reply.
func TestRequestFromCallback(t *testing.T) {
	s := newFakeServer(t)
	var c *Client
	got := make(chan PublishResult, 1)
	o := fast()
	o.OnPublication = func(ch string, off uint64, _ string, _ json.RawMessage) {
		if ch == "in" {
			r, err := c.Publish(context.Background(), "out", off)
			if err != nil {
				t.Error(err)
			}
			got <- r
		}
	}
	c = dial(t, s, o)
	if _, err := c.Subscribe(ctxT(t), "in"); err != nil {
		t.Fatal(err)
	}
	s.publish("in", "1")
	select {
	case r := <-got:
		if r.Offset != 1 {
			t.Fatalf("%+v", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Publish from a callback hung")
	}
}

func TestServerErrorReply(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.forbidden = "secret" })
	c := dial(t, s, fast())
	_, err := c.Subscribe(ctxT(t), "secret")
	var se *ServerError
	if !errors.As(err, &se) || se.Code != "forbidden" {
		t.Fatalf("Subscribe to a forbidden channel: %v", err)
	}
	// The connection stays up and the channel is not remembered.
	if _, err := c.Subscribe(ctxT(t), "open"); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	_, kept := c.subs["secret"]
	c.mu.Unlock()
	if kept {
		t.Error("a refused subscription is kept")
	}
}

// A channel the server refuses after a reconnect is reported via OnError.
func TestResubscribeRefused(t *testing.T) {
	s := newFakeServer(t)
	rec := newRecorder()
	c := dial(t, s, rec.options(fast()))
	if _, err := c.Subscribe(ctxT(t), "news"); err != nil {
		t.Fatal(err)
	}
	s.with(func() { s.forbidden = "news" })
	s.dropAll()
	waitFor(t, "OnError", func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.errs) == 1
	})
	rec.mu.Lock()
	var se *SubscriptionError
	if !errors.As(rec.errs[0], &se) || se.Channel != "news" {
		t.Errorf("OnError(%v)", rec.errs[0])
	}
	rec.mu.Unlock()
}

func TestUnsubscribe(t *testing.T) {
	s := newFakeServer(t)
	rec := newRecorder()
	c := dial(t, s, rec.options(fast()))
	ctx := ctxT(t)
	if _, err := c.Subscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	s.publish("a", "1")
	waitFor(t, "1", func() bool { return rec.count("a") == 1 })
	if err := c.Unsubscribe(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if s.subscribers("a") != 0 {
		t.Fatal("still subscribed on the server")
	}
	if err := c.Unsubscribe(ctx, "a"); err != nil {
		t.Fatal("second Unsubscribe:", err)
	}
	s.publish("a", "2")
	// Not resubscribed after a reconnect either.
	s.dropAll()
	waitFor(t, "reconnect", func() bool { return c.Reconnects() == 1 && c.State() == StateConnected })
	if _, err := c.Subscribe(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if s.subscribers("a") != 0 || rec.count("a") != 1 {
		t.Fatal("unsubscribed channel came back")
	}
}

// The server pings: the client answers with the same payload. The server
// goes silent: the client's own pings go unanswered and it reconnects.
func TestPingPongAndDeadServer(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.pingOnOpen = true })
	rec := newRecorder()
	o := rec.options(fast())
	o.PingInterval = 30 * time.Millisecond
	c := dial(t, s, o)
	waitFor(t, "pong", func() bool {
		var p []string
		s.with(func() { p = s.pongs })
		return len(p) > 0 && p[0] == "hello"
	})
	// A quiet but healthy connection stays up: pings are answered.
	time.Sleep(150 * time.Millisecond)
	if c.Reconnects() != 0 {
		t.Fatal("reconnected although pings were answered")
	}
	s.with(func() { s.blackhole = true })
	waitFor(t, "a reconnect after the server went silent", func() bool { return c.Reconnects() >= 1 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	found := false
	for _, st := range rec.states {
		if st.state == StateDisconnected && errors.Is(st.err, errPingTimeout) {
			found = true
		}
	}
	if !found {
		t.Errorf("no disconnect for a ping timeout in %+v", rec.states)
	}
}

// Publishers on several goroutines while the connection drops now and
// then: every publish either lands or says ErrConnectionLost, and the
// subscriber still sees each offset once, in order.
func TestConcurrentPublishAcrossDrops(t *testing.T) {
	s := newFakeServer(t)
	rec := newRecorder()
	var orderErr error
	var mu sync.Mutex
	var last uint64
	o := rec.options(fast())
	inner := o.OnPublication
	o.OnPublication = func(ch string, off uint64, epoch string, data json.RawMessage) {
		mu.Lock()
		if off != last+1 && orderErr == nil {
			orderErr = fmt.Errorf("offset %d after %d", off, last)
		}
		last = off
		mu.Unlock()
		inner(ch, off, epoch, data)
	}
	c := dial(t, s, o)
	ctx := ctxT(t)
	if _, err := c.Subscribe(ctx, "chat"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var lost, ok int
	var cmu sync.Mutex
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				_, err := c.Publish(ctx, "chat", i)
				cmu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, ErrConnectionLost):
					lost++
				default:
					t.Error(err)
				}
				cmu.Unlock()
			}
		}()
	}
	for i := 0; i < 5; i++ {
		time.Sleep(3 * time.Millisecond)
		s.dropAll()
	}
	wg.Wait()
	var total int
	s.with(func() { total = len(s.hist["chat"]) })
	waitFor(t, "all publications", func() bool { return rec.count("chat") == total })
	mu.Lock()
	defer mu.Unlock()
	if orderErr != nil {
		t.Fatal(orderErr)
	}
	if ok+lost != 400 || total < ok {
		t.Fatalf("ok=%d lost=%d stored=%d", ok, lost, total)
	}
	t.Logf("%d published, %d lost in flight, %d stored, %d reconnects", ok, lost, total, c.Reconnects())
}

// The server sends a close frame: the client echoes it, reports the
// CloseError and reconnects.
func TestServerCloseFrame(t *testing.T) {
	s := newFakeServer(t)
	rec := newRecorder()
	c := dial(t, s, rec.options(fast()))
	s.with(func() {
		for fc := range s.conns {
			fc.send(appendServerClose(1001, "going away"))
		}
	})
	waitFor(t, "reconnect", func() bool { return c.Reconnects() == 1 })
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var ce *CloseError
	for _, st := range rec.states {
		if st.state == StateDisconnected && errors.As(st.err, &ce) {
			break
		}
	}
	if ce == nil || ce.Code != 1001 || ce.Reason != "going away" {
		t.Fatalf("close error %+v in %+v", ce, rec.states)
	}
}

// SubscribeSince starts from a position the application kept.
func TestSubscribeSince(t *testing.T) {
	s := newFakeServer(t)
	for i := 1; i <= 5; i++ {
		s.publish("news", fmt.Sprint(i))
	}
	rec := newRecorder()
	c := dial(t, s, rec.options(fast()))
	res, err := c.SubscribeSince(ctxT(t), "news", Position{Offset: 2, Epoch: "e1"})
	if err != nil || !res.Recovered || res.Offset != 5 {
		t.Fatalf("%+v %v", res, err)
	}
	waitFor(t, "3 publications", func() bool { return rec.count("news") == 3 })
	if got := rec.offsets("news"); !equalU64(got, seq(3, 5)) {
		t.Fatalf("offsets %v", got)
	}
	res, err = c.SubscribeSince(ctxT(t), "stale", Position{Offset: 2, Epoch: "old"})
	if err != nil || res.Recovered {
		t.Fatalf("%+v %v", res, err)
	}
	waitFor(t, "recover events", func() bool { return len(rec.recoverList()) == 2 })
	if got := rec.recoverList(); got[0] != (recoverRec{"news", true, "e1"}) || got[1] != (recoverRec{"stale", false, "e1"}) {
		t.Fatalf("recovers %+v", got)
	}
}

// A server that pushes the replay before its subscribe reply loses nothing
// either: publications that overtake the reply are kept until it comes.
func TestReplayBeforeReply(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.replayFirst = true; s.replayOverlap = 2 })
	rec := newRecorder()
	c := dial(t, s, rec.options(fast()))
	if _, err := c.Subscribe(ctxT(t), "news"); err != nil {
		t.Fatal(err)
	}
	s.publish("news", "1")
	waitFor(t, "1", func() bool { return rec.count("news") == 1 })
	s.with(func() { s.refuse = 503 })
	s.dropAll()
	for i := 2; i <= 10; i++ {
		s.publish("news", fmt.Sprint(i))
	}
	s.with(func() { s.refuse = 0 })
	waitFor(t, "10", func() bool { return rec.count("news") >= 10 })
	s.publish("news", "11")
	waitFor(t, "11", func() bool { return rec.count("news") >= 11 })
	time.Sleep(20 * time.Millisecond)
	if got := rec.offsets("news"); !equalU64(got, seq(1, 11)) {
		t.Fatalf("offsets %v", got)
	}
}

func TestTLS(t *testing.T) {
	s, pool := newFakeTLSServer(t)
	rec := newRecorder()
	o := rec.options(fast())
	o.TLSConfig = &tls.Config{RootCAs: pool}
	u := "wss://" + s.ln.Addr().String() + "/ws"
	c, err := Dial(ctxT(t), u, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Subscribe(ctxT(t), "news"); err != nil {
		t.Fatal(err)
	}
	s.publish("news", "1")
	s.dropAll()
	s.publish("news", "2")
	waitFor(t, "2 publications over TLS", func() bool { return rec.count("news") == 2 })
	if got := rec.offsets("news"); !equalU64(got, seq(1, 2)) {
		t.Fatalf("offsets %v", got)
	}
	// Without the certificate's root the handshake fails, and is retried.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := Dial(ctx, u, fast()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Dial with an unknown certificate: %v", err)
	}
}

// After a close for abuse the client does not come back; after any other
// close it does.
func TestRateLimitCloseIsFinal(t *testing.T) {
	s := newFakeServer(t)
	rec := newRecorder()
	c, err := Dial(ctxT(t), s.url(), rec.options(fast()))
	if err != nil {
		t.Fatal(err)
	}
	s.with(func() {
		for fc := range s.conns {
			fc.send(appendServerClose(1008, "slow consumer"))
		}
	})
	waitFor(t, "reconnect after a slow-consumer close", func() bool { return c.Reconnects() == 1 && c.State() == StateConnected })
	s.with(func() {
		for fc := range s.conns {
			fc.send(appendServerClose(1008, "rate limit exceeded"))
		}
	})
	waitFor(t, "closed", func() bool { return c.State() == StateClosed })
	if err := c.Close(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	last := rec.states[len(rec.states)-1]
	var ce *CloseError
	if last.state != StateClosed || !errors.As(last.err, &ce) || !ce.Permanent() {
		t.Fatalf("last state %+v", last)
	}
}

// A 401 is final, unless a TokenFunc can bring a new token.
func TestUnauthorizedWithTokenFunc(t *testing.T) {
	s := newFakeServer(t)
	s.with(func() { s.refuse = 401 })
	if _, err := Dial(ctxT(t), s.url(), fast()); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("Dial: %v", err)
	}
	o := fast()
	var mu sync.Mutex
	n := 0
	o.TokenFunc = func(context.Context) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		n++
		if n == 3 {
			s.with(func() { s.refuse = 0 })
		}
		return fmt.Sprintf("t%d", n), nil
	}
	dial(t, s, o)
	s.with(func() {
		if got := s.tokens[len(s.tokens)-1]; got != "t3" {
			t.Errorf("tokens %q", s.tokens)
		}
	})
}

// A call whose context is already canceled fails with the context's error
// and sends nothing: on a fast link the reply used to win the race against
// ctx.Done() at random, and the server saw the request either way.
func TestCanceledContextSendsNothing(t *testing.T) {
	s := newFakeServer(t)
	c := dial(t, s, Options{})
	if _, err := c.Presence(ctxT(t), "chat"); err != nil { // connected, and the link is warm
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for i := range 50 {
		if _, err := c.Presence(ctx, "chat"); !errors.Is(err, context.Canceled) {
			t.Fatalf("call %d: %v, want context.Canceled", i, err)
		}
	}
	if _, err := c.Subscribe(ctx, "never"); !errors.Is(err, context.Canceled) {
		t.Fatalf("subscribe: %v, want context.Canceled", err)
	}
	if _, err := c.Presence(ctxT(t), "chat"); err != nil { // after every earlier request on the link
		t.Fatal(err)
	}
	s.with(func() {
		if n := len(s.requestsWith(`"op":"presence"`)); n != 2 {
			t.Errorf("the server got %d presence requests, want 2 (none with the canceled context)", n)
		}
		if rs := s.requestsWith(`"never"`); len(rs) > 0 {
			t.Errorf("the server got %q", rs)
		}
	})
}
