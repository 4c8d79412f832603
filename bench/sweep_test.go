package bench

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseRates(t *testing.T) {
	for in, want := range map[string][]float64{
		"30":            {30},
		"5,10:30:5,40":  {5, 10, 15, 20, 25, 30, 40},
		"40, 10, 10":    {10, 40},
		"0.1:0.3:0.1":   {0.1, 0.2, 0.30000000000000004},
		"1:1:5":         {1},
		"2:7:2":         {2, 4, 6},
		"10:20:5,15,12": {10, 12, 15, 20},
	} {
		got, err := ParseRates(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ParseRates(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ",", "0", "-5", "x", "10:5:1", "1:2", "1:2:3:4", "1:2:0", "1:1000:1", "NaN", "+Inf"} {
		if got, err := ParseRates(bad); err == nil {
			t.Errorf("ParseRates(%q) = %v, want an error", bad, got)
		}
	}
}

func TestJudgeStep(t *testing.T) {
	cores, us := 0.9, 3.0
	ok := &Result{Subscribers: 10000, MsgsPerSec: 29.8, DeliveriesPerSec: 298000, DurationS: 5,
		LatencyMs: Percentiles{P50: 5, P99: 99.9, Max: 150, Count: 1000}, ServerCPUCores: &cores, ServerCPUUSPerDelivery: &us}
	st := judgeStep(30, ok, 100)
	if !st.Sustained || !st.KeptUp || st.Why != "" || st.OfferedDeliveriesPerSec != 300000 || st.P99Ms != 99.9 || *st.ServerCPUUSPerDelivery != 3 {
		t.Fatalf("%+v", st)
	}
	// At 2 publishes/s over 5 s, two publications of 10,000 deliveries
	// are 4,000/s of the 20,000/s offered: within what a window's edges
	// cut; more is a backlog.
	low := *ok
	low.MsgsPerSec, low.DeliveriesPerSec = 2, 16001
	if st := judgeStep(2, &low, 100); !st.KeptUp {
		t.Fatalf("2/s, 16001 of 20000 delivered: %+v", st)
	}
	low.DeliveriesPerSec = 15999
	if st := judgeStep(2, &low, 100); st.KeptUp || !strings.Contains(st.Why, "delivered 15999/s of 20000/s offered") {
		t.Fatalf("2/s, 15999 of 20000 delivered: %+v", st)
	}
	for name, c := range map[string]struct {
		mod  func(r *Result)
		want string
	}{
		"slow":      {func(r *Result) { r.LatencyMs.P99 = 267 }, "p99 267 ms > 100 ms"}, // kept up, though
		"lost":      {func(r *Result) { r.Lost, r.Errors = 7, 7 }, "7 lost"},
		"errors":    {func(r *Result) { r.Lost, r.Errors = 7, 9 }, "2 errors"},
		"client":    {func(r *Result) { r.MsgsPerSec = 28 }, "publisher reached 28.0/s of 30/s"},
		"no sample": {func(r *Result) { r.LatencyMs = Percentiles{} }, "no deliveries measured"},
		"backlog":   {func(r *Result) { r.DeliveriesPerSec = 250000 }, "delivered 250000/s of 300000/s offered"},
	} {
		r := *ok
		c.mod(&r)
		st := judgeStep(30, &r, 100)
		if st.Sustained || !strings.Contains(st.Why, c.want) {
			t.Errorf("%s: sustained %v, why %q; want %q", name, st.Sustained, st.Why, c.want)
		}
		if st.KeptUp != (name == "slow") {
			t.Errorf("%s: kept up %v", name, st.KeptUp)
		}
	}
}

func TestMaxSustainedNeedsEveryLowerStep(t *testing.T) {
	sr := &SweepResult{Steps: []SweepStep{
		{Rate: 10, Sustained: true, KeptUp: true, DeliveriesPerSec: 1e5},
		{Rate: 20, Sustained: true, KeptUp: true, DeliveriesPerSec: 2e5},
		{Rate: 30, KeptUp: true, DeliveriesPerSec: 3e5, Why: "p99"},
		{Rate: 40, Sustained: true, DeliveriesPerSec: 4e5}, // a lucky step above a failure does not count
		{Rate: 50, KeptUp: true, DeliveriesPerSec: 5e5},
	}}
	sr.maxSustained()
	if sr.MaxSustainedRate != 20 || sr.MaxSustainedDeliveriesPerSec != 2e5 {
		t.Fatalf("max sustained %v (%v/s), want 20 (200000/s)", sr.MaxSustainedRate, sr.MaxSustainedDeliveriesPerSec)
	}
	if sr.MaxKeptUpRate != 30 || sr.MaxKeptUpDeliveriesPerSec != 3e5 {
		t.Fatalf("max kept up %v (%v/s), want 30 (300000/s)", sr.MaxKeptUpRate, sr.MaxKeptUpDeliveriesPerSec)
	}
	sr.Steps[0].Sustained = false
	sr.maxSustained()
	if sr.MaxSustainedRate != 0 {
		t.Fatalf("first step failed, max sustained %v", sr.MaxSustainedRate)
	}
	var b strings.Builder
	WriteSweepTable(&b, sr)
	if !strings.Contains(b.String(), "): none of the rates") || !strings.Contains(b.String(), "| 30 | 0 | 300000 |") ||
		!strings.Contains(b.String(), "any latency): 30 publishes/s (300000 deliveries/s)") {
		t.Fatalf("table:\n%s", b.String())
	}
}

func TestWriteSweepCompare(t *testing.T) {
	us := 3.5
	a := &SweepResult{Label: "wsd", Conns: 10, Procs: 1, StepDurationS: 5, MaxP99Ms: 100, MaxKeptUpRate: 20, MaxKeptUpDeliveriesPerSec: 200,
		Steps: []SweepStep{{Rate: 10, OfferedDeliveriesPerSec: 100, DeliveriesPerSec: 100, P99Ms: 50, KeptUp: true, Sustained: true, ServerCPUUSPerDelivery: &us},
			{Rate: 20, OfferedDeliveriesPerSec: 200, DeliveriesPerSec: 200, P99Ms: 150, KeptUp: true}}}
	b := &SweepResult{Label: "peer", Conns: 10, Procs: 1, StepDurationS: 5, MaxP99Ms: 100,
		Steps: []SweepStep{{Rate: 10, OfferedDeliveriesPerSec: 100, DeliveriesPerSec: 60, P99Ms: 900}}}
	var out strings.Builder
	WriteSweepCompare(&out, []*SweepResult{a, b})
	for _, want := range []string{
		"| offered publishes/s | offered deliveries/s | wsd delivered/s | wsd p99 ms | wsd µs/delivery | peer delivered/s |",
		"| 10 | 100 | 100 | 50 | 3.50 | 60 ✗ | 900 | – |",
		"| 20 | 200 | 200 | 150 | – | – | – | – |",
		"highest kept up with: 20 publishes/s (200 deliveries/s)",
		"**peer** (10 subscribers, 1 client procs, 5 s per step): highest sustained with p99 ≤ 100 ms: none of the rates",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("lacks %q:\n%s", want, out.String())
		}
	}
}
