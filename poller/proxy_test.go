package poller

import (
	"net/netip"
	"testing"

	"github.com/wsdhq/wsd/codec"
)

func TestClientAddrFromForwardingHeaders(t *testing.T) {
	e := New(Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}}, nil)
	h := func(kv ...string) *codec.Request {
		r := &codec.Request{}
		for i := 0; i < len(kv); i += 2 {
			r.Header = append(r.Header, codec.HeaderField{Name: kv[i], Value: kv[i+1]})
		}
		return r
	}
	cases := []struct {
		name string
		req  *codec.Request
		want string // "" = none named
	}{
		{"single", h("X-Forwarded-For", "203.0.113.1"), "203.0.113.1"},
		{"rightmost untrusted", h("X-Forwarded-For", "1.1.1.1, 203.0.113.1, 10.1.2.3"), "203.0.113.1"},
		{"split over lines", h("X-Forwarded-For", "1.1.1.1", "x-forwarded-for", "203.0.113.9, 127.0.0.1"), "203.0.113.9"},
		{"with port", h("X-Forwarded-For", "203.0.113.1:4711"), "203.0.113.1"},
		{"ipv6 with port", h("X-Forwarded-For", "[2001:db8::1]:4711"), "2001:db8::1"},
		{"mapped v4", h("X-Forwarded-For", "::ffff:203.0.113.5"), "203.0.113.5"},
		{"all trusted: leftmost", h("X-Forwarded-For", "10.0.0.5, 127.0.0.1"), "10.0.0.5"},
		{"empty items", h("X-Forwarded-For", " , 203.0.113.1 , "), "203.0.113.1"},
		{"garbage", h("X-Forwarded-For", "unknown"), ""},
		{"garbage right of client", h("X-Forwarded-For", "203.0.113.1, nope"), ""},
		{"garbage behind trusted", h("X-Forwarded-For", "nope, 10.0.0.5"), "10.0.0.5"},
		{"huge", h("X-Forwarded-For", "999.999.999.999"), ""},
		{"real ip", h("X-Real-IP", "198.51.100.7"), "198.51.100.7"},
		{"xff wins over real ip", h("X-Real-IP", "198.51.100.7", "X-Forwarded-For", "203.0.113.1"), "203.0.113.1"},
		{"bad real ip", h("X-Real-IP", "x"), ""},
		{"none", h("Host", "a"), ""},
	}
	for _, tc := range cases {
		got, ok := e.clientAddr(tc.req)
		if tc.want == "" {
			if ok {
				t.Errorf("%s: named %v, want none", tc.name, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tc.want) {
			t.Errorf("%s: got %v (%v), want %s", tc.name, got, ok, tc.want)
		}
	}
}
