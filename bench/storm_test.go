package bench

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// fixedRnd returns frac of n, so that the jitter is predictable.
func fixedRnd(frac float64) func(int64) int64 {
	return func(n int64) int64 { return int64(float64(n-1) * frac) }
}

func TestStormPolicy(t *testing.T) {
	honor := stormPolicy{honor: true, backoffMin: 100 * time.Millisecond, backoffMax: time.Second}
	naive := honor
	naive.honor = false
	top := fixedRnd(1) // the upper end of every jitter range
	for _, c := range []struct {
		name     string
		p        stormPolicy
		how      stormEnd
		hint     time.Duration
		hasHint  bool
		failures int
		want     stormStep
	}{
		{"honour: 1012 hint", honor, endClosed, 2 * time.Second, true, 0, stormStep{wait: 2 * time.Second, notBefore: 2 * time.Second, rotate: true}},
		{"honour: hint 0", honor, endClosed, 0, true, 0, stormStep{rotate: true}},
		{"honour: lost, no hint: first backoff step", honor, endClosed, 0, false, 0, stormStep{wait: 100 * time.Millisecond, rotate: true}},
		{"naive: 1012 hint ignored", naive, endClosed, 2 * time.Second, true, 0, stormStep{notBefore: 2 * time.Second, rotate: true}},
		{"naive: lost", naive, endClosed, 0, false, 0, stormStep{rotate: true}},
		{"honour: 503 Retry-After over backoff", honor, endRefused, 3 * time.Second, true, 0, stormStep{wait: 3 * time.Second, notBefore: 3 * time.Second}},
		{"honour: 503 backoff over Retry-After", honor, endRefused, 0, true, 4, stormStep{wait: time.Second}},
		{"naive: 503 Retry-After ignored", naive, endRefused, 3 * time.Second, true, 1, stormStep{wait: 200 * time.Millisecond, notBefore: 3 * time.Second}},
		{"failure: exponential", honor, endFailed, 0, false, 2, stormStep{wait: 400 * time.Millisecond, rotate: true}},
		{"failure: capped", honor, endFailed, 0, false, 9, stormStep{wait: time.Second, rotate: true}},
		{"failure: no overflow", naive, endFailed, 0, false, 200, stormStep{wait: time.Second, rotate: true}},
	} {
		if got := c.p.next(c.how, c.hint, c.hasHint, c.failures, top); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

// TestStormBackoffJitter: the backoff is full jitter, never past its step,
// and a crowd of clients lost together spreads over the first step.
func TestStormBackoffJitter(t *testing.T) {
	p := stormPolicy{honor: true, backoffMin: 100 * time.Millisecond, backoffMax: time.Second}
	rng := rand.New(rand.NewPCG(1, 2))
	var lo, hi time.Duration = time.Hour, 0
	for range 10_000 {
		s := p.next(endClosed, 0, false, 0, rng.Int64N)
		lo, hi = min(lo, s.wait), max(hi, s.wait)
		if s.wait < 0 || s.wait > p.backoffMin {
			t.Fatalf("wait %v outside [0, %v]", s.wait, p.backoffMin)
		}
	}
	if lo > 5*time.Millisecond || hi < 95*time.Millisecond {
		t.Fatalf("waits span only [%v, %v] of [0, 100ms]", lo, hi)
	}
	for f := range 8 {
		want := min(p.backoffMin<<f, p.backoffMax)
		if got := p.next(endFailed, 0, false, f, fixedRnd(1)).wait; got != want {
			t.Errorf("failures %d: top of range %v, want %v", f, got, want)
		}
		if got := p.next(endFailed, 0, false, f, fixedRnd(0)).wait; got != 0 {
			t.Errorf("failures %d: bottom of range %v, want 0", f, got)
		}
	}
}

func TestStormCurveRebins(t *testing.T) {
	p := newStormPart()
	t0 := int64(1_000_000_000_000) + 3*int64(stormGrain) // not on a 100 ms boundary
	at := func(ms int64) int64 { return t0 + ms*int64(time.Millisecond) }
	p.grain(at(-30)).Closes = 5 // before t0: first bucket
	p.grain(at(0)).Closes = 10
	p.grain(at(95)).Reconnects = 1
	p.grain(at(105)).Reconnects = 2
	p.grain(at(450)).Refused, p.grain(at(450)).Failures = 3, 4
	q := newStormPart()
	q.grain(at(105)).Reconnects = 7
	p.merge(q)
	c := p.curve(t0)
	if len(c) != 5 {
		t.Fatalf("curve has %d points, want 5: %+v", len(c), c)
	}
	want := []StormPoint{{T: 0, Closes: 15, Reconnects: 1}, {T: 0.1, Reconnects: 9}, {T: 0.2}, {T: 0.3}, {T: 0.4, Refused: 3, Failures: 4}}
	for i := range want {
		if c[i].Closes != want[i].Closes || c[i].Reconnects != want[i].Reconnects || c[i].Refused != want[i].Refused ||
			c[i].Failures != want[i].Failures || c[i].T < want[i].T-1e-9 || c[i].T > want[i].T+1e-9 {
			t.Errorf("point %d = %+v, want %+v", i, c[i], want[i])
		}
	}
}

func TestStormConfig(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Scenario: ScenarioEcho, URL: "ws://127.0.0.1:1/", Fallback: []string{"ws://127.0.0.1:2/"}}, "storm only"},
		{Config{Scenario: ScenarioStorm, URL: "ws://127.0.0.1:1/", Fallback: []string{"ws://192.0.2.1/"}}, "loopback"},
		{Config{Scenario: ScenarioStorm, URL: "ws://127.0.0.1:1/", KillPID: 5, KillSignal: "HUP"}, "want TERM, KILL or INT"},
		{Config{Scenario: ScenarioStorm, URL: "ws://127.0.0.1:1/", KillSignal: "KILL"}, "need --kill-pid"},
		{Config{Scenario: ScenarioStorm, URL: "ws://127.0.0.1:1/", BackoffMin: time.Second, BackoffMax: time.Millisecond}, "backoff"},
	} {
		if _, err := c.cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
	cfg, err := Config{Scenario: ScenarioStorm, URL: "ws://127.0.0.1:1/", KillPID: 5}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Duration != DefaultStormDuration || cfg.Warmup != 0 || cfg.BackoffMin != DefaultBackoffMin || cfg.KillSignal != "TERM" ||
		cfg.KillAfter != DefaultStormKillAfter || cfg.MaxAttempts != DefaultStormAttempts {
		t.Fatalf("defaults: %+v", cfg)
	}
	if err := checkKillPID(1); err == nil {
		t.Fatal("--kill-pid 1 accepted")
	}
}

// fakeStorm is a storm result whose curve peaks at peak reconnects per
// bucket, for the report tests.
func fakeStorm(label string, spread int) *Result {
	r := fakeResult(label, ScenarioStorm, 0, 0)
	p := newStormPart()
	t0 := int64(1) << 40 / int64(StormBucket) * int64(StormBucket) // on a bucket boundary
	for i := range 1000 {
		ns := t0 + int64(i%spread)*int64(StormBucket)
		p.grain(ns).Reconnects++
		if i < 10 {
			p.grain(ns).Refused++
			p.grain(ns).Failures++
		}
	}
	p.grain(t0).Closes = 1000
	p.LastBackNs, p.FirstCloseNs = t0+int64(spread)*int64(StormBucket), t0
	p.CloseKinds["close 1012 with retry hint"] = 1000
	r.Totals = Counters{StormClients: 1000, Hit: 1000, Closes: 1000, Reconnects: 1000, Refused: 10, StormFailures: 10}
	r.stormSummary(Config{Scenario: ScenarioStorm, URL: r.URL, BackoffMin: DefaultBackoffMin, BackoffMax: DefaultBackoffMax}, p, t0, nil)
	return r
}

func TestStormTableAndJSON(t *testing.T) {
	r := fakeStorm("hints honoured", 20)
	s := r.Storm
	if s.AllBackS == nil || *s.AllBackS != 2 || s.PeakPerBucket != 50 || len(s.Curve) != 20 || s.Back != 1000 || s.Refused != 10 || s.OtherFailures != 0 {
		t.Fatalf("summary: %+v", s)
	}
	var b bytes.Buffer
	WriteTable(&b, r)
	for _, want := range []string{"storm — hints honoured", "all back", "2.000s", "peak 50 per 100 ms", "refused upgrades  10", "close 1012 with retry hint"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Result
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Storm == nil || len(back.Storm.Curve) != 20 || back.Storm.Downtime == nil || *back.Storm.AllBackS != 2 {
		t.Fatalf("JSON round trip lost the storm: %s", raw)
	}
}
