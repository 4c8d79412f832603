package wsproto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, gnetGlobals...) }

// gnet's package-level ants pool starts these two at init and never stops
// them (as in server/helpers_test.go).
var gnetGlobals = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
	goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type env struct {
	addr string
	srv  *server.Server[Session]
	hub  *Hub
	h    *Handler
}

func defaultNS() pubsub.Namespaces {
	return pubsub.Namespaces{
		"":     {HistorySize: 100, Presence: true},
		"feed": {HistorySize: 10, Publish: pubsub.PublishNone},
		"room": {HistorySize: 10, Publish: pubsub.PublishSubscribers, Presence: true},
		"bare": {},
	}
}

// start runs a server with the /ws handler on a free loopback port until
// the test ends.
func start(t testing.TB, cfg Config, ns pubsub.Namespaces) *env {
	t.Helper()
	if ns == nil {
		ns = defaultNS()
	}
	return startWith(t, cfg, ns, server.Options{}, nil)
}

// startWith is start with server options and more routes (route, if set,
// adds them before the server starts).
func startWith(t testing.TB, cfg Config, ns pubsub.Namespaces, opts server.Options, route func(*server.Server[Session], *Handler)) *env {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	opts.Logger = quiet
	srv := server.New[Session](opts)
	hub, err := NewHub(srv, pubsub.NewMemory(pubsub.MemoryOptions{}), pubsub.HubOptions[*server.Prepared]{Namespaces: ns})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(hub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Handle("/ws", h)
	if route != nil {
		route(srv, h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(addr) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("ListenAndServe: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe returned %v", err)
		}
	})
	return &env{addr: addr, srv: srv, hub: hub, h: h}
}

// msg is any server → client message.
type msg struct {
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *Error          `json:"error"`
	Channel string          `json:"channel"`
	Offset  uint64          `json:"offset"`
	Epoch   string          `json:"epoch"`
	Data    json.RawMessage `json:"data"`

	Subscribed   *SubscribeResult `json:"subscribed"`   // server-side subscription notice
	Unsubscribed *struct{}        `json:"unsubscribed"` // its end
}

type client struct {
	t *testing.T
	c *wstest.Client
}

func (e *env) dial(t *testing.T, headers ...string) *client {
	t.Helper()
	return e.dialPath(t, "/ws", headers...)
}

func (e *env) dialPath(t *testing.T, path string, headers ...string) *client {
	t.Helper()
	c, err := wstest.Dial(e.addr, path, headers...)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	c.Timeout = 5 * time.Second
	t.Cleanup(func() { c.Close() })
	return &client{t, c}
}

func (c *client) send(s string) {
	c.t.Helper()
	if err := c.c.WriteMessage(codec.OpText, []byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *client) read() msg {
	c.t.Helper()
	f, err := c.c.ReadData()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if f.Op != codec.OpText {
		c.t.Fatalf("got op %v %q", f.Op, f.Payload)
	}
	var m msg
	if err := json.Unmarshal(f.Payload, &m); err != nil {
		c.t.Fatalf("reply %q: %v", f.Payload, err)
	}
	return m
}

// call sends a request and returns the next message, which must be its
// reply.
func (c *client) call(s string) msg {
	c.t.Helper()
	c.send(s)
	m := c.read()
	if m.ID == nil && m.Error == nil {
		c.t.Fatalf("expected a reply to %s, got %+v", s, m)
	}
	return m
}

func (c *client) ok(s string, result any) {
	c.t.Helper()
	m := c.call(s)
	if m.Error != nil {
		c.t.Fatalf("%s: error %+v", s, m.Error)
	}
	if result != nil {
		if err := json.Unmarshal(m.Result, result); err != nil {
			c.t.Fatalf("%s: result %s: %v", s, m.Result, err)
		}
	}
}

func (c *client) fails(s, code string) {
	c.t.Helper()
	m := c.call(s)
	if m.Error == nil || m.Error.Code != code {
		c.t.Fatalf("%s: got %+v %s, want error %s", s, m.Error, m.Result, code)
	}
}

func (c *client) push(channel string, offset uint64) msg {
	c.t.Helper()
	m := c.read()
	if m.ID != nil || m.Channel != channel || m.Offset != offset {
		c.t.Fatalf("want push %s#%d, got %+v (data %s)", channel, offset, m, m.Data)
	}
	return m
}

func TestSubscribePublishPush(t *testing.T) {
	e := start(t, Config{}, nil)
	a, b := e.dial(t), e.dial(t)
	var sr SubscribeResult
	a.ok(`{"id":1,"op":"subscribe","channel":"news"}`, &sr)
	if sr.Offset != 0 || sr.Epoch == "" || sr.Recovered {
		t.Fatalf("subscribe: %+v", sr)
	}
	var pr PublishResult
	b.ok(`{"id":"p1","op":"publish","channel":"news","data":{"title":"hello","n":[1,2]}}`, &pr)
	if pr.Offset != 1 || pr.Epoch != sr.Epoch {
		t.Fatalf("publish: %+v", pr)
	}
	m := a.push("news", 1)
	if m.Epoch != sr.Epoch || string(m.Data) != `{"title":"hello","n":[1,2]}` {
		t.Fatalf("push %+v %s", m, m.Data)
	}
	// The reply echoes a string id as it came.
	m = b.call(`{"id":"x-7","op":"presence","channel":"news"}`)
	var p PresenceResult
	_ = json.Unmarshal(m.Result, &p)
	if string(m.ID) != `"x-7"` || p.Count != 1 || p.Clients[0] != "anon-"+strings.TrimPrefix(p.Clients[0], "anon-") || p.Connections != 1 {
		t.Fatalf("presence %s %+v", m.ID, p)
	}
	a.ok(`{"id":2,"op":"unsubscribe","channel":"news"}`, nil)
	b.ok(`{"id":3,"op":"publish","channel":"news","data":2}`, nil)
	a.ok(`{"id":4,"op":"presence","channel":"news"}`, &p) // nothing pushed in between
	if p.Count != 0 {
		t.Fatalf("presence after unsubscribe: %+v", p)
	}
	if st := e.hub.Stats(); st.Published != 2 || st.Deliveries != 1 {
		t.Fatalf("hub stats %+v", st)
	}
}

func TestPublisherSubscribedGetsOwnPushFirst(t *testing.T) {
	e := start(t, Config{}, nil)
	a := e.dial(t)
	a.ok(`{"id":1,"op":"subscribe","channel":"chat"}`, nil)
	a.send(`{"id":2,"op":"publish","channel":"chat","data":"me"}`)
	a.push("chat", 1)
	if m := a.read(); string(m.ID) != "2" || m.Error != nil {
		t.Fatalf("publish reply %+v", m)
	}
}

func TestRecoveryAfterReconnect(t *testing.T) {
	e := start(t, Config{}, nil)
	a, b := e.dial(t), e.dial(t)
	var sr SubscribeResult
	a.ok(`{"id":1,"op":"subscribe","channel":"news"}`, &sr)
	for i := 1; i <= 2; i++ {
		b.ok(fmt.Sprintf(`{"id":%d,"op":"publish","channel":"news","data":%d}`, i, i), nil)
		a.push("news", uint64(i))
	}
	a.c.Close() // the connection drops
	for i := 3; i <= 5; i++ {
		b.ok(fmt.Sprintf(`{"id":%d,"op":"publish","channel":"news","data":%d}`, i, i), nil)
	}
	a2 := e.dial(t)
	a2.send(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"news","since":{"offset":2,"epoch":%q}}`, sr.Epoch))
	m := a2.read()
	var r SubscribeResult
	_ = json.Unmarshal(m.Result, &r)
	if string(m.ID) != "1" || !r.Recovered || r.Offset != 5 || r.Epoch != sr.Epoch {
		t.Fatalf("recovery reply %+v %+v", m, r)
	}
	for i := 3; i <= 5; i++ {
		if p := a2.push("news", uint64(i)); string(p.Data) != fmt.Sprint(i) {
			t.Fatalf("replayed %d: %s", i, p.Data)
		}
	}
	b.ok(`{"id":6,"op":"publish","channel":"news","data":6}`, nil)
	a2.push("news", 6)

	// A wrong epoch (a restarted server) is told so, with nothing replayed.
	a3 := e.dial(t)
	a3.ok(`{"id":1,"op":"subscribe","channel":"news","since":{"offset":2,"epoch":"gone"}}`, &r)
	if r.Recovered || r.Offset != 6 {
		t.Fatalf("bad epoch: %+v", r)
	}
	a3.ok(`{"id":2,"op":"presence","channel":"news"}`, nil) // the next message is this reply, not a replay
	if st := e.hub.Stats(); st.Recovered != 1 || st.NotRecovered != 1 || st.Replayed != 3 {
		t.Fatalf("stats %+v", st)
	}
}

func TestErrorsKeepConnectionUp(t *testing.T) {
	e := start(t, Config{MaxDataBytes: 100, MaxSubscriptions: 2}, nil)
	a := e.dial(t)
	a.fails(`{"id":1,"op":"subscribe","channel":"news"`, CodeBadRequest) // truncated JSON
	a.fails(`[1,2]`, CodeBadRequest)
	a.fails(`{"id":{},"op":"subscribe","channel":"news"}`, CodeBadRequest)
	a.fails(`{"id":1}`, CodeBadRequest)
	a.fails(`{"id":1,"op":"dance","channel":"news"}`, CodeUnknownOp)
	a.fails(`{"id":1,"op":"subscribe","channel":"bad channel"}`, CodeBadChannel)
	a.fails(`{"id":1,"op":"subscribe","channel":""}`, CodeBadChannel)
	a.fails(`{"id":1,"op":"publish","channel":"news"}`, CodeBadRequest)
	a.fails(`{"id":1,"op":"publish","channel":"news","data":"`+strings.Repeat("x", 200)+`"}`, CodeTooLarge)
	a.fails(`{"id":1,"op":"publish","channel":"news","data":"`+strings.Repeat("x", 5000)+`"}`, CodeTooLarge)
	a.fails(`{"id":1,"op":"unsubscribe","channel":"news"}`, CodeNotSubscribed)
	a.fails(`{"id":1,"op":"presence","channel":"bare:x"}`, CodePresenceDisabled)
	a.fails(`{"id":1,"op":"publish","channel":"feed:x","data":1}`, CodeForbidden)
	a.fails(`{"id":1,"op":"publish","channel":"room:x","data":1}`, CodeForbidden)
	a.ok(`{"id":1,"op":"subscribe","channel":"room:x"}`, nil)
	a.send(`{"id":1,"op":"publish","channel":"room:x","data":1}`)
	a.push("room:x", 1) // its own push comes before the reply
	if m := a.read(); m.Error != nil || string(m.ID) != "1" {
		t.Fatalf("publish reply %+v", m)
	}
	a.fails(`{"id":1,"op":"subscribe","channel":"room:x"}`, CodeAlreadySubscribed)
	a.ok(`{"id":1,"op":"subscribe","channel":"b"}`, nil)
	a.fails(`{"id":1,"op":"subscribe","channel":"c"}`, CodeTooManySubs)
	if err := a.c.WriteMessage(codec.OpBinary, []byte(`{"id":1,"op":"presence","channel":"news"}`)); err != nil {
		t.Fatal(err)
	}
	if m := a.read(); m.Error == nil || m.Error.Code != CodeBadRequest {
		t.Fatalf("binary frame: %+v", m)
	}
	// Still up and working.
	a.ok(`{"id":99,"op":"publish","channel":"news","data":{"ok":true}}`, nil)
	st := e.h.Stats()
	if st.Errors[CodeBadRequest] != 6 || st.Errors[CodeTooLarge] != 2 || st.Errors[CodeForbidden] != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRateLimitCloses1008(t *testing.T) {
	e := start(t, Config{RateLimit: 1, RateBurst: 5}, nil)
	a := e.dial(t)
	for i := range 10 {
		a.send(fmt.Sprintf(`{"id":%d,"op":"presence","channel":"news"}`, i))
	}
	code, reason, err := a.c.ExpectClose()
	if err != nil || code != 1008 || reason != "rate limit exceeded" {
		t.Fatalf("close %d %q %v", code, reason, err)
	}
	if st := e.h.Stats(); st.RateLimited != 1 || st.Requests != 5 {
		t.Fatalf("stats %+v", st)
	}
	// Within the rate, nothing happens.
	e2 := start(t, Config{RateLimit: 1000, RateBurst: 20}, nil)
	b := e2.dial(t)
	for i := range 20 {
		b.ok(fmt.Sprintf(`{"id":%d,"op":"presence","channel":"news"}`, i), nil)
	}
}

const secret = "test-secret"

func token(t *testing.T, sub string, channels []string, ttl time.Duration) string {
	t.Helper()
	tok, err := NewToken(secret, sub, channels, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestJWT(t *testing.T) {
	e := start(t, Config{TokenSecret: secret}, nil)
	refused := func(status int, path string, headers ...string) {
		t.Helper()
		_, err := wstest.Dial(e.addr, path, headers...)
		var he *wstest.HTTPStatusError
		if !errors.As(err, &he) || he.Status != status {
			t.Fatalf("%s %v: %v, want %d", path, headers, err, status)
		}
	}
	refused(401, "/ws")
	refused(401, "/ws?token=garbage")
	other, _ := NewToken("other-secret", "alice", []string{"*"}, time.Hour)
	refused(401, "/ws?token="+other)
	refused(401, "/ws", "Authorization: Bearer "+other)
	expired := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Minute))}})
	s, _ := expired.SignedString([]byte(secret))
	refused(401, "/ws?token="+s)
	noSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, Claims{Channels: []string{"*"}}).SignedString([]byte(secret))
	refused(401, "/ws?token="+noSub)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "alice"}}).SignedString([]byte(secret))
	refused(401, "/ws?token="+hs512)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, Claims{RegisteredClaims: jwt.RegisteredClaims{Subject: "alice"}}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	refused(401, "/ws?token="+none)
	if st := e.h.Stats(); st.AuthRejected != 8 {
		t.Fatalf("auth rejected %d", st.AuthRejected)
	}

	alice := e.dialPath(t, "/ws?token="+token(t, "alice", []string{"news", "chat:*"}, time.Hour))
	bob := e.dial(t, "Authorization: Bearer "+token(t, "bob", []string{"chat:*"}, 0))
	alice.ok(`{"id":1,"op":"subscribe","channel":"news"}`, nil)
	alice.ok(`{"id":2,"op":"subscribe","channel":"chat:lobby"}`, nil)
	alice.fails(`{"id":3,"op":"subscribe","channel":"secret"}`, CodeForbidden)
	alice.fails(`{"id":4,"op":"publish","channel":"chat","data":1}`, CodeForbidden) // "chat:*" is not "chat"
	bob.fails(`{"id":1,"op":"publish","channel":"news","data":1}`, CodeForbidden)
	bob.fails(`{"id":1,"op":"presence","channel":"news"}`, CodeForbidden)
	bob.ok(`{"id":2,"op":"subscribe","channel":"chat:lobby"}`, nil)
	var p PresenceResult
	bob.ok(`{"id":3,"op":"presence","channel":"chat:lobby"}`, &p)
	if fmt.Sprint(p.Clients) != "[alice bob]" || p.Count != 2 {
		t.Fatalf("presence %+v", p)
	}
	bob.send(`{"id":4,"op":"publish","channel":"chat:lobby","data":"hi"}`)
	bob.push("chat:lobby", 1)
	if m := bob.read(); string(m.ID) != "4" || m.Error != nil {
		t.Fatalf("publish reply %+v", m)
	}
	alice.push("chat:lobby", 1)
}

func TestOriginAllowList(t *testing.T) {
	e := start(t, Config{AllowedOrigins: []string{"https://*.example.com", "http://localhost:8080"}}, nil)
	for origin, ok := range map[string]bool{
		"https://app.example.com":      true,
		"HTTPS://App.Example.com":      true,
		"http://localhost:8080":        true,
		"https://evil.com":             false,
		"https://example.com.evil.net": false,
		"http://app.example.com":       false,
	} {
		c, err := wstest.Dial(e.addr, "/ws", "Origin: "+origin)
		var he *wstest.HTTPStatusError
		switch {
		case ok && err != nil:
			t.Errorf("%s refused: %v", origin, err)
		case !ok && (!errors.As(err, &he) || he.Status != 403):
			t.Errorf("%s: %v, want 403", origin, err)
		}
		if c != nil {
			c.Close()
		}
	}
	e.dial(t) // no Origin: not a browser
	if st := e.h.Stats(); st.OriginRejected != 3 {
		t.Fatalf("origin rejected %d", st.OriginRejected)
	}
}

func TestCloseLeavesChannels(t *testing.T) {
	e := start(t, Config{}, nil)
	a := e.dial(t)
	a.ok(`{"id":1,"op":"subscribe","channel":"x"}`, nil)
	a.ok(`{"id":2,"op":"subscribe","channel":"room:y"}`, nil)
	if n := e.hub.Stats().Subscriptions; n != 2 {
		t.Fatalf("subscriptions %d", n)
	}
	a.c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for e.hub.Stats().Subscriptions != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("subscriptions left: %+v", e.hub.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMatch(t *testing.T) {
	for _, c := range []struct {
		p, s string
		ok   bool
	}{
		{"news", "news", true}, {"news", "news2", false}, {"chat:*", "chat:a", true}, {"chat:*", "chat:", true},
		{"chat:*", "chat", false}, {"*", "", true}, {"*", "anything:at/all", true}, {"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false}, {"*x", "xxxx", true}, {"a**", "a", true}, {"", "", true}, {"", "a", false},
	} {
		if match(c.p, c.s) != c.ok {
			t.Errorf("match(%q, %q) != %v", c.p, c.s, c.ok)
		}
	}
}

func TestConfig(t *testing.T) {
	if !(Config{}).Anonymous() || (Config{TokenSecret: "x"}).Anonymous() {
		t.Fatal("Anonymous")
	}
	if _, err := New(nil, Config{MaxDataBytes: -1}); err == nil || !strings.Contains(err.Error(), "max_data_bytes") {
		t.Fatalf("bad config: %v", err)
	}
}

func TestPingOp(t *testing.T) {
	e := start(t, Config{}, nil)
	a := e.dial(t)
	var r map[string]any
	a.ok(`{"id":"p1","op":"ping"}`, &r)
	if len(r) != 0 {
		t.Fatalf("ping result %v, want {}", r)
	}
}

// With a NodeID (a cluster with shared presence) anonymous client IDs
// carry it, so that two nodes' "connection 1" are two clients.
func TestAnonymousIDWithNodeID(t *testing.T) {
	e := start(t, Config{NodeID: "n7"}, nil)
	a := e.dial(t)
	a.ok(`{"id":1,"op":"subscribe","channel":"news"}`, nil)
	var p PresenceResult
	a.ok(`{"id":2,"op":"presence","channel":"news"}`, &p)
	if len(p.Clients) != 1 || !strings.HasPrefix(p.Clients[0], "anon-n7-") {
		t.Fatalf("presence %+v, want one anon-n7-<n>", p)
	}
}
