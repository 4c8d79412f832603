package wsproto

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/wsdhq/wsd/pubsub"
)

func privateNS() pubsub.Namespaces {
	ns := defaultNS()
	ns["priv"] = pubsub.NamespaceOptions{HistorySize: 10, Presence: true, Private: true}
	return ns
}

func channelToken(t *testing.T, sub, channel string, ttl time.Duration) string {
	t.Helper()
	tok, err := NewChannelToken(secret, sub, channel, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// Subscribing to a private channel needs a channel token for this client
// and channel; every refusal is an error reply and the connection stays up.
func TestPrivateChannelNeedsChannelToken(t *testing.T) {
	e := start(t, Config{TokenSecret: secret}, privateNS())
	alice := e.dial(t, "Authorization: Bearer "+token(t, "alice", []string{"news"}, time.Hour))
	bob := e.dial(t, "Authorization: Bearer "+token(t, "bob", []string{"*"}, time.Hour))
	sub := func(tok string) string {
		if tok == "" {
			return `{"id":1,"op":"subscribe","channel":"priv:room"}`
		}
		return fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"priv:room","token":%q}`, tok)
	}
	alice.fails(sub(""), CodeForbidden)
	alice.fails(sub("garbage"), CodeBadToken)
	alice.fails(sub(channelToken(t, "bob", "priv:room", time.Hour)), CodeBadToken)
	alice.fails(sub(channelToken(t, "alice", "priv:other", time.Hour)), CodeBadToken)
	otherKey, _ := NewChannelToken("other-secret", "alice", "priv:room", time.Hour)
	alice.fails(sub(otherKey), CodeBadToken)
	expired, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, ChannelClaims{Channel: "priv:room", RegisteredClaims: jwt.RegisteredClaims{
		Subject: "alice", ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Minute))}}).SignedString([]byte(secret))
	alice.fails(sub(expired), CodeBadToken)
	// A connection token is not a channel token (no channel claim).
	alice.fails(sub(token(t, "alice", []string{"*"}, time.Hour)), CodeBadToken)
	// Not subscribed, and priv:room is not in alice's patterns.
	alice.fails(`{"id":2,"op":"presence","channel":"priv:room"}`, CodeForbidden)

	alice.ok(sub(channelToken(t, "alice", "priv:room", time.Hour)), nil)
	// Subscribed with the channel token: publish and presence too.
	var p PresenceResult
	alice.ok(`{"id":3,"op":"presence","channel":"priv:room"}`, &p)
	if p.Count != 1 {
		t.Fatalf("presence %+v", p)
	}
	alice.send(`{"id":4,"op":"publish","channel":"priv:room","data":"hi"}`)
	alice.push("priv:room", 1)
	if m := alice.read(); string(m.ID) != "4" || m.Error != nil {
		t.Fatalf("publish reply %+v", m)
	}

	// bob's "*" pattern does not open a private channel for subscribe.
	bob.fails(sub(""), CodeForbidden)
	bob.ok(`{"id":5,"op":"ping"}`, nil)
}

// A user channel ("...#alice") is open to that user only, without
// patterns; to everyone else it is forbidden for every op.
func TestUserChannels(t *testing.T) {
	e := start(t, Config{TokenSecret: secret}, privateNS())
	alice := e.dial(t, "Authorization: Bearer "+token(t, "alice", nil, time.Hour))
	bob := e.dial(t, "Authorization: Bearer "+token(t, "bob", []string{"*"}, time.Hour))
	alice.ok(`{"id":1,"op":"subscribe","channel":"inbox#alice"}`, nil)
	alice.ok(`{"id":2,"op":"subscribe","channel":"priv:dm#alice"}`, nil) // a user channel needs no channel token
	alice.fails(`{"id":3,"op":"subscribe","channel":"inbox#"}`, CodeForbidden)
	alice.fails(`{"id":4,"op":"subscribe","channel":"inbox#alice2"}`, CodeForbidden)
	bob.fails(`{"id":1,"op":"subscribe","channel":"inbox#alice"}`, CodeForbidden)
	bob.fails(`{"id":2,"op":"publish","channel":"inbox#alice","data":1}`, CodeForbidden)
	bob.fails(`{"id":3,"op":"presence","channel":"inbox#alice"}`, CodeForbidden)
	bob.fails(`{"id":4,"op":"subscribe","channel":"priv:dm#alice","token":`+fmt.Sprintf("%q", channelToken(t, "bob", "priv:dm#alice", time.Hour))+`}`, CodeForbidden)
	bob.ok(`{"id":5,"op":"publish","channel":"inbox#bob","data":"x"}`, nil)
	alice.send(`{"id":5,"op":"publish","channel":"inbox#alice","data":"x"}`)
	alice.push("inbox#alice", 1)
	if m := alice.read(); string(m.ID) != "5" || m.Error != nil {
		t.Fatalf("publish reply %+v", m)
	}
}

// Without a token key nobody can prove access to a private channel.
func TestPrivateChannelAnonymous(t *testing.T) {
	e := start(t, Config{}, privateNS())
	a := e.dial(t)
	a.fails(`{"id":1,"op":"subscribe","channel":"priv:room"}`, CodeForbidden)
	a.ok(`{"id":2,"op":"subscribe","channel":"news"}`, nil)
}
