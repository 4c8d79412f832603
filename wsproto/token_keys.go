package wsproto

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token keys: HS256 with Config.TokenSecret, RS256 and ES256 with public
// keys from Config.TokenPublicKeyPEM and Config.TokenJWKSURL. Tokens are
// checked on the event loop (Accept), so nothing here blocks on the
// network: JWKS fetches run in the background and the key in force is read
// from an atomic pointer.

// JWKS limits.
const (
	jwksTimeout     = 5 * time.Second  // one fetch
	jwksMinInterval = 10 * time.Second // between fetches for unknown kids
	jwksMaxAge      = 5 * time.Minute  // a set older than this is fetched again on use
	jwksMaxBytes    = 1 << 20          // response body
	jwksMaxKeys     = 64               // keys kept from one response
	minRSABits      = 2048
)

// pubKey is a verification key and its JWKS key ID ("" from PEM).
type pubKey struct {
	kid string
	key any // *rsa.PublicKey or *ecdsa.PublicKey (P-256)
}

// fits reports whether k can verify alg.
func (k pubKey) fits(alg string) bool {
	switch k.key.(type) {
	case *rsa.PublicKey:
		return alg == jwt.SigningMethodRS256.Alg()
	case *ecdsa.PublicKey:
		return alg == jwt.SigningMethodES256.Alg()
	}
	return false
}

// ErrTokenKey is a key that cannot be used: not PEM, not RSA (2048 bits or
// more) or EC P-256, a bad JWKS document.
var ErrTokenKey = errors.New("unusable token key")

// parsePEMKeys reads every public key of a PEM file: PUBLIC KEY (PKIX),
// RSA PUBLIC KEY (PKCS #1) or CERTIFICATE blocks.
func parsePEMKeys(data []byte) ([]pubKey, error) {
	var keys []pubKey
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		var k any
		var err error
		switch b.Type {
		case "PUBLIC KEY":
			k, err = x509.ParsePKIXPublicKey(b.Bytes)
		case "RSA PUBLIC KEY":
			k, err = x509.ParsePKCS1PublicKey(b.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
				k = cert.PublicKey
			}
		default:
			return nil, fmt.Errorf("%w: PEM block %q (want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE)", ErrTokenKey, b.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrTokenKey, err)
		}
		if err := checkKey(k); err != nil {
			return nil, err
		}
		keys = append(keys, pubKey{key: k})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no PEM public key found", ErrTokenKey)
	}
	return keys, nil
}

func checkKey(k any) error {
	switch k := k.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("%w: RSA key of %d bits (at least %d)", ErrTokenKey, k.N.BitLen(), minRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return fmt.Errorf("%w: EC key on %s (ES256 needs P-256)", ErrTokenKey, k.Curve.Params().Name)
		}
		return nil
	}
	return fmt.Errorf("%w: %T (want RSA or EC P-256)", ErrTokenKey, k)
}

// jwk is one key of a JWKS document (RFC 7517), the fields wsd reads.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads the RSA and EC P-256 signing keys of a JWKS document;
// other keys are skipped.
func parseJWKS(data []byte) ([]pubKey, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%w: JWKS: %v", ErrTokenKey, err)
	}
	var keys []pubKey
	for _, j := range doc.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := j.publicKey()
		if err != nil || k == nil {
			continue // a key this server cannot use does not spoil the others
		}
		if checkKey(k) != nil {
			continue
		}
		keys = append(keys, pubKey{kid: j.Kid, key: k})
		if len(keys) == jwksMaxKeys {
			break
		}
	}
	return keys, nil
}

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// publicKey converts j; nil without error for key types wsd does not use.
func (j jwk) publicKey() (any, error) {
	switch j.Kty {
	case "RSA":
		n, err := b64(j.N)
		if err != nil {
			return nil, err
		}
		e, err := b64(j.E)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return nil, fmt.Errorf("bad RSA exponent")
		}
		ev := new(big.Int).SetBytes(e).Int64()
		return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(ev)}, nil
	case "EC":
		if j.Crv != "P-256" {
			return nil, nil
		}
		x, err := b64(j.X)
		if err != nil || len(x) != 32 {
			return nil, fmt.Errorf("bad EC x")
		}
		y, err := b64(j.Y)
		if err != nil || len(y) != 32 {
			return nil, fmt.Errorf("bad EC y")
		}
		return ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...)) // checks the point is on the curve
	}
	return nil, nil
}

// jwksCache holds a JWKS endpoint's keys. Safe from any goroutine; nothing
// in it blocks but fetch, which runs at New and on its own goroutine.
type jwksCache struct {
	url         string
	client      *http.Client
	log         *slog.Logger
	now         func() time.Time
	minInterval time.Duration

	keys atomic.Pointer[[]pubKey]

	mu        sync.Mutex
	fetching  bool
	lastTry   time.Time // the last fetch started
	fetchedAt time.Time // the last fetch that worked
	fetches   int       // fetches started (tests)
}

func newJWKSCache(url string, log *slog.Logger, now func() time.Time) *jwksCache {
	return &jwksCache{url: url, client: &http.Client{Timeout: jwksTimeout}, log: log, now: now, minInterval: jwksMinInterval}
}

// fetch gets the document once and replaces the keys when it worked.
func (j *jwksCache) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, j.url, nil)
	if err != nil {
		return err
	}
	resp, err := j.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("JWKS %s: status %d", j.url, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return err
	}
	if len(body) > jwksMaxBytes {
		return fmt.Errorf("JWKS %s: over %d bytes", j.url, jwksMaxBytes)
	}
	keys, err := parseJWKS(body)
	if err != nil {
		return err
	}
	j.keys.Store(&keys)
	j.mu.Lock()
	j.fetchedAt = j.now()
	j.mu.Unlock()
	return nil
}

// refreshSoon starts a background fetch when a token names an unknown kid
// (a rotated key) or the set is older than jwksMaxAge, unless one runs or
// one started less than minInterval ago: a stream of tokens with made-up
// kids costs the JWKS endpoint one request per minInterval.
func (j *jwksCache) refreshSoon(unknownKid bool) {
	j.mu.Lock()
	now := j.now()
	due := !j.fetching && now.Sub(j.lastTry) >= j.minInterval && (unknownKid || now.Sub(j.fetchedAt) >= jwksMaxAge)
	if due {
		j.fetching, j.lastTry = true, now
		j.fetches++
	}
	j.mu.Unlock()
	if !due {
		return
	}
	go func() {
		err := j.fetch(context.Background())
		if err != nil {
			j.log.Warn("ws: fetching the token JWKS failed", "url", j.url, "err", err)
		}
		j.mu.Lock()
		j.fetching = false
		j.mu.Unlock()
	}()
}

// lookup returns the keys with kid (every key when kid is ""), starting a
// refresh when kid is unknown or the set is old. It never blocks.
func (j *jwksCache) lookup(kid string) []pubKey {
	var all []pubKey
	if p := j.keys.Load(); p != nil {
		all = *p
	}
	if kid == "" {
		j.refreshSoon(false)
		return all
	}
	for _, k := range all {
		if k.kid == kid {
			j.refreshSoon(false)
			return []pubKey{k}
		}
	}
	j.refreshSoon(true)
	return nil
}

// tokenKeys verifies every token the handler sees.
type tokenKeys struct {
	secret []byte     // HS256; nil: none
	static []pubKey   // from PEM
	jwks   *jwksCache // nil: none
}

// methods are the algorithms accepted.
func (k *tokenKeys) methods() []string {
	var m []string
	if k.secret != nil {
		m = append(m, jwt.SigningMethodHS256.Alg())
	}
	if len(k.static) > 0 || k.jwks != nil {
		m = append(m, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}
	return m
}

var errNoKey = errors.New("no key for the token's alg and kid")

// keyFunc is the parser's key function: the secret for HS256, the public
// keys fitting the alg (and kid, from a JWKS) for RS256 and ES256.
func (k *tokenKeys) keyFunc(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == jwt.SigningMethodHS256.Alg() {
		if k.secret == nil {
			return nil, errNoKey
		}
		return k.secret, nil
	}
	var set jwt.VerificationKeySet
	for _, pk := range k.static {
		if pk.fits(alg) {
			set.Keys = append(set.Keys, pk.key)
		}
	}
	if k.jwks != nil {
		kid, _ := t.Header["kid"].(string)
		for _, pk := range k.jwks.lookup(kid) {
			if pk.fits(alg) {
				set.Keys = append(set.Keys, pk.key)
			}
		}
	}
	switch len(set.Keys) {
	case 0:
		return nil, errNoKey
	case 1:
		return set.Keys[0], nil
	}
	return set, nil
}

// newTokenKeys reads the configured keys; the JWKS is fetched once here
// (bounded by jwksTimeout): a failure is logged and retried on use.
func newTokenKeys(cfg Config, now func() time.Time) (*tokenKeys, error) {
	k := &tokenKeys{}
	if cfg.TokenSecret != "" {
		k.secret = []byte(cfg.TokenSecret)
	}
	if len(cfg.TokenPublicKeyPEM) > 0 {
		keys, err := parsePEMKeys(cfg.TokenPublicKeyPEM)
		if err != nil {
			return nil, fmt.Errorf("token_public_key: %w", err)
		}
		k.static = keys
	}
	if cfg.TokenJWKSURL != "" {
		k.jwks = newJWKSCache(cfg.TokenJWKSURL, cfg.Logger, now)
		k.jwks.lastTry = now()
		k.jwks.fetches = 1
		if err := k.jwks.fetch(context.Background()); err != nil {
			cfg.Logger.Warn("ws: fetching the token JWKS failed; tokens signed with its keys are refused until a fetch works", "url", cfg.TokenJWKSURL, "err", err)
		}
	}
	return k, nil
}
