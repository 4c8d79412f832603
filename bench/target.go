package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// Target is a parsed ws:// URL with the address to connect to.
type Target struct {
	URL  string         // as given
	Addr netip.AddrPort // resolved destination
	Host string         // the Host header
	Path string         // request target: path and query
}

// ErrNotLoopback is returned for a target or source address outside the
// loopback range when remote targets were not explicitly allowed.
var ErrNotLoopback = errors.New("only loopback addresses (127.0.0.0/8, ::1) may be load-tested; pass --allow-remote for a host you own")

// ParseTarget parses a ws:// URL. Host names other than "localhost" are
// resolved only when allowRemote is set; without it every address must be
// loopback. wss:// is refused (wsbench speaks plain TCP only).
func ParseTarget(raw string, allowRemote bool) (Target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Target{}, err
	}
	switch u.Scheme {
	case "ws":
	case "wss":
		return Target{}, errors.New("wss:// is not supported: terminate TLS in front, or test the plain ws:// port")
	default:
		return Target{}, fmt.Errorf("target %q: scheme must be ws://", raw)
	}
	host, portStr := u.Hostname(), u.Port()
	if portStr == "" {
		portStr = "80"
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return Target{}, fmt.Errorf("target %q: bad port", raw)
	}
	addr, err := resolveHost(host, allowRemote)
	if err != nil {
		return Target{}, err
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return Target{URL: raw, Addr: netip.AddrPortFrom(addr, uint16(port)), Host: u.Host, Path: path}, nil
}

func resolveHost(host string, allowRemote bool) (netip.Addr, error) {
	if strings.EqualFold(host, "localhost") {
		return netip.MustParseAddr("127.0.0.1"), nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if !allowRemote && !a.IsLoopback() {
			return netip.Addr{}, fmt.Errorf("%s: %w", host, ErrNotLoopback)
		}
		return a, nil
	}
	if !allowRemote {
		return netip.Addr{}, fmt.Errorf("%s: %w", host, ErrNotLoopback)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("resolve %s: %v", host, err)
	}
	return addrs[0].Unmap(), nil
}

// ParseSourceIPs parses "127.0.0.2-127.0.0.60" or a comma-separated list of
// addresses and ranges (IPv4 ranges only). Empty means "let the kernel pick".
func ParseSourceIPs(spec string, allowRemote bool) ([]netip.Addr, error) {
	var out []netip.Addr
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := netip.ParseAddr(strings.TrimSpace(lo))
		if err != nil {
			return nil, fmt.Errorf("source ip %q: %v", part, err)
		}
		b := a
		if isRange {
			if b, err = netip.ParseAddr(strings.TrimSpace(hi)); err != nil {
				return nil, fmt.Errorf("source ip %q: %v", part, err)
			}
			if !a.Is4() || !b.Is4() || b.Less(a) {
				return nil, fmt.Errorf("source ip range %q: want an increasing IPv4 range", part)
			}
		}
		for x := a; ; x = x.Next() {
			if !allowRemote && !x.IsLoopback() {
				return nil, fmt.Errorf("source ip %s: %w", x, ErrNotLoopback)
			}
			out = append(out, x)
			if len(out) > 1<<16 {
				return nil, errors.New("source ip list: more than 65536 addresses")
			}
			if x == b {
				break
			}
		}
	}
	return out, nil
}
