package wsproto

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/wsdhq/wsd/server"
)

// Claims are a connection token's claims: the registered ones (sub is the
// client ID and is required; exp, nbf, iat are checked when present) and
// the channel patterns the client may subscribe, publish and query
// presence on ('*' matches any run of characters: "chat:*", "news", "*").
// A token without channels may use none.
type Claims struct {
	Channels []string `json:"channels,omitempty"`
	jwt.RegisteredClaims
}

// NewToken signs a connection token (HS256) for clientID allowed on
// channels, valid for ttl (0: no expiry). For tests, tools and backends
// written in Go.
func NewToken(secret, clientID string, channels []string, ttl time.Duration) (string, error) {
	c := Claims{Channels: channels, RegisteredClaims: jwt.RegisteredClaims{Subject: clientID, IssuedAt: jwt.NewNumericDate(time.Now())}}
	if ttl > 0 {
		c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(ttl))
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
}

// tokenFrom finds the token: ?token= first, then Authorization: Bearer.
func tokenFrom(r *server.Request) string {
	if r.RawQuery != "" {
		if q, err := url.ParseQuery(r.RawQuery); err == nil {
			if t := q.Get("token"); t != "" {
				return t
			}
		}
	}
	if scheme, cred, ok := strings.Cut(r.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(cred)
	}
	return ""
}

var errNoSubject = errors.New("token has no sub (client ID)")

// parseToken verifies tok and returns its claims.
func (h *Handler) parseToken(tok string) (*Claims, error) {
	var c Claims
	_, err := h.parser.ParseWithClaims(tok, &c, h.key)
	if err != nil {
		return nil, err
	}
	if c.Subject == "" {
		return nil, errNoSubject
	}
	return &c, nil
}
