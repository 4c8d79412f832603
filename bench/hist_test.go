package bench

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func exactQuantile(sorted []int64, q float64) int64 {
	rank := int(math.Ceil(q * float64(len(sorted))))
	if rank < 1 {
		rank = 1
	}
	return sorted[rank-1]
}

func TestHistQuantilesWithinPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := NewHist()
	var vals []int64
	for range 200_000 {
		// log-uniform from 100 ns to 10 s
		v := int64(math.Exp(math.Log(100) + r.Float64()*(math.Log(1e10)-math.Log(100))))
		vals = append(vals, v)
		h.Record(v)
	}
	slices.Sort(vals)
	for _, q := range []float64{0.01, 0.5, 0.9, 0.99, 0.999, 0.9999} {
		want := exactQuantile(vals, q)
		got := h.Quantile(q)
		if got < want || float64(got-want) > float64(want)/128+1 {
			t.Errorf("q%.4f: got %d, exact %d (must be ≥ exact and within 1/128)", q, got, want)
		}
	}
	if h.Quantile(1) != vals[len(vals)-1] || h.Max() != vals[len(vals)-1] || h.Min() != vals[0] {
		t.Errorf("max/min: %d %d, want %d %d", h.Max(), h.Min(), vals[len(vals)-1], vals[0])
	}
	if h.Count() != uint64(len(vals)) {
		t.Errorf("count %d", h.Count())
	}
}

func TestHistSmallValuesExact(t *testing.T) {
	h := NewHist()
	for v := int64(0); v < 128; v++ {
		h.Record(v)
	}
	for v := int64(1); v < 128; v++ {
		if got := h.Quantile(float64(v+1) / 128); got != v {
			t.Fatalf("quantile of %d: got %d", v, got)
		}
	}
	h.Record(-5) // clamps to 0
	if h.Min() != 0 {
		t.Fatalf("min %d", h.Min())
	}
}

func TestHistBucketsContiguous(t *testing.T) {
	prevHi := int64(-1)
	for i := 0; i < histBuckets; i++ {
		lo, hi := histBounds(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d: [%d,%d] after %d", i, lo, hi, prevHi)
		}
		if histIndex(lo) != i || histIndex(hi) != i {
			t.Fatalf("bucket %d: index(lo)=%d index(hi)=%d", i, histIndex(lo), histIndex(hi))
		}
		prevHi = hi
	}
	if histIndex(math.MaxInt64) != histBuckets-1 {
		t.Fatal("huge values must clamp into the last bucket")
	}
}

// TestHistMergeAcrossProcesses splits values over several histograms, sends
// each through JSON (as worker processes do) and checks that the merge
// equals one histogram of everything.
func TestHistMergeAcrossProcesses(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	all := NewHist()
	parts := []*Hist{NewHist(), NewHist(), NewHist()}
	for i := range 50_000 {
		v := r.Int64N(5e8)
		all.Record(v)
		parts[i%3].Record(v)
	}
	merged := NewHist()
	for _, p := range parts {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var back Hist
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		merged.Merge(&back)
	}
	if merged.Count() != all.Count() || merged.Min() != all.Min() || merged.Max() != all.Max() {
		t.Fatalf("summary differs: %d/%d %d/%d %d/%d", merged.Count(), all.Count(), merged.Min(), all.Min(), merged.Max(), all.Max())
	}
	if math.Abs(merged.Mean()-all.Mean()) > 1e-6*all.Mean() {
		t.Fatalf("mean %f vs %f", merged.Mean(), all.Mean())
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		if merged.Quantile(q) != all.Quantile(q) {
			t.Errorf("q%v: merged %d, single %d", q, merged.Quantile(q), all.Quantile(q))
		}
	}
	if merged.counts != all.counts {
		t.Error("bucket counts differ")
	}
}

func TestHistJSONRejectsCorrupt(t *testing.T) {
	var h Hist
	for _, bad := range []string{
		`{"sub_bits":6,"count":0,"buckets":[]}`,
		`{"sub_bits":7,"count":2,"buckets":[[1,1]]}`,
		`{"sub_bits":7,"count":1,"buckets":[[999999,1]]}`,
	} {
		if err := json.Unmarshal([]byte(bad), &h); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	empty := NewHist()
	b, _ := json.Marshal(empty)
	var back Hist
	if err := json.Unmarshal(b, &back); err != nil || back.Count() != 0 || back.Quantile(0.99) != 0 {
		t.Fatalf("empty round trip: %v %+v", err, back.Count())
	}
}

func TestCountersSubAdd(t *testing.T) {
	a := Counters{Sent: 10, Recv: 8, Open: 5, Up: 5}
	b := Counters{Sent: 4, Recv: 3, Open: 2, Up: 2}
	d := a.Sub(b)
	if d.Sent != 6 || d.Recv != 5 || d.Open != 5 || d.Up != 3 {
		t.Fatalf("%+v", d)
	}
	var s Counters
	s.Add(a)
	s.Add(b)
	if s.Sent != 14 || s.Open != 7 {
		t.Fatalf("%+v", s)
	}
}

func TestPayloads(t *testing.T) {
	p := appendBcastPayload(nil, 42, 1234567890, 64)
	seq, ts, ok := parseBcast(p)
	if !ok || seq != 42 || ts != 1234567890 || len(p) != 64 {
		t.Fatalf("%d %d %v %d", seq, ts, ok, len(p))
	}
	p[40] ^= 1
	if _, _, ok := parseBcast(p); ok {
		t.Fatal("corrupt fill accepted")
	}
	for _, b := range pattern {
		if b == '\n' || b == ' ' || b < '!' || b > '~' {
			t.Fatalf("pattern byte %q", b)
		}
	}
	a := appendEchoPayload(nil, 7, 9, 1024)
	b := appendEchoPayload(nil, 7, 10, 1024)
	if len(a) != 1024 || string(a) == string(b) {
		t.Fatal("echo payloads must differ per message")
	}
	if len(appendEchoPayload(nil, 1, 1, 5)) != 5 {
		t.Fatal("short payload")
	}
	big := appendEchoPayload(nil, 1, 3, patternLen*2+100)
	if len(big) != patternLen*2+100 {
		t.Fatal("large payload")
	}
}

func TestParseTargetLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"ws://127.0.0.1:8080/echo", "ws://localhost:1/x?y=1", "ws://[::1]:80/", "ws://127.9.9.9/"} {
		if _, err := ParseTarget(ok, false); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"ws://10.0.0.1/echo", "ws://192.168.1.1/", "ws://8.8.8.8/", "ws://example.com/", "wss://127.0.0.1/", "http://127.0.0.1/"} {
		if _, err := ParseTarget(bad, false); err == nil {
			t.Errorf("%s accepted without --allow-remote", bad)
		}
	}
	tg, err := ParseTarget("ws://10.0.0.1:9/a?b=c", true)
	if err != nil || tg.Path != "/a?b=c" || tg.Addr.Port() != 9 {
		t.Fatalf("%+v %v", tg, err)
	}
	ips, err := ParseSourceIPs("127.0.0.2-127.0.0.60", false)
	if err != nil || len(ips) != 59 || ips[0].String() != "127.0.0.2" || ips[58].String() != "127.0.0.60" {
		t.Fatalf("%v %v", len(ips), err)
	}
	if _, err := ParseSourceIPs("10.0.0.1", false); err == nil {
		t.Fatal("non-loopback source accepted")
	}
	if _, err := (Config{Scenario: "echo", URL: "ws://1.2.3.4/"}).withDefaults(); err == nil {
		t.Fatal("config with remote target accepted")
	}
	if _, err := (Config{Scenario: "echo", URL: "ws://127.0.0.1/", Conns: MaxConns + 1}).withDefaults(); err == nil {
		t.Fatal("too many conns accepted")
	}
	c, err := (Config{Scenario: "echo", URL: "ws://127.0.0.1/", Duration: 5 * 1e9, Timeout: 10 * MaxRunTime}).withDefaults()
	if err != nil || c.Timeout != MaxRunTime {
		t.Fatalf("timeout must be capped: %v %v", c.Timeout, err)
	}
}

func TestParseRSS(t *testing.T) {
	v, err := parseVmRSS([]byte("Name:\twsd\nVmPeak:\t  1 kB\nVmRSS:\t   2048 kB\n"))
	if err != nil || v != 2048<<10 {
		t.Fatal(v, err)
	}
	if _, err := parseVmRSS([]byte("Name: x\n")); err == nil {
		t.Fatal("missing VmRSS accepted")
	}
}
