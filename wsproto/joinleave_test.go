package wsproto

import (
	"encoding/json"
	"testing"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/pubsub"
)

// raw reads the next message's exact bytes.
func (c *client) raw() string {
	c.t.Helper()
	f, err := c.c.ReadData()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	if f.Op != codec.OpText {
		c.t.Fatalf("got op %v %q", f.Op, f.Payload)
	}
	return string(f.Payload)
}

// The join and leave pushes' exact bytes (docs/protocol.md), with token
// client IDs: a client's first subscription pushes a join to the other
// subscribers (never to itself), an unsubscribe or a disconnect a leave.
// Every step is followed by a publication that all subscribers get, so an
// unexpected push would show up where the publication is expected.
func TestJoinLeavePushes(t *testing.T) {
	ns := pubsub.Namespaces{"chat": {HistorySize: 10, Presence: true, JoinLeave: true}}
	e := start(t, Config{TokenSecret: secret}, ns)
	dial := func(sub string) *client {
		return e.dial(t, "Authorization: Bearer "+token(t, sub, []string{"*"}, 0))
	}
	ann, bob, bob2 := dial("ann"), dial("bob"), dial("bob")
	ann.ok(`{"id":1,"op":"subscribe","channel":"chat:lobby"}`, nil)
	bob.ok(`{"id":1,"op":"subscribe","channel":"chat:lobby"}`, nil)
	if got, want := ann.raw(), `{"channel":"chat:lobby","join":{"client":"bob"}}`; got != want {
		t.Fatalf("ann got %s, want %s", got, want)
	}
	bob2.ok(`{"id":1,"op":"subscribe","channel":"chat:lobby"}`, nil) // bob's second tab: no join
	ann.send(`{"id":2,"op":"publish","channel":"chat:lobby","data":1}`)
	for _, c := range []*client{ann, bob, bob2} {
		c.push("chat:lobby", 1) // bob got no join of his own, ann none of bob's second tab
	}
	ann.read() // the publish reply, after ann's own push

	bob.ok(`{"id":2,"op":"unsubscribe","channel":"chat:lobby"}`, nil) // bob still has a tab: no leave
	ann.send(`{"id":3,"op":"publish","channel":"chat:lobby","data":2}`)
	ann.push("chat:lobby", 2)
	ann.read()
	bob2.push("chat:lobby", 2)

	bob2.c.Close() // bob's last subscription ends with his connection
	if got, want := ann.raw(), `{"channel":"chat:lobby","leave":{"client":"bob"}}`; got != want {
		t.Fatalf("ann got %s, want %s", got, want)
	}
	bob.ok(`{"id":3,"op":"subscribe","channel":"chat:lobby"}`, nil)
	if got, want := ann.raw(), `{"channel":"chat:lobby","join":{"client":"bob"}}`; got != want {
		t.Fatalf("ann got %s, want %s", got, want)
	}
	ann.ok(`{"id":4,"op":"unsubscribe","channel":"chat:lobby"}`, nil)
	if got, want := bob.raw(), `{"channel":"chat:lobby","leave":{"client":"ann"}}`; got != want {
		t.Fatalf("bob got %s, want %s", got, want)
	}
	ann.ok(`{"id":5,"op":"publish","channel":"chat:lobby","data":3}`, nil) // ann, unsubscribed, gets no push
	bob.push("chat:lobby", 3)
}

// Join and leave name the client ID the connect proxy gave, for a client's
// own subscribe and for a server-side one from the proxy's answer.
func TestJoinLeaveWithConnectProxyIDs(t *testing.T) {
	b := newBackend(t)
	b.setAnswer(func(_ string, body map[string]json.RawMessage) (int, string) {
		var req ConnectProxyRequest
		raw, _ := json.Marshal(body)
		_ = json.Unmarshal(raw, &req)
		user := req.Cookies["session"]
		if user == "cy" {
			return 200, `{"result":{"user":"cy","subscribe":["chat:lobby"]}}`
		}
		return 200, `{"result":{"user":"` + user + `"}}`
	})
	ns := pubsub.Namespaces{"chat": {HistorySize: 10, Presence: true, JoinLeave: true}}
	e := start(t, Config{RateLimit: -1, Proxy: ProxyConfig{ConnectURL: b.srv.URL + "/connect"}}, ns)
	t.Cleanup(e.h.CloseProxies)
	ann := e.dial(t, "Cookie: session=ann")
	ann.ok(`{"id":1,"op":"subscribe","channel":"chat:lobby"}`, nil)
	bob := e.dial(t, "Cookie: session=bob")
	bob.ok(`{"id":1,"op":"subscribe","channel":"chat:lobby"}`, nil)
	if got, want := ann.raw(), `{"channel":"chat:lobby","join":{"client":"bob"}}`; got != want {
		t.Fatalf("ann got %s, want %s", got, want)
	}
	cy := e.dial(t, "Cookie: session=cy")
	cy.subscribedPush("chat:lobby")
	for _, c := range []*client{ann, bob} {
		if got, want := c.raw(), `{"channel":"chat:lobby","join":{"client":"cy"}}`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	bob.c.Close()
	for _, c := range []*client{ann, cy} {
		if got, want := c.raw(), `{"channel":"chat:lobby","leave":{"client":"bob"}}`; got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
}
