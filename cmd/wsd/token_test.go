package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/wsdhq/wsd/internal/wstest"
	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/wsproto"
)

// --token-public-key: an ES256 token signed with the file's key connects,
// an HS256 one (no secret configured) is refused with 401; private = true
// in a namespace table is read.
func TestTokenPublicKeyFlag(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	dir := t.TempDir()
	pemFile := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, "token_public_key = \""+pemFile+"\"\n[namespaces.team]\nprivate = true\n")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ready := make(chan *server.Server[wsproto.Session], 1)
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() { done <- run([]string{"--config", cfg, "--listen", addr, "--loops", "1"}, &stderr, ready) }()
	select {
	case <-ready:
	case code := <-done:
		t.Fatalf("exited %d: %s", code, stderr.String())
	case <-time.After(10 * time.Second):
		t.Fatal("not ready")
	}
	sign := func(m jwt.SigningMethod, k any) string {
		s, err := jwt.NewWithClaims(m, wsproto.Claims{Channels: []string{"*"}, RegisteredClaims: jwt.RegisteredClaims{Subject: "ann"}}).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	c, err := wstest.Dial(addr, "/ws", "Authorization: Bearer "+sign(jwt.SigningMethodES256, key))
	if err != nil {
		t.Fatalf("ES256 token: %v", err)
	}
	c.Timeout = 5 * time.Second
	if err := c.WriteMessage(1, []byte(`{"id":1,"op":"subscribe","channel":"team:x"}`)); err != nil {
		t.Fatal(err)
	}
	f, err := c.ReadData()
	if err != nil || !strings.Contains(string(f.Payload), `"forbidden"`) {
		t.Errorf("subscribe to a private channel without a channel token: %q %v", f.Payload, err)
	}
	c.Close()
	_, err = wstest.Dial(addr, "/ws", "Authorization: Bearer "+sign(jwt.SigningMethodHS256, []byte("s")))
	var he *wstest.HTTPStatusError
	if !errors.As(err, &he) || he.Status != 401 {
		t.Errorf("HS256 token without a secret: %v, want 401", err)
	}
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
	if strings.Contains(stderr.String(), "anonymous clients") {
		t.Error("warned about anonymous mode with a public key configured")
	}
}

func TestTokenPublicKeyMissingFile(t *testing.T) {
	var stderr bytes.Buffer
	code := run([]string{"--listen", "127.0.0.1:0", "--token-public-key", filepath.Join(t.TempDir(), "none.pem")}, &stderr, nil)
	if code != 2 || !strings.Contains(stderr.String(), "token_public_key") {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
}
