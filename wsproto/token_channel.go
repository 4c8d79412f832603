package wsproto

import (
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/wsdhq/wsd/pubsub"
)

// Channel access beyond the connection token's patterns
// (docs/protocol.md, Authentication):
//
//   - a user channel, whose name has a '#' ("dm:inbox#alice"), is open
//     only to the client whose ID is the part after the last '#', and to
//     it without any other permission;
//   - in a private namespace (pubsub.NamespaceOptions.Private), subscribe
//     needs a channel token: a JWT signed like connection tokens whose sub
//     is the client's ID and whose channel is the channel. A connection
//     subscribed that way may also publish and ask presence there (the
//     namespace's publish policy still applies).

// ChannelClaims are a channel token's claims: sub (the client ID) and
// channel are required; exp, nbf, iat are checked when present.
type ChannelClaims struct {
	Channel string `json:"channel"`
	jwt.RegisteredClaims
}

// NewChannelToken signs a channel token (HS256) letting clientID subscribe
// to channel in a private namespace, valid for ttl (0: no expiry). For
// tests, tools and backends written in Go.
func NewChannelToken(secret, clientID, channel string, ttl time.Duration) (string, error) {
	c := ChannelClaims{Channel: channel, RegisteredClaims: jwt.RegisteredClaims{Subject: clientID, IssuedAt: jwt.NewNumericDate(time.Now())}}
	if ttl > 0 {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(ttl))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}

// channelUser returns the user a user channel belongs to: the part after
// its last '#'.
func channelUser(channel string) (user string, ok bool) {
	i := strings.LastIndexByte(channel, '#')
	if i < 0 {
		return "", false
	}
	return channel[i+1:], true
}

// access decides whether s may run req (subscribe, publish, presence,
// presence_stats or history) on its channel, already validated; nil means
// yes. history is allowed where subscribe would be (or is done).
func (h *Handler) access(s *session, req *Request) *Error {
	if user, ok := channelUser(req.Channel); ok {
		if user == "" || user != s.clientID {
			return &Error{CodeForbidden, "channel " + req.Channel + " is another user's"}
		}
		return nil
	}
	if o, err := h.hub.Namespace(req.Channel); err == nil && o.Private {
		if req.Op == "subscribe" {
			return h.checkChannelToken(s, req)
		}
		if s.subscribed(req.Channel) {
			return nil
		}
		if req.Op == "history" { // readable like subscribing: with a channel token
			return h.checkChannelToken(s, req)
		}
	}
	if req.Op == "history" && h.px.subscribe.covers(pubsub.NamespaceOf(req.Channel)) && !s.subscribed(req.Channel) {
		// The backend decides who may subscribe, so who may read.
		return &Error{CodeForbidden, "subscribe to " + req.Channel + " before reading its history (its subscriptions are the backend's to allow)"}
	}
	if !s.allowed(req.Channel) {
		return &Error{CodeForbidden, "the token does not allow channel " + req.Channel}
	}
	return nil
}

var errTokenChannel = errors.New("the token is for another client or channel")

// checkChannelToken checks a private channel's subscribe token.
func (h *Handler) checkChannelToken(s *session, req *Request) *Error {
	if h.parser == nil {
		return &Error{CodeForbidden, "private channels need connection tokens (no token key configured)"}
	}
	if req.Token == "" {
		return &Error{CodeForbidden, "channel " + req.Channel + " is private: " + req.Op + " needs a channel token"}
	}
	var c ChannelClaims
	if _, err := h.parser.ParseWithClaims(req.Token, &c, h.key); err != nil {
		return &Error{CodeBadToken, "invalid channel token: " + err.Error()}
	}
	if c.Subject != s.clientID || c.Channel != req.Channel {
		return &Error{CodeBadToken, errTokenChannel.Error()}
	}
	return nil
}

// key is the parser's key function for every token (token_keys.go).
func (h *Handler) key(t *jwt.Token) (any, error) { return h.keys.keyFunc(t) }
