package wsproto

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/wsdhq/wsd/internal/wstest"
)

type testKeys struct {
	rsa      *rsa.PrivateKey
	ec       *ecdsa.PrivateKey
	otherRSA *rsa.PrivateKey
}

var (
	keysOnce sync.Once
	keysVal  testKeys
)

// genKeys makes the test keys once per run (RSA generation is slow under
// -race).
func genKeys(t *testing.T) testKeys {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if keysVal.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keysVal.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if keysVal.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
	})
	return keysVal
}

func pemOf(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// signed makes a connection token for sub with method, key and kid ("" for
// none).
func signed(t *testing.T, m jwt.SigningMethod, key any, kid, sub string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, Claims{Channels: []string{"*"}, RegisteredClaims: jwt.RegisteredClaims{
		Subject: sub, ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour))}})
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (e *env) accepts(t *testing.T, tok string) bool {
	t.Helper()
	c, err := wstest.Dial(e.addr, "/ws", "Authorization: Bearer "+tok)
	if err == nil {
		c.Close()
		return true
	}
	var he *wstest.HTTPStatusError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Fatalf("dial: %v, want 101 or 401", err)
	}
	return false
}

func TestPublicKeyPEM(t *testing.T) {
	k := genKeys(t)
	pemKeys := append(pemOf(t, &k.rsa.PublicKey), pemOf(t, &k.ec.PublicKey)...)
	e := start(t, Config{TokenPublicKeyPEM: pemKeys}, nil)
	if !e.accepts(t, signed(t, jwt.SigningMethodRS256, k.rsa, "", "alice")) {
		t.Error("RS256 refused")
	}
	if !e.accepts(t, signed(t, jwt.SigningMethodES256, k.ec, "", "alice")) {
		t.Error("ES256 refused")
	}
	if e.accepts(t, signed(t, jwt.SigningMethodRS256, k.otherRSA, "", "alice")) {
		t.Error("RS256 with another key accepted")
	}
	if e.accepts(t, signed(t, jwt.SigningMethodHS256, []byte(secret), "", "alice")) {
		t.Error("HS256 accepted without a secret")
	}
	// Algorithm confusion: the public key's bytes as an HMAC secret.
	if e.accepts(t, signed(t, jwt.SigningMethodHS256, pemKeys, "", "alice")) {
		t.Error("HS256 keyed with the public key accepted")
	}
	if e.accepts(t, signed(t, jwt.SigningMethodRS512, k.rsa, "", "alice")) {
		t.Error("RS512 accepted")
	}

	// With a secret too, both kinds work.
	e2 := start(t, Config{TokenSecret: secret, TokenPublicKeyPEM: pemKeys}, nil)
	if !e2.accepts(t, signed(t, jwt.SigningMethodHS256, []byte(secret), "", "bob")) || !e2.accepts(t, signed(t, jwt.SigningMethodES256, k.ec, "", "bob")) {
		t.Error("HS256 or ES256 refused with a secret and a public key")
	}
}

func TestPublicKeyPEMErrors(t *testing.T) {
	k := genKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	privDER, _ := x509.MarshalPKCS8PrivateKey(k.ec)
	for name, data := range map[string][]byte{
		"empty":       nil,
		"not PEM":     []byte("hello"),
		"RSA 1024":    pemOf(t, &small.PublicKey),
		"P-384":       pemOf(t, &p384.PublicKey),
		"private key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}),
	} {
		if _, err := parsePEMKeys(data); !errors.Is(err, ErrTokenKey) {
			t.Errorf("%s: %v, want ErrTokenKey", name, err)
		}
	}
	if _, err := New(nil, Config{TokenPublicKeyPEM: []byte("hello"), Logger: quiet}); err == nil || !strings.Contains(err.Error(), "token_public_key") {
		t.Errorf("New with a bad PEM: %v", err)
	}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PublicKey) map[string]string {
	return map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256", "n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]string {
	pt, err := k.Bytes() // 0x04 || x || y
	if err != nil {
		panic(err)
	}
	return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64u(pt[1:33]), "y": b64u(pt[33:])}
}

// jwksServer serves a JWKS document that the test may replace, and counts
// requests.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	keys []map[string]string
	hits atomic.Int32
}

func newJWKSServer(t *testing.T, keys ...map[string]string) *jwksServer {
	t.Helper()
	j := &jwksServer{keys: keys}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		j.hits.Add(1)
		j.mu.Lock()
		b, _ := json.Marshal(map[string]any{"keys": j.keys})
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(j.Close)
	return j
}

func (j *jwksServer) set(keys ...map[string]string) {
	j.mu.Lock()
	j.keys = keys
	j.mu.Unlock()
}

func TestJWKS(t *testing.T) {
	k := genKeys(t)
	js := newJWKSServer(t, rsaJWK("r1", &k.rsa.PublicKey), ecJWK("e1", &k.ec.PublicKey),
		map[string]string{"kty": "oct", "kid": "s1", "k": "c2VjcmV0"}) // skipped
	e := start(t, Config{TokenJWKSURL: js.URL}, nil)
	if js.hits.Load() != 1 {
		t.Fatalf("%d JWKS fetches at start, want 1", js.hits.Load())
	}
	if !e.accepts(t, signed(t, jwt.SigningMethodRS256, k.rsa, "r1", "alice")) {
		t.Error("RS256 r1 refused")
	}
	if !e.accepts(t, signed(t, jwt.SigningMethodES256, k.ec, "e1", "alice")) {
		t.Error("ES256 e1 refused")
	}
	if !e.accepts(t, signed(t, jwt.SigningMethodES256, k.ec, "", "alice")) {
		t.Error("ES256 without kid refused")
	}
	if e.accepts(t, signed(t, jwt.SigningMethodRS256, k.rsa, "e1", "alice")) {
		t.Error("RS256 naming an EC key accepted")
	}
	if e.accepts(t, signed(t, jwt.SigningMethodHS256, []byte("c2VjcmV0"), "s1", "alice")) {
		t.Error("HS256 with a JWKS oct key accepted")
	}

	// Unknown kids start at most one fetch per interval, whatever comes
	// (the interval counted from a long time ago: one is due).
	jw := e.h.keys.jwks
	jw.mu.Lock()
	jw.minInterval, jw.lastTry = time.Hour, time.Time{}
	jw.mu.Unlock()
	for range 5 {
		if e.accepts(t, signed(t, jwt.SigningMethodRS256, k.otherRSA, "nope", "alice")) {
			t.Fatal("unknown kid accepted")
		}
	}
	jw.mu.Lock()
	fetches := jw.fetches
	jw.mu.Unlock()
	if fetches != 2 {
		t.Fatalf("%d fetches after five unknown kids, want 2 (start + one)", fetches)
	}

	// Rotation: a new key published in the JWKS is picked up after a token
	// names it (the first such connection may be refused: nothing waits
	// for the network on the event loop).
	jw.mu.Lock()
	jw.minInterval = 0
	jw.mu.Unlock()
	js.set(rsaJWK("r2", &k.otherRSA.PublicKey), ecJWK("e1", &k.ec.PublicKey))
	tok := signed(t, jwt.SigningMethodRS256, k.otherRSA, "r2", "alice")
	deadline := time.Now().Add(10 * time.Second)
	for !e.accepts(t, tok) {
		if time.Now().After(deadline) {
			t.Fatal("rotated key r2 never accepted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// r1 left the set: refused once the set was refreshed.
	if e.accepts(t, signed(t, jwt.SigningMethodRS256, k.rsa, "r1", "alice")) {
		t.Error("removed key r1 still accepted")
	}
	// Let background fetches end before goleak looks.
	waitIdle(t, jw)
}

// waitIdle waits until no JWKS fetch runs.
func waitIdle(t *testing.T, j *jwksCache) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		j.mu.Lock()
		busy := j.fetching
		j.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a JWKS fetch never ended")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A JWKS fetch is bounded in size; a failed one keeps the keys in force.
func TestJWKSFetchBounds(t *testing.T) {
	k := genKeys(t)
	var big atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if big.Load() {
			_, _ = w.Write([]byte(`{"keys":[],"pad":"` + strings.Repeat("x", jwksMaxBytes) + `"}`))
			return
		}
		b, _ := json.Marshal(map[string]any{"keys": []any{rsaJWK("r1", &k.rsa.PublicKey)}})
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	j := newJWKSCache(srv.URL, quiet, time.Now)
	if err := j.fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	big.Store(true)
	if err := j.fetch(context.Background()); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("oversized JWKS: %v", err)
	}
	if got := j.lookup("r1"); len(got) != 1 {
		t.Fatalf("keys after a failed fetch: %v", got)
	}
	waitIdle(t, j)

	// A JWKS that is down at start: New still works, tokens are refused.
	srv.Close()
	e := start(t, Config{TokenJWKSURL: srv.URL}, nil)
	if e.accepts(t, signed(t, jwt.SigningMethodRS256, k.rsa, "r1", "alice")) {
		t.Error("accepted with no JWKS")
	}
	waitIdle(t, e.h.keys.jwks)
}
