package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/wsdhq/wsd/wsproto"
)

// tokenKeys are the flags of RS256/ES256 connection and channel tokens,
// next to --token-secret (HS256).
type tokenKeys struct {
	publicKeyFile string
	jwksURL       string
}

func (k *tokenKeys) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&k.publicKeyFile, "token-public-key", "", "PEM `file` of public keys (RSA ≥ 2048 bits or EC P-256) verifying RS256/ES256 tokens")
	fs.StringVar(&k.jwksURL, "token-jwks-url", "", "JWKS `url` whose keys verify RS256/ES256 tokens (by kid; fetched at start, on unknown kids at most every 10 s, and when over 5 min old)")
}

// apply puts the keys into cfg; a file that cannot be read is a config
// error.
func (k *tokenKeys) apply(cfg *wsproto.Config) error {
	if k.publicKeyFile != "" {
		b, err := os.ReadFile(k.publicKeyFile)
		if err != nil {
			return &configError{fmt.Sprintf("token_public_key: %v", err)}
		}
		cfg.TokenPublicKeyPEM = b
	}
	cfg.TokenJWKSURL = k.jwksURL
	return nil
}
