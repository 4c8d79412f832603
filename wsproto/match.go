package wsproto

import "strings"

// match reports whether s matches pattern, where '*' matches any run of
// characters (none included) and every other byte matches itself.
func match(pattern, s string) bool {
	// Greedy with one backtrack point: linear in practice, never
	// exponential.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if match(p, s) {
			return true
		}
	}
	return false
}

func originAllowed(patterns []string, origin string) bool {
	origin = strings.ToLower(origin)
	for _, p := range patterns {
		if match(strings.ToLower(p), origin) {
			return true
		}
	}
	return false
}
