package wsproto

import (
	"fmt"
	"log/slog"
	"time"
)

// Config configures the /ws protocol handler. Zero values take the
// defaults given.
type Config struct {
	// TokenSecret is the HS256 key of connection tokens (JWT: "sub" = the
	// client ID, "channels" = the channel patterns it may use). Empty:
	// anonymous mode, every client may subscribe and publish to any
	// channel (the daemon warns: see Anonymous).
	TokenSecret string
	// TokenPublicKeyPEM holds PEM public keys (PUBLIC KEY, RSA PUBLIC KEY
	// or CERTIFICATE blocks; RSA of 2048 bits or more, or EC P-256) that
	// verify RS256 and ES256 tokens, next to HS256 with TokenSecret.
	TokenPublicKeyPEM []byte
	// TokenJWKSURL is a JWKS endpoint whose RSA and EC P-256 keys verify
	// RS256 and ES256 tokens (matched by kid). It is fetched by New (5 s
	// at most), then in the background when a token names an unknown kid
	// or the keys are over 5 minutes old, at most every 10 s; a connection
	// never waits for a fetch (token_keys.go).
	TokenJWKSURL string
	// TokenLeeway tolerates clock skew on exp/nbf/iat; default 0.
	TokenLeeway time.Duration
	// AllowedOrigins are patterns ('*' matches any run of characters,
	// compared case-insensitively) for the Origin header, e.g.
	// "https://example.com", "https://*.example.com". An upgrade whose
	// Origin matches none is refused with 403; a request without Origin
	// (not from a browser) is let through. Empty: any Origin.
	AllowedOrigins []string
	// MaxDataBytes bounds a publication's data; default 64 KiB. Larger:
	// an error reply "too_large" (the connection stays up).
	MaxDataBytes int
	// MaxSubscriptions bounds one connection's subscriptions; default 128.
	MaxSubscriptions int
	// RateLimit is how many messages per second a connection may send on
	// average, RateBurst how many at once; past them the connection is
	// closed with 1008. Defaults 20/s and 50; a negative RateLimit turns
	// the limit off.
	RateLimit float64
	RateBurst int
	// Logger gets refusals at debug level; default slog.Default().
	Logger *slog.Logger
	// NodeID, when set, goes into anonymous client IDs: "anon-<NodeID>-<n>"
	// instead of "anon-<n>". Connection numbers restart at 1 on every node,
	// so a cluster whose presence is shared sets it to keep two nodes'
	// anonymous clients apart.
	NodeID string
	// Proxy sends rpc, and optionally publish and subscribe, to the
	// application's backend (proxy.go).
	Proxy ProxyConfig
}

// Defaults.
const (
	DefaultMaxDataBytes     = 64 << 10
	DefaultMaxSubscriptions = 128
	DefaultRateLimit        = 20
	DefaultRateBurst        = 50
)

// AnonymousWarning is what the daemon logs at start when Config.Anonymous.
const AnonymousWarning = "no token_secret, token_public_key or token_jwks_url configured: anonymous clients may subscribe and publish to any channel"

// Anonymous reports whether clients connect without tokens (no
// TokenSecret, TokenPublicKeyPEM or TokenJWKSURL): every client may use
// every channel.
func (c Config) Anonymous() bool {
	return c.TokenSecret == "" && len(c.TokenPublicKeyPEM) == 0 && c.TokenJWKSURL == ""
}

func (c *Config) setDefaults() {
	if c.MaxDataBytes <= 0 {
		c.MaxDataBytes = DefaultMaxDataBytes
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst <= 0 {
		c.RateBurst = DefaultRateBurst
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports the first unusable setting, naming it as the config
// file does.
func (c Config) Validate() error {
	for _, o := range c.AllowedOrigins {
		if o == "" {
			return fmt.Errorf("allowed_origins: empty pattern")
		}
	}
	if err := c.Proxy.validate(); err != nil {
		return err
	}
	switch {
	case c.TokenLeeway < 0:
		return fmt.Errorf("token_leeway %v is negative", c.TokenLeeway)
	case c.MaxDataBytes < 0:
		return fmt.Errorf("max_data_bytes %d is negative", c.MaxDataBytes)
	case c.MaxSubscriptions < 0:
		return fmt.Errorf("max_subscriptions %d is negative", c.MaxSubscriptions)
	case c.RateBurst < 0:
		return fmt.Errorf("rate_burst %d is negative", c.RateBurst)
	}
	return nil
}
