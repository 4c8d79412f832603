package codec

import (
	"strconv"
	"strings"
	"time"
)

// MaxServerWait caps a wait a server asks for, in a close reason's retry
// hint or an HTTP Retry-After: a misconfigured server must not park its
// clients for hours.
const MaxServerWait = 10 * time.Minute

// AppendRestartReason appends the close reason of a 1012 that asks the
// client to reconnect after d: "restart; retry=S", S in seconds with three
// decimals (d truncated to the millisecond, a negative d counted as 0).
// docs/protocol.md defines the format; it fits a close frame (≤ 123 bytes).
func AppendRestartReason(dst []byte, d time.Duration) []byte {
	ms := max(d, 0) / time.Millisecond
	dst = append(dst, "restart; retry="...)
	dst = strconv.AppendInt(dst, int64(ms/1000), 10)
	frac := int64(ms%1000) + 1000 // leading zeros: 42 ms → "1042" → ".042"
	dst = strconv.AppendInt(dst, frac, 10)
	dst[len(dst)-4] = '.'
	return dst
}

// ParseRetryHint reads the retry hint of a close reason: parts separated by
// ";", one of them "retry=S" with S decimal seconds ("restart; retry=3.250"
// is 3.25 s). It is capped at MaxServerWait; ok is false when the reason
// carries no valid hint.
func ParseRetryHint(reason string) (d time.Duration, ok bool) {
	for part := range strings.SplitSeq(reason, ";") {
		v, found := strings.CutPrefix(strings.TrimSpace(part), "retry=")
		if !found {
			continue
		}
		whole, frac, dot := strings.Cut(v, ".")
		if whole == "" || !allDigits(whole) || !allDigits(frac) || (dot && frac == "") {
			return 0, false
		}
		// Only digits and one dot got here: a ParseFloat error can only be
		// a number too large for float64, which the cap covers too.
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f > MaxServerWait.Seconds() {
			return MaxServerWait, true
		}
		return time.Duration(f * float64(time.Second)), true
	}
	return 0, false
}

// httpDates are the forms a Retry-After date may take (RFC 9110 §5.6.7).
var httpDates = [...]string{time.RFC1123, "Monday, 02-Jan-06 15:04:05 MST", time.ANSIC}

// ParseRetryAfter reads an HTTP Retry-After value (RFC 9110 §10.2.3):
// whole seconds, or an HTTP date taken relative to now. It is capped at
// MaxServerWait; ok is false when v is empty or invalid.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if allDigits(v) {
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || time.Duration(n)*time.Second > MaxServerWait {
			return MaxServerWait, true
		}
		return time.Duration(n) * time.Second, true
	}
	for _, layout := range httpDates {
		if t, err := time.Parse(layout, v); err == nil {
			return min(max(t.Sub(now), 0), MaxServerWait), true
		}
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
