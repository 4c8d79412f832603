package client

import (
	"errors"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxServerWait caps a wait a server asks for (close hint or Retry-After):
// a misconfigured server must not park its clients for hours.
const maxServerWait = 10 * time.Minute

// parseRetryHint reads the retry=S parameter of a close reason such as
// "restart; retry=3.250" (docs/protocol.md): ';'-separated parts, S is
// seconds as digits with an optional fraction.
func parseRetryHint(reason string) (time.Duration, bool) {
	for part := range strings.SplitSeq(reason, ";") {
		v, ok := strings.CutPrefix(strings.TrimSpace(part), "retry=")
		if !ok {
			continue
		}
		whole, frac, _ := strings.Cut(v, ".")
		if !allDigits(whole) || (frac != "" && !allDigits(frac)) || whole == "" || strings.HasSuffix(v, ".") {
			return 0, false
		}
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, false
		}
		return min(time.Duration(f*float64(time.Second)), maxServerWait), true
	}
	return 0, false
}

func allDigits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseRetryAfter reads a Retry-After value (RFC 9110 §10.2.3): whole
// seconds, or an HTTP date (relative to now). 0 when absent or invalid.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if allDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(maxServerWait/time.Second) {
			return maxServerWait
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), maxServerWait)
}

// retryDelay is the wait before the next attempt after err, given the
// backoff drawn for it. A close hint replaces the backoff: the server has
// already spread its clients, so only a little jitter is added (it never
// makes the wait shorter). A Retry-After is a floor: whole seconds are
// coarse, so up to a second of jitter keeps the clients it refused
// together from coming back in the same instant.
func (c *Client) retryDelay(err error, backoff time.Duration) time.Duration {
	var ce *CloseError
	if errors.As(err, &ce) {
		if h, ok := ce.RetryHint(); ok {
			return h + mrand.N(min(h/10, 250*time.Millisecond)+1)
		}
	}
	var he *HandshakeError
	if errors.As(err, &he) && he.RetryAfter > 0 {
		return max(backoff, he.RetryAfter+mrand.N(time.Second))
	}
	return backoff
}

// nodeGone reports whether err says the server node is going or gone, so
// that the next attempt goes to the next endpoint: any failed attempt
// (refused, 503, timeout), a close for restart, shutdown or overload
// (1012, 1001, 1013), or a connection lost without a close frame. Other
// closes (1008 slow consumer, 1011, ...) come from a node that is alive.
func nodeGone(err error) bool {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code == 1001 || ce.Code == 1012 || ce.Code == 1013
	}
	return err != nil
}
