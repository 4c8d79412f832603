package bench

import "testing"

// FuzzPayloadParsers: the receive-side parsers never panic on what a
// (possibly broken) server sends, read no further than they are given, and
// accept what the send side wrote.
func FuzzPayloadParsers(f *testing.F) {
	f.Add([]byte(`{"seq":12,"ts":1700000000000000000,"pad":"abc"}`), uint64(3), int64(99), 64)
	f.Add([]byte("00000000000000010000000000000002xyz"), uint64(1), int64(2), 40)
	f.Fuzz(func(t *testing.T, p []byte, seq uint64, ts int64, size int) {
		if _, _, n, st := parseWSData(p); st == wsDataOK && (n < 0 || n > len(p)) {
			t.Fatalf("parseWSData length %d of %d", n, len(p))
		}
		parseBcast(p)
		if ts < 0 {
			ts = -ts
		}
		size = 64 + (size & 0xfff)
		w := appendWSData(nil, seq, ts, size)
		gs, gt, n, st := parseWSData(w)
		if st != wsDataOK || gs != seq || gt != ts || n != len(w) {
			t.Fatalf("ws data round trip: st=%d seq=%d ts=%d n=%d/%d", st, gs, gt, n, len(w))
		}
		b := appendBcastPayload(nil, seq, ts, size)
		if bs, bt, ok := parseBcast(b); !ok || bs != seq || bt != ts {
			t.Fatalf("broadcast payload round trip: %v %d %d", ok, bs, bt)
		}
	})
}
