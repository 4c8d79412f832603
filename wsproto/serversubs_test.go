package wsproto

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// subscribedPush reads the next message, which must be channel's
// server-side subscription notice.
func (c *client) subscribedPush(channel string) SubscribeResult {
	c.t.Helper()
	m := c.read()
	if m.ID != nil || m.Channel != channel || m.Subscribed == nil {
		c.t.Fatalf("want the subscribed push of %s, got %+v (data %s)", channel, m, m.Data)
	}
	return *m.Subscribed
}

func (c *client) unsubscribedPush(channel string) {
	c.t.Helper()
	if m := c.read(); m.ID != nil || m.Channel != channel || m.Unsubscribed == nil {
		c.t.Fatalf("want the unsubscribed push of %s, got %+v", channel, m)
	}
}

// quiet checks that nothing is queued for c before the reply to a ping.
func (c *client) quiet() {
	c.t.Helper()
	c.ok(`{"id":"q","op":"ping"}`, nil)
}

func apiCall(t *testing.T, api *API, path, body string) string {
	t.Helper()
	code, out := do(t, api, "POST", path, "apikey k", body)
	if code != 200 {
		t.Fatalf("%s %s: %d %s", path, body, code, out)
	}
	return strings.TrimSpace(out)
}

// POST /api/subscribe reaches every connection of the user at once, on a
// channel its token does not allow (the backend decided); others are not
// touched; /api/unsubscribe ends it with a push and no publication after.
func TestAPISubscribeReachesConnectedUser(t *testing.T) {
	e := start(t, Config{TokenSecret: secret, RateLimit: -1}, nil)
	api := NewAPI(e.hub, APIConfig{Key: "k", Users: e.h})
	alice1 := e.dial(t, "Authorization: Bearer "+token(t, "alice", []string{"news"}, time.Hour))
	alice2 := e.dial(t, "Authorization: Bearer "+token(t, "alice", []string{"news"}, time.Hour))
	bob := e.dial(t, "Authorization: Bearer "+token(t, "bob", []string{"*"}, time.Hour))
	for _, c := range []*client{alice1, alice2, bob} {
		c.quiet() // open: indexed under its user
	}
	alice1.fails(`{"id":1,"op":"subscribe","channel":"vip"}`, CodeForbidden)

	if got := apiCall(t, api, "/api/subscribe", `{"user":"alice","channel":"vip"}`); got != `{}` {
		t.Fatalf("subscribe: %s", got)
	}
	for _, c := range []*client{alice1, alice2} {
		if r := c.subscribedPush("vip"); r.Offset != 0 || r.Epoch == "" || r.Recovered {
			t.Fatalf("subscribed push: %+v", r)
		}
	}
	apiCall(t, api, "/api/publish", `{"channel":"vip","data":{"n":1}}`)
	for _, c := range []*client{alice1, alice2} {
		if m := c.push("vip", 1); string(m.Data) != `{"n":1}` {
			t.Fatalf("data %s", m.Data)
		}
	}
	bob.quiet()
	alice1.fails(`{"id":2,"op":"publish","channel":"vip","data":1}`, CodeForbidden) // subscribing grants no publishing

	apiCall(t, api, "/api/unsubscribe", `{"user":"alice","channel":"vip"}`)
	for _, c := range []*client{alice1, alice2} {
		c.unsubscribedPush("vip")
	}
	apiCall(t, api, "/api/publish", `{"channel":"vip","data":{"n":2}}`)
	for _, c := range []*client{alice1, alice2, bob} {
		c.quiet()
	}
	alice1.fails(`{"id":3,"op":"unsubscribe","channel":"vip"}`, CodeNotSubscribed)
}

// A server-side subscription follows the user to every new connection:
// the notice comes first; the client resumes it with since and
// "server":true and gets exactly what it missed; after an unsubscribe made
// while it was away it is not subscribed and "server":true says so.
func TestServerSubscriptionOnReconnect(t *testing.T) {
	e := start(t, Config{TokenSecret: secret, RateLimit: -1}, nil)
	api := NewAPI(e.hub, APIConfig{Key: "k", Users: e.h})
	hdr := "Authorization: Bearer " + token(t, "alice", []string{"news"}, time.Hour)
	apiCall(t, api, "/api/subscribe", `{"user":"alice","channel":"vip"}`)

	c1 := e.dial(t, hdr)
	first := c1.subscribedPush("vip")
	for i := 1; i <= 2; i++ {
		apiCall(t, api, "/api/publish", fmt.Sprintf(`{"channel":"vip","data":%d}`, i))
		c1.push("vip", uint64(i))
	}
	c1.c.Close()
	waitConns(t, e.h, 0, 0)
	for i := 3; i <= 4; i++ {
		apiCall(t, api, "/api/publish", fmt.Sprintf(`{"channel":"vip","data":%d}`, i))
	}

	c2 := e.dial(t, hdr)
	if r := c2.subscribedPush("vip"); r.Offset != 4 || r.Epoch != first.Epoch {
		t.Fatalf("subscribed push after the reconnect: %+v", r)
	}
	var res SubscribeResult
	c2.ok(fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"vip","server":true,"since":{"offset":2,"epoch":%q}}`, first.Epoch), &res)
	if !res.Recovered || res.Offset != 4 {
		t.Fatalf("resume: %+v", res)
	}
	c2.push("vip", 3)
	c2.push("vip", 4)
	apiCall(t, api, "/api/publish", `{"channel":"vip","data":5}`)
	c2.push("vip", 5)
	c2.fails(`{"id":2,"op":"subscribe","channel":"news","server":true}`, CodeNotSubscribed)
	c2.c.Close()
	waitConns(t, e.h, 0, 0)

	apiCall(t, api, "/api/unsubscribe", `{"user":"alice","channel":"vip"}`)
	c3 := e.dial(t, hdr)
	c3.fails(`{"id":1,"op":"subscribe","channel":"vip","server":true,"since":{"offset":5,"epoch":"x"}}`, CodeNotSubscribed)
	c3.fails(`{"id":2,"op":"subscribe","channel":"vip"}`, CodeForbidden) // back to what the token allows
}

// A client may leave a server-side subscription on its connection; it
// comes back on the next connection. A user subscribed server-side to a
// channel it already subscribed to itself gets no notice.
func TestServerSubscriptionAndClientOps(t *testing.T) {
	e := start(t, Config{TokenSecret: secret, RateLimit: -1}, nil)
	api := NewAPI(e.hub, APIConfig{Key: "k", Users: e.h})
	hdr := "Authorization: Bearer " + token(t, "alice", []string{"*"}, time.Hour)
	c := e.dial(t, hdr)
	c.ok(`{"id":1,"op":"subscribe","channel":"news"}`, nil)
	apiCall(t, api, "/api/subscribe", `{"user":"alice","channel":"news"}`)
	apiCall(t, api, "/api/subscribe", `{"user":"alice","channel":"vip"}`)
	c.subscribedPush("vip") // and none for news
	c.ok(`{"id":2,"op":"unsubscribe","channel":"vip"}`, nil)
	apiCall(t, api, "/api/publish", `{"channel":"vip","data":1}`)
	c.quiet()
	c.ok(`{"id":3,"op":"subscribe","channel":"vip"}`, nil) // the token allows it: a client subscription now
	c.fails(`{"id":4,"op":"subscribe","channel":"vip"}`, CodeAlreadySubscribed)

	c2 := e.dial(t, hdr)
	got := map[string]bool{}
	for range 2 {
		m := c2.read()
		if m.Subscribed == nil {
			t.Fatalf("want subscribed pushes, got %+v", m)
		}
		got[m.Channel] = true
	}
	if !got["news"] || !got["vip"] {
		t.Fatalf("new connection subscribed to %v", got)
	}
	// A plain subscribe to a server-side channel restarts it: no error.
	c2.ok(`{"id":1,"op":"subscribe","channel":"news"}`, nil)
}

func TestAPISubscribeErrors(t *testing.T) {
	api := NewAPI(apiHub(t), APIConfig{Key: "k"})
	for _, tc := range []struct{ body, code string }{
		{`{"channel":"news"}`, CodeBadRequest},
		{`{"user":"a"}`, CodeBadRequest},
		{`{"user":"a","channel":"bad channel"}`, CodeBadChannel},
		{`{"user":"a","channel":"news","x":1}`, CodeBadRequest},
	} {
		code, body := do(t, api, "POST", "/api/subscribe", "apikey k", tc.body)
		var e struct{ Error Error }
		if code != 400 || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", tc.body, code, body, tc.code)
		}
	}
	code, body := do(t, api, "POST", "/api/batch", "apikey k",
		`{"commands":[{"method":"subscribe","params":{"user":"a","channel":"news"}},{"method":"unsubscribe","params":{"user":"a","channel":"news"}}]}`)
	if code != 200 || !strings.Contains(body, `"replies":[{"result":{}},{"result":{}}]`) {
		t.Fatalf("batch: %d %s", code, body)
	}
}

// The connect proxy's answer subscribes the connection server-side (its
// "subscribe", and the user's kept subscriptions) before any held request
// is served, and its expire_at closes the connection with 3000 without a
// refresh notice (no token can extend it).
func TestConnectProxySubscribeAndExpireAt(t *testing.T) {
	b := newBackend(t)
	expire := time.Now().Add(1500*time.Millisecond).Unix() + 1
	b.setAnswer(func(path string, _ map[string]json.RawMessage) (int, string) {
		return 200, fmt.Sprintf(`{"result":{"user":"ann","channels":["chat:*"],"subscribe":["vip"],"expire_at":%d}}`, expire)
	})
	e := proxied(t, b, ProxyConfig{ConnectURL: b.srv.URL + "/connect"})
	api := NewAPI(e.hub, APIConfig{Key: "k", Users: e.h})
	apiCall(t, api, "/api/subscribe", `{"user":"ann","channel":"feed:ann"}`)

	b.hold()
	c := e.dial(t)
	c.send(`{"id":1,"op":"subscribe","channel":"chat:lobby"}`)
	waitFor(t, "the connect call", func() bool { return b.waiting.Load() == 1 })
	b.release()
	c.subscribedPush("vip")
	c.subscribedPush("feed:ann")
	if m := c.read(); string(m.ID) != "1" || m.Error != nil {
		t.Fatalf("held subscribe: %+v", m)
	}
	c.fails(`{"id":2,"op":"subscribe","channel":"news"}`, CodeForbidden) // the answer's channels still rule the client's own
	apiCall(t, api, "/api/publish", `{"channel":"vip","data":1}`)
	c.push("vip", 1)

	c.c.Timeout = 10 * time.Second
	for {
		f, err := c.c.Read()
		if err != nil {
			t.Fatalf("no close at expire_at: %v", err)
		}
		if f.Op == 0x8 {
			code, reason := int(f.Payload[0])<<8|int(f.Payload[1]), string(f.Payload[2:])
			if code != CloseTokenExpired || reason != closeReasonExpired {
				t.Fatalf("close %d %q", code, reason)
			}
			break
		}
		t.Fatalf("unexpected message before the close: %s", f.Payload)
	}
	if late := time.Now().Unix() - expire; late < 0 || late > 2 {
		t.Fatalf("closed %d s after expire_at", late)
	}
	if n := e.h.Stats().RefreshNotices; n != 0 {
		t.Fatalf("%d refresh notices", n)
	}
}

// With tokens too, a refresh cannot move the close past the connect
// proxy's expire_at: the refresh result says when the connection ends.
func TestConnectProxyExpireAtCapsRefresh(t *testing.T) {
	b := newBackend(t)
	expire := time.Now().Add(time.Hour).Unix()
	b.setAnswer(func(string, map[string]json.RawMessage) (int, string) {
		return 200, fmt.Sprintf(`{"result":{"expire_at":%d}}`, expire)
	})
	e := start(t, Config{TokenSecret: secret, RateLimit: -1, Proxy: ProxyConfig{ConnectURL: b.srv.URL + "/connect"}}, nil)
	t.Cleanup(e.h.CloseProxies)
	c := e.dial(t, "Authorization: Bearer "+token(t, "alice", []string{"*"}, 2*time.Hour))
	var res RefreshInfo
	c.ok(fmt.Sprintf(`{"id":1,"op":"refresh","token":%q}`, token(t, "alice", []string{"*"}, 3*time.Hour)), &res)
	if res.Exp != expire {
		t.Fatalf("refresh result exp %d, want the proxy's %d", res.Exp, expire)
	}
	c.ok(fmt.Sprintf(`{"id":2,"op":"refresh","token":%q}`, token(t, "alice", []string{"*"}, 10*time.Minute)), &res)
	if want := time.Now().Add(10 * time.Minute).Unix(); res.Exp < want-2 || res.Exp > want+2 {
		t.Fatalf("a token ending first: exp %d, want about %d", res.Exp, want)
	}
}
