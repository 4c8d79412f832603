package main

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestTrustedProxiesFlagAndFile(t *testing.T) {
	p := writeConfig(t, `trusted_proxies = ["127.0.0.1/32", "10.1.2.3", "2001:db8::/32"]`)
	c, err := parseConfig([]string{"--config", p}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.1.2.3/32"),
		netip.MustParsePrefix("2001:db8::/32")}
	if !slices.Equal(c.trustedProxies, want) {
		t.Fatalf("from the file: %v, want %v", c.trustedProxies, want)
	}
	// The command line replaces the file's list.
	c, err = parseConfig([]string{"--config", p, "--trusted-proxies", "192.168.0.0/16"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.trustedProxies, []netip.Prefix{netip.MustParsePrefix("192.168.0.0/16")}) {
		t.Fatalf("flag must win: %v", c.trustedProxies)
	}
	for _, bad := range []string{"10.0.0.0/33", "nginx", "10.0.0.1/x"} {
		_, err := parseConfig([]string{"--trusted-proxies", bad}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "trusted-proxies") {
			t.Errorf("--trusted-proxies %q: %v, want an error naming the flag", bad, err)
		}
	}
}

// The shipped config trusts nginx on the same host.
func TestDeployConfigTrustsLocalProxy(t *testing.T) {
	c, err := parseConfig([]string{"--config", "../../deploy/wsd.toml", "--api-key", "3f9a7c1e5b"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.trustedProxies, []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}) {
		t.Fatalf("deploy/wsd.toml trusted_proxies = %v", c.trustedProxies)
	}
}
