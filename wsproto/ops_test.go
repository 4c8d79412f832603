package wsproto

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
)

// exact sends s and checks the next messages byte for byte.
func (c *client) exact(s string, want ...string) {
	c.t.Helper()
	c.send(s)
	for i, w := range want {
		if got := c.raw(); got != w {
			c.t.Fatalf("%s: message %d is\n%s\nwant\n%s", s, i, got, w)
		}
	}
}

func TestHistoryOp(t *testing.T) {
	e := start(t, Config{}, nil)
	c := e.dial(t)
	var pr PublishResult
	for i := 1; i <= 5; i++ {
		c.ok(fmt.Sprintf(`{"id":%d,"op":"publish","channel":"news","data":{"n":%d}}`, i, i), &pr)
	}
	ep := pr.Epoch
	c.exact(`{"id":1,"op":"history","channel":"news","limit":2}`,
		`{"id":1,"result":{"publications":[{"offset":4,"data":{"n":4}},{"offset":5,"data":{"n":5}}],"offset":5,"epoch":"`+ep+`"}}`)
	c.exact(`{"id":2,"op":"history","channel":"news","limit":1,"since":{"offset":3,"epoch":"`+ep+`"}}`,
		`{"id":2,"result":{"publications":[{"offset":4,"data":{"n":4}}],"offset":5,"epoch":"`+ep+`"}}`)
	c.exact(`{"id":3,"op":"history","channel":"news","since":{"offset":3,"epoch":"old"}}`,
		`{"id":3,"result":{"publications":[],"offset":5,"epoch":"`+ep+`"}}`)
	c.exact(`{"id":4,"op":"history","channel":"news","limit":0}`,
		`{"id":4,"result":{"publications":[],"offset":5,"epoch":"`+ep+`"}}`)
	var hr HistoryResult
	c.ok(`{"id":5,"op":"history","channel":"news"}`, &hr) // no limit: up to 1000
	if len(hr.Publications) != 5 || hr.Publications[0].Offset != 1 {
		t.Fatalf("no limit: %+v", hr)
	}
	c.ok(`{"id":6,"op":"history","channel":"bare:x","limit":5}`, &hr) // keeps none
	if len(hr.Publications) != 0 || hr.Offset != 0 {
		t.Fatalf("no history kept: %+v", hr)
	}
	c.exact(`{"id":7,"op":"history","channel":"news","limit":1001}`,
		`{"id":7,"error":{"code":"bad_request","message":"limit must be 0..1000"}}`)
	c.fails(`{"id":8,"op":"history","channel":"news","limit":-1}`, CodeBadRequest)
	c.fails(`{"id":9,"op":"history","channel":"news","limit":"x"}`, CodeBadRequest)
	c.fails(`{"id":10,"op":"history","channel":"a b"}`, CodeBadChannel)
	c.fails(`{"id":11,"op":"history","channel":""}`, CodeBadChannel)
	c.quiet()
}

// history is open where subscribe is: the token's patterns, user
// channels, private channels with a channel token (or once subscribed).
func TestHistoryOpAccess(t *testing.T) {
	e := start(t, Config{TokenSecret: secret}, privateNS())
	alice := e.dial(t, "Authorization: Bearer "+token(t, "alice", []string{"news"}, time.Hour))
	alice.ok(`{"id":1,"op":"history","channel":"news","limit":1}`, nil)
	alice.fails(`{"id":2,"op":"history","channel":"other","limit":1}`, CodeForbidden)
	alice.ok(`{"id":3,"op":"history","channel":"dm#alice","limit":1}`, nil)
	alice.fails(`{"id":4,"op":"history","channel":"dm#bob","limit":1}`, CodeForbidden)
	alice.exact(`{"id":5,"op":"history","channel":"priv:room"}`,
		`{"id":5,"error":{"code":"forbidden","message":"channel priv:room is private: history needs a channel token"}}`)
	alice.fails(fmt.Sprintf(`{"id":6,"op":"history","channel":"priv:room","token":%q}`, channelToken(t, "bob", "priv:room", time.Hour)), CodeBadToken)
	tok := channelToken(t, "alice", "priv:room", time.Hour)
	alice.ok(fmt.Sprintf(`{"id":7,"op":"history","channel":"priv:room","token":%q}`, tok), nil)
	alice.ok(fmt.Sprintf(`{"id":8,"op":"subscribe","channel":"priv:room","token":%q}`, tok), nil)
	alice.ok(`{"id":9,"op":"history","channel":"priv:room"}`, nil) // subscribed
}

// In a namespace whose subscribes the backend decides, history needs the
// subscription the backend allowed.
func TestHistoryOpSubscribeProxied(t *testing.T) {
	b := newBackend(t)
	e := proxied(t, b, ProxyConfig{SubscribeURL: b.srv.URL + "/subscribe", SubscribeNamespaces: []string{"room"}})
	c := e.dial(t)
	c.fails(`{"id":1,"op":"history","channel":"room:a"}`, CodeForbidden)
	c.ok(`{"id":2,"op":"subscribe","channel":"room:a"}`, nil)
	c.ok(`{"id":3,"op":"history","channel":"room:a"}`, nil)
	c.ok(`{"id":4,"op":"history","channel":"news"}`, nil) // not proxied
}

func TestLatestOnSubscribeOp(t *testing.T) {
	e := start(t, Config{}, nil)
	a, b := e.dial(t), e.dial(t)
	var pr PublishResult
	for i := 1; i <= 3; i++ {
		b.ok(fmt.Sprintf(`{"id":%d,"op":"publish","channel":"news","data":%d}`, i, i), &pr)
	}
	ep := pr.Epoch
	a.exact(`{"id":1,"op":"subscribe","channel":"news","latest":true}`,
		`{"id":1,"result":{"epoch":"`+ep+`","offset":3,"recovered":false}}`,
		`{"channel":"news","offset":3,"epoch":"`+ep+`","data":3,"latest":true}`)
	b.ok(`{"id":4,"op":"publish","channel":"news","data":4}`, nil)
	if got := a.raw(); got != `{"channel":"news","offset":4,"epoch":"`+ep+`","data":4}` {
		t.Fatalf("live push %s", got)
	}
	a.quiet()

	// Nothing published: no push. With since: the recovery, unmarked.
	a.exact(`{"id":3,"op":"subscribe","channel":"empty","latest":true}`,
		`{"id":3,"result":{"epoch":"`+mustEpoch(t, e, "empty")+`","offset":0,"recovered":false}}`)
	a.quiet()
	c := e.dial(t)
	c.exact(`{"id":1,"op":"subscribe","channel":"news","latest":true,"since":{"offset":2,"epoch":"`+ep+`"}}`,
		`{"id":1,"result":{"epoch":"`+ep+`","offset":4,"recovered":true}}`,
		`{"channel":"news","offset":3,"epoch":"`+ep+`","data":3}`,
		`{"channel":"news","offset":4,"epoch":"`+ep+`","data":4}`)
	c.quiet()
}

func mustEpoch(t *testing.T, e *env, channel string) string {
	t.Helper()
	_, pos, err := e.hub.Broker().History(t.Context(), channel, pubsub.HistoryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pos.Epoch
}

// skip_self: the publishing connection gets the reply only; the same
// user's other connection and other users get the push.
func TestPublishSkipSelfOp(t *testing.T) {
	e := start(t, Config{TokenSecret: secret}, nil)
	tokA := token(t, "ann", []string{"*"}, time.Hour)
	a1, a2 := e.dial(t, "Authorization: Bearer "+tokA), e.dial(t, "Authorization: Bearer "+tokA)
	b := e.dial(t, "Authorization: Bearer "+token(t, "bob", []string{"*"}, time.Hour))
	for _, c := range []*client{a1, a2, b} {
		c.ok(`{"id":1,"op":"subscribe","channel":"chat"}`, nil)
	}
	var sr PublishResult
	a1.send(`{"id":2,"op":"publish","channel":"chat","data":"hi","skip_self":true}`)
	m := a1.read()
	if string(m.ID) != "2" || m.Error != nil {
		t.Fatalf("publish reply %+v", m)
	}
	_ = json.Unmarshal(m.Result, &sr)
	a1.quiet()
	a2.push("chat", 1)
	b.push("chat", 1)
	// Without skip_self the publisher's push comes first again.
	a1.send(`{"id":4,"op":"publish","channel":"chat","data":"again"}`)
	a1.push("chat", 2)
	if m := a1.read(); string(m.ID) != "4" {
		t.Fatalf("reply %+v", m)
	}
	a2.push("chat", 2)
	b.push("chat", 2)
}

func TestPresenceStatsOp(t *testing.T) {
	e := start(t, Config{TokenSecret: secret}, nil)
	tokA := token(t, "ann", []string{"room", "news"}, time.Hour)
	a1, a2 := e.dial(t, "Authorization: Bearer "+tokA), e.dial(t, "Authorization: Bearer "+tokA)
	b := e.dial(t, "Authorization: Bearer "+token(t, "bob", []string{"room", "bare:x"}, time.Hour))
	for _, c := range []*client{a1, a2, b} {
		c.ok(`{"id":1,"op":"subscribe","channel":"room"}`, nil)
	}
	a1.exact(`{"id":2,"op":"presence_stats","channel":"room"}`, `{"id":2,"result":{"channel":"room","count":2,"connections":3}}`)
	a1.exact(`{"id":3,"op":"presence_stats","channel":"news"}`, `{"id":3,"result":{"channel":"news","count":0,"connections":0}}`)
	a1.fails(`{"id":4,"op":"presence_stats","channel":"other"}`, CodeForbidden)
	b.exact(`{"id":5,"op":"presence_stats","channel":"bare:x"}`,
		`{"id":5,"error":{"code":"presence_disabled","message":"presence is off for this channel's namespace"}}`)
	b.fails(`{"id":6,"op":"presence_stats","channel":"a b"}`, CodeBadChannel)
}
