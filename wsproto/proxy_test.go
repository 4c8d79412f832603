package wsproto

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// backend is an httptest server standing for the application's backend:
// answer decides each call's answer; hold, while set, blocks calls until
// released or the caller gives up.
type backend struct {
	t     *testing.T
	srv   *httptest.Server
	calls atomic.Int64
	conns atomic.Int64 // TCP connections accepted

	mu      sync.Mutex
	answer  func(path string, body map[string]json.RawMessage) (status int, reply string)
	held    chan struct{} // closed to release held calls
	holding bool
	waiting atomic.Int64 // calls blocked in hold
}

func newBackend(t *testing.T) *backend {
	b := &backend{t: t, held: make(chan struct{})}
	b.answer = func(string, map[string]json.RawMessage) (int, string) { return 200, `{"result":{}}` }
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	b.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			b.conns.Add(1)
		}
	}
	b.srv.Start()
	t.Cleanup(b.stop)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	b.calls.Add(1)
	var body map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Method != http.MethodPost ||
		r.Header.Get("Content-Type") != "application/json" {
		b.t.Errorf("backend got %s %s (%v)", r.Method, r.Header.Get("Content-Type"), err)
	}
	b.mu.Lock()
	answer, holding, held := b.answer, b.holding, b.held
	b.mu.Unlock()
	if holding {
		b.waiting.Add(1)
		select {
		case <-held:
		case <-r.Context().Done():
		}
		b.waiting.Add(-1)
	}
	status, reply := answer(r.URL.Path, body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, reply)
}

func (b *backend) hold() {
	b.mu.Lock()
	b.holding = true
	b.mu.Unlock()
}

func (b *backend) release() {
	b.mu.Lock()
	if b.holding {
		b.holding = false
		close(b.held)
		b.held = make(chan struct{})
	}
	b.mu.Unlock()
}

func (b *backend) setAnswer(f func(path string, body map[string]json.RawMessage) (int, string)) {
	b.mu.Lock()
	b.answer = f
	b.mu.Unlock()
}

func (b *backend) stop() {
	b.release()
	b.srv.Close()
}

// proxied starts a server whose proxies point at b.
func proxied(t *testing.T, b *backend, p ProxyConfig) *env {
	t.Helper()
	u := b.srv.URL
	if p.RPCURL == "" {
		p.RPCURL = u + "/rpc"
	}
	e := start(t, Config{Proxy: p, RateLimit: -1}, nil)
	t.Cleanup(e.h.CloseProxies)
	return e
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestRPCAnswered(t *testing.T) {
	b := newBackend(t)
	b.setAnswer(func(path string, body map[string]json.RawMessage) (int, string) {
		if path != "/rpc" {
			return 404, ""
		}
		return 200, fmt.Sprintf(`{"result":{"method":%s,"user":%s,"client":%s,"data":%s,"has_addr":%v}}`,
			body["method"], body["user"], body["client"], body["data"], len(body["remote_addr"]) > 2)
	})
	e := proxied(t, b, ProxyConfig{})
	c := e.dial(t)
	var r struct {
		Method, User, Client string
		Data                 map[string]int
		HasAddr              bool `json:"has_addr"`
	}
	c.ok(`{"id":7,"op":"rpc","method":"move","data":{"x":3}}`, &r)
	if r.Method != "move" || r.Data["x"] != 3 || r.User == "" || r.Client == "" || !r.HasAddr {
		t.Fatalf("backend saw %+v", r)
	}
	st := e.h.ProxyStats()
	if len(st) != 1 || st[0].Name != "rpc" || st[0].Calls != 1 || st[0].Errors != 0 || st[0].Count != 1 || st[0].Buckets[len(st[0].Buckets)-1] != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// Serial calls share one keep-alive connection to the backend.
func TestRPCKeepAlive(t *testing.T) {
	b := newBackend(t)
	e := proxied(t, b, ProxyConfig{})
	c := e.dial(t)
	for i := range 20 {
		c.ok(fmt.Sprintf(`{"id":%d,"op":"rpc","method":"a"}`, i), nil)
	}
	if n := b.conns.Load(); n != 1 {
		t.Fatalf("20 serial calls opened %d connections to the backend", n)
	}
}

func TestRPCBackendErrorIsTheReply(t *testing.T) {
	b := newBackend(t)
	b.setAnswer(func(string, map[string]json.RawMessage) (int, string) {
		return 200, `{"error":{"code":"illegal_move","message":"not your turn"}}`
	})
	e := proxied(t, b, ProxyConfig{})
	c := e.dial(t)
	m := c.call(`{"id":"a","op":"rpc","method":"move"}`)
	if m.Error == nil || m.Error.Code != "illegal_move" || m.Error.Message != "not your turn" || string(m.ID) != `"a"` {
		t.Fatalf("got %+v", m)
	}
	c.ok(`{"id":2,"op":"ping"}`, nil)
	// A non-2xx status or a non-JSON answer is the backend failing.
	b.setAnswer(func(string, map[string]json.RawMessage) (int, string) { return 500, `{"result":1}` })
	c.fails(`{"id":3,"op":"rpc","method":"move"}`, CodeBackendUnavailable)
	b.setAnswer(func(string, map[string]json.RawMessage) (int, string) { return 200, `oops` })
	c.fails(`{"id":4,"op":"rpc","method":"move"}`, CodeBackendUnavailable)
	if st := e.h.ProxyStats()[0]; st.Calls != 3 || st.Errors != 2 {
		t.Fatalf("stats %+v", st)
	}
	// The backend's own error replies are the application's: not counted
	// under any of wsd's codes.
	if errs := e.h.Stats().Errors; len(errs) != 1 || errs[CodeBackendUnavailable] != 2 {
		t.Fatalf("error counters %v", errs)
	}
}

func TestRPCRequestChecks(t *testing.T) {
	e := start(t, Config{}, nil)
	e.dial(t).fails(`{"id":1,"op":"rpc","method":"move"}`, CodeUnknownOp)
	b := newBackend(t)
	e = proxied(t, b, ProxyConfig{})
	c := e.dial(t)
	c.fails(`{"id":1,"op":"rpc"}`, CodeBadRequest)
	if b.calls.Load() != 0 {
		t.Fatal("a bad rpc reached the backend")
	}
}

// A slow backend: more rpcs pending than the handler has workers, yet
// another client is served at once, and each rpc gets its error reply
// about the timeout after it was sent.
func TestRPCSlowBackendTimesOutAndNodeStaysHealthy(t *testing.T) {
	b := newBackend(t)
	b.hold()
	const timeout = 400 * time.Millisecond
	e := proxied(t, b, ProxyConfig{Timeout: timeout})
	slow, other := e.dial(t), e.dial(t)
	const n = 40 // the default pool has 4 × GOMAXPROCS workers
	sent := time.Now()
	for i := range n {
		slow.send(fmt.Sprintf(`{"id":%d,"op":"rpc","method":"think"}`, i))
	}
	waitFor(t, "the rpcs to reach the backend", func() bool { return b.waiting.Load() == n })
	// All n are waiting on the backend: the node still answers others.
	var sr SubscribeResult
	other.ok(`{"id":1,"op":"subscribe","channel":"news"}`, &sr)
	other.send(`{"id":2,"op":"publish","channel":"news","data":1}`)
	other.push("news", 1) // its own push comes before its reply
	if m := other.read(); m.Error != nil || string(m.ID) != "2" {
		t.Fatalf("publish: %+v", m)
	}
	seen := map[string]bool{}
	for range n {
		m := slow.read()
		if m.Error == nil || m.Error.Code != CodeBackendUnavailable {
			t.Fatalf("got %+v", m)
		}
		seen[string(m.ID)] = true
	}
	took := time.Since(sent)
	if len(seen) != n || took < timeout || took > timeout+5*time.Second {
		t.Fatalf("%d distinct replies after %v (timeout %v)", len(seen), took, timeout)
	}
	if st := e.h.ProxyStats()[0]; st.Errors != n || st.Refused != 0 {
		t.Fatalf("stats %+v", st)
	}
	slow.ok(`{"id":"after","op":"ping"}`, nil)
}

func TestRPCInFlightBoundAnswersAtOnce(t *testing.T) {
	b := newBackend(t)
	b.hold()
	e := proxied(t, b, ProxyConfig{MaxInFlight: 2, Timeout: time.Minute})
	c := e.dial(t)
	c.send(`{"id":1,"op":"rpc","method":"a"}`)
	c.send(`{"id":2,"op":"rpc","method":"a"}`)
	waitFor(t, "two calls at the backend", func() bool { return b.waiting.Load() == 2 })
	// The third is refused without waiting for the minute-long timeout.
	m := c.call(`{"id":3,"op":"rpc","method":"a"}`)
	if m.Error == nil || m.Error.Code != CodeBackendUnavailable || string(m.ID) != "3" {
		t.Fatalf("got %+v", m)
	}
	b.release()
	for range 2 {
		if m := c.read(); m.Error != nil {
			t.Fatalf("held call: %+v", m)
		}
	}
	if st := e.h.ProxyStats()[0]; st.Calls != 3 || st.Refused != 1 || st.Errors != 1 {
		t.Fatalf("stats %+v", st)
	}
	c.ok(`{"id":4,"op":"rpc","method":"a"}`, nil) // the slots were given back
}

func TestRPCStoppedBackend(t *testing.T) {
	b := newBackend(t)
	e := proxied(t, b, ProxyConfig{Timeout: 5 * time.Second})
	c := e.dial(t)
	c.ok(`{"id":1,"op":"rpc","method":"a"}`, nil)
	b.stop()
	for i := range 3 {
		start := time.Now()
		c.fails(fmt.Sprintf(`{"id":%d,"op":"rpc","method":"a"}`, i+2), CodeBackendUnavailable)
		if d := time.Since(start); d > 4*time.Second {
			t.Fatalf("a refused connection took %v", d)
		}
	}
	c.ok(`{"id":9,"op":"ping"}`, nil)
}

func TestPublishProxyModeratesAndDenies(t *testing.T) {
	b := newBackend(t)
	b.setAnswer(func(path string, body map[string]json.RawMessage) (int, string) {
		var d struct{ Text string }
		_ = json.Unmarshal(body["data"], &d)
		switch {
		case path != "/publish" || string(body["channel"]) != `"chat:room"`:
			return 404, ""
		case d.Text == "spam":
			return 200, `{"error":{"code":"moderated","message":"no spam"}}`
		case d.Text == "darn":
			return 200, `{"result":{"data":{"text":"d**n","by":` + string(body["user"]) + `}}}`
		}
		return 200, `{"result":{}}` // keep the data
	})
	e := proxied(t, b, ProxyConfig{PublishURL: b.srv.URL + "/publish", PublishNamespaces: []string{"chat"}})
	sub, pub := e.dial(t), e.dial(t)
	sub.ok(`{"id":1,"op":"subscribe","channel":"chat:room"}`, nil)
	sub.ok(`{"id":2,"op":"subscribe","channel":"news"}`, nil)

	pub.fails(`{"id":1,"op":"publish","channel":"chat:room","data":{"text":"spam"}}`, "moderated")
	pub.ok(`{"id":2,"op":"publish","channel":"chat:room","data":{"text":"darn"}}`, nil)
	m := sub.push("chat:room", 1) // the refused one made no publication
	var d struct{ Text, By string }
	if err := json.Unmarshal(m.Data, &d); err != nil || d.Text != "d**n" || d.By == "" {
		t.Fatalf("pushed %s", m.Data)
	}
	pub.ok(`{"id":3,"op":"publish","channel":"chat:room","data":{"text":"hi"}}`, nil)
	if m := sub.push("chat:room", 2); string(m.Data) != `{"text":"hi"}` {
		t.Fatalf("pushed %s", m.Data)
	}
	// Not a proxied namespace: no backend call.
	calls := b.calls.Load()
	pub.ok(`{"id":4,"op":"publish","channel":"news","data":{"text":"spam"}}`, nil)
	sub.push("news", 1)
	if b.calls.Load() != calls {
		t.Fatal("a publication to news went to the backend")
	}
	// The backend down: an error reply, no publication.
	b.stop()
	pub.fails(`{"id":5,"op":"publish","channel":"chat:room","data":{"text":"hi"}}`, CodeBackendUnavailable)
	pub.ok(`{"id":6,"op":"publish","channel":"news","data":2}`, nil)
	sub.push("news", 2) // and not chat:room#3
}

func TestSubscribeProxyDenies(t *testing.T) {
	b := newBackend(t)
	b.setAnswer(func(path string, body map[string]json.RawMessage) (int, string) {
		if path != "/subscribe" {
			return 404, ""
		}
		if string(body["channel"]) == `"room:secret"` {
			return 200, `{"error":{"code":"forbidden","message":"members only"}}`
		}
		return 200, `{"result":{}}`
	})
	e := proxied(t, b, ProxyConfig{SubscribeURL: b.srv.URL + "/subscribe", SubscribeNamespaces: []string{"room"}})
	c, pub := e.dial(t), e.dial(t)
	m := c.call(`{"id":1,"op":"subscribe","channel":"room:secret"}`)
	if m.Error == nil || m.Error.Code != "forbidden" || m.Error.Message != "members only" {
		t.Fatalf("got %+v", m)
	}
	// Refused, so not subscribed: it may ask again, and gets no pushes.
	c.fails(`{"id":2,"op":"unsubscribe","channel":"room:secret"}`, CodeNotSubscribed)
	var sr SubscribeResult
	c.ok(`{"id":3,"op":"subscribe","channel":"room:open"}`, &sr)
	c.fails(`{"id":4,"op":"subscribe","channel":"room:open"}`, CodeAlreadySubscribed)
	calls := b.calls.Load()
	c.ok(`{"id":5,"op":"subscribe","channel":"news"}`, &sr) // not proxied
	if b.calls.Load() != calls {
		t.Fatal("a subscribe to news went to the backend")
	}
	pub.ok(`{"id":1,"op":"publish","channel":"news","data":1}`, nil)
	c.push("news", 1)
	c.ok(`{"id":6,"op":"unsubscribe","channel":"room:open"}`, nil)
	// The backend down: an error reply and the connection stays usable.
	b.stop()
	c.fails(`{"id":7,"op":"subscribe","channel":"room:open"}`, CodeBackendUnavailable)
	c.fails(`{"id":8,"op":"unsubscribe","channel":"room:open"}`, CodeNotSubscribed)
	c.ok(`{"id":9,"op":"ping"}`, nil)
}

// A connection closing while its subscribe waits on the backend leaves no
// subscription behind.
func TestSubscribeProxyAnswerAfterClose(t *testing.T) {
	b := newBackend(t)
	b.hold()
	e := proxied(t, b, ProxyConfig{SubscribeURL: b.srv.URL + "/subscribe"})
	c := e.dial(t)
	c.send(`{"id":1,"op":"subscribe","channel":"news"}`)
	waitFor(t, "the call at the backend", func() bool { return b.waiting.Load() == 1 })
	c.c.Close()
	waitFor(t, "the close", func() bool { return e.srv.Stats().Conns == 0 })
	b.release()
	// The slot is given back after the late subscription was made and undone.
	waitFor(t, "the call to end", func() bool { return e.h.ProxyStats()[1].Count == 1 && e.h.px.subscribe.inFlight.Load() == 0 })
	if e.hub.Stats().Subscriptions != 0 {
		t.Fatal("a subscription outlived its connection")
	}
}

// The connect proxy: a cookie decides; accepted connections get the
// backend's user ID and channels, and the requests sent before the answer
// are served after it, in order; refused ones are closed with the code and
// reason; a down backend closes with 1013.
func TestConnectProxy(t *testing.T) {
	b := newBackend(t)
	b.setAnswer(func(path string, body map[string]json.RawMessage) (int, string) {
		var req ConnectProxyRequest
		raw, _ := json.Marshal(body)
		_ = json.Unmarshal(raw, &req)
		if path != "/connect" || req.Headers["User-Agent"] != "tester" || req.Headers["X-Secret"] != "" || req.Client == "" {
			return 400, ""
		}
		switch req.Cookies["session"] {
		case "ann":
			return 200, `{"result":{"user":"ann","channels":["chat:*"]}}`
		case "bob":
			return 200, `{"error":{"code":"banned","message":"bob is banned"},"close_code":4001}`
		}
		return 200, `{"error":{"code":"login","message":"log in first"}}`
	})
	e := proxied(t, b, ProxyConfig{ConnectURL: b.srv.URL + "/connect"})
	hdr := func(cookie string) []string {
		return []string{"Cookie: theme=dark; session=" + cookie, "User-Agent: tester", "X-Secret: no"}
	}

	b.hold()
	ann := e.dial(t, hdr("ann")...)
	ann.send(`{"id":1,"op":"subscribe","channel":"chat:lobby"}`)
	ann.send(`{"id":2,"op":"presence","channel":"chat:lobby"}`)
	ann.send(`{"id":3,"op":"subscribe","channel":"news"}`)
	waitFor(t, "the connect call", func() bool { return b.waiting.Load() == 1 })
	b.release()
	if m := ann.read(); string(m.ID) != "1" || m.Error != nil {
		t.Fatalf("held subscribe: %+v", m)
	}
	m := ann.read()
	var p PresenceResult
	if string(m.ID) != "2" || json.Unmarshal(m.Result, &p) != nil || len(p.Clients) != 1 || p.Clients[0] != "ann" {
		t.Fatalf("held presence: %+v %s", m, m.Result)
	}
	if m := ann.read(); string(m.ID) != "3" || m.Error == nil || m.Error.Code != CodeForbidden {
		t.Fatalf("news is not in the backend's channels: %+v", m)
	}
	ann.ok(`{"id":4,"op":"ping"}`, nil)
	// The API's user index follows the backend's user ID (disconnect "ann"
	// must reach this connection).
	if got := e.h.users.of("ann"); len(got) != 1 {
		t.Fatalf("sessions of ann: %d, want 1 (the user index kept the connection's first ID)", len(got))
	}

	for _, tc := range []struct {
		cookie string
		code   uint16
		reason string
	}{{"bob", 4001, "banned: bob is banned"}, {"eve", CloseConnectRefused, "login: log in first"}} {
		c := e.dial(t, hdr(tc.cookie)...)
		c.send(`{"id":1,"op":"subscribe","channel":"chat:lobby"}`) // held, then dropped
		code, reason, err := c.c.ExpectClose()
		if err != nil || code != tc.code || reason != tc.reason {
			t.Fatalf("%s: close %d %q %v", tc.cookie, code, reason, err)
		}
	}
	b.stop()
	c := e.dial(t, hdr("ann")...)
	if code, _, err := c.c.ExpectClose(); err != nil || code != CloseBackendUnavailable {
		t.Fatalf("backend down: close %d %v", code, err)
	}
	if st := e.h.ProxyStats()[0]; st.Name != "connect" || st.Calls != 4 || st.Errors != 1 {
		t.Fatalf("stats %+v", st)
	}
	if subs := e.hub.Stats().Subscriptions; subs != 1 {
		t.Fatalf("%d subscriptions, want ann's only", subs)
	}
}
