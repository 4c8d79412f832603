package codec

import (
	"strings"
	"testing"
	"time"
)

func TestAppendRestartReason(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{0, "restart; retry=0.000"},
		{-time.Second, "restart; retry=0.000"},
		{3250 * time.Millisecond, "restart; retry=3.250"},
		{3250*time.Millisecond + 999*time.Microsecond, "restart; retry=3.250"},
		{42 * time.Millisecond, "restart; retry=0.042"},
		{10 * time.Minute, "restart; retry=600.000"},
	} {
		if got := string(AppendRestartReason(nil, tc.d)); got != tc.want {
			t.Errorf("AppendRestartReason(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

func TestParseRetryHint(t *testing.T) {
	for _, c := range []struct {
		reason string
		want   time.Duration
		ok     bool
	}{
		{"restart; retry=3.250", 3250 * time.Millisecond, true},
		{"retry=0", 0, true},
		{"restart; retry=0.000", 0, true},
		{"retry=7", 7 * time.Second, true},
		{"restart;retry=0.001", time.Millisecond, true},
		{"going away; node=b; retry=1.5; x=y", 1500 * time.Millisecond, true},
		{"restart; retry=999999", MaxServerWait, true}, // capped
		{"restart; retry=99999999999999999999999999999999999999.5", MaxServerWait, true},
		{"retry=" + strings.Repeat("8", 400), MaxServerWait, true}, // past float64: found by FuzzRetryHint
		{"", 0, false},
		{"restart", 0, false},
		{"server shutting down", 0, false},
		{"restart; retry=", 0, false},
		{"restart; retry=-1", 0, false},
		{"restart; retry=1.", 0, false},
		{"restart; retry=.5", 0, false},
		{"restart; retry=1e3", 0, false},
		{"restart; retry=NaN", 0, false},
		{"restart; retry=3s", 0, false},
		{"restart; noretry=3", 0, false},
		{"restart; please retry=3 ok", 0, false},
		{"retry = 3", 0, false},
	} {
		d, ok := ParseRetryHint(c.reason)
		if d != c.want || ok != c.ok {
			t.Errorf("ParseRetryHint(%q) = %v, %v; want %v, %v", c.reason, d, ok, c.want, c.ok)
		}
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{"120", 2 * time.Minute, true},
		{"86400", MaxServerWait, true},
		{"99999999999999999999", MaxServerWait, true},
		{"Sat, 01 Mar 2025 12:00:05 GMT", 5 * time.Second, true},
		{"Saturday, 01-Mar-25 12:00:30 GMT", 30 * time.Second, true},
		{"Sat Mar  1 12:01:00 2025", time.Minute, true},
		{"Sat, 01 Mar 2025 11:59:00 GMT", 0, true}, // in the past: now
		{"", 0, false},
		{"-1", 0, false},
		{"1.5", 0, false},
		{"soon", 0, false},
	} {
		d, ok := ParseRetryAfter(c.v, now)
		if d != c.want || ok != c.ok {
			t.Errorf("ParseRetryAfter(%q) = %v, %v; want %v, %v", c.v, d, ok, c.want, c.ok)
		}
	}
}

// FuzzRetryHint: no input panics or yields a hint outside [0, MaxServerWait],
// and every reason wsd writes reads back as the millisecond it says.
func FuzzRetryHint(f *testing.F) {
	for _, s := range []string{"restart; retry=3.250", "retry=1e3", "a;retry=.;b", "retry=" + string(rune(0x10ffff))} {
		f.Add(s, int64(3250))
	}
	f.Fuzz(func(t *testing.T, reason string, ms int64) {
		if d, ok := ParseRetryHint(reason); d < 0 || d > MaxServerWait || (!ok && d != 0) {
			t.Fatalf("ParseRetryHint(%q) = %v, %v", reason, d, ok)
		}
		if d, ok := ParseRetryAfter(reason, time.Unix(0, 0)); d < 0 || d > MaxServerWait || (!ok && d != 0) {
			t.Fatalf("ParseRetryAfter(%q) = %v, %v", reason, d, ok)
		}
		want := min(max(time.Duration(ms%(1<<40))*time.Millisecond, 0), MaxServerWait)
		r := AppendRestartReason(nil, want)
		if len(r) > MaxControlPayload-2 {
			t.Fatalf("reason %q does not fit a close frame", r)
		}
		if d, ok := ParseRetryHint(string(r)); !ok || d != want {
			t.Fatalf("ParseRetryHint(%q) = %v, %v; want %v", r, d, ok, want)
		}
	})
}
