package main

import (
	"fmt"
	"net/netip"
	"strings"
)

// prefixList is --trusted-proxies: comma-separated CIDRs (a bare address
// is its own /32 or /128), as a flag.Value.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	if p == nil {
		return ""
	}
	parts := make([]string, len(*p))
	for i, x := range *p {
		parts[i] = x.String()
	}
	return strings.Join(parts, ",")
}

// Set replaces the list: a flag given on the command line is the whole
// list, not an addition to the config file's.
func (p *prefixList) Set(s string) error {
	var out prefixList
	for _, item := range splitList(s) {
		pr, err := parsePrefix(item)
		if err != nil {
			return err
		}
		out = append(out, pr)
	}
	*p = out
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		pr, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR (like 10.0.0.0/8)", s)
		}
		return pr.Masked(), nil
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR", s)
	}
	ip = ip.Unmap()
	return netip.PrefixFrom(ip, ip.BitLen()), nil
}
