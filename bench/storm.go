package bench

import (
	"fmt"
	"sort"
	"strings"
	"syscall"
	"time"
)

// The storm scenario (Config.Scenario "storm") holds Conns clients on the
// first of Config.URLs, waits until every one is up, and then follows each
// client through the loss of its server: it records every close (code,
// reason, time) and reconnects the client to the next URL, either at once
// (a naive client) or when the server asked (the retry hint of a 1012
// close, the Retry-After of a refused upgrade), with capped exponential
// backoff and full jitter after other failures. The result is the curve of
// reconnects over time, the connect time of the reconnects, the refused
// upgrades, and the clients that came back before their hint.

const (
	// StormBucket is the width of one point of the reconnect curve.
	StormBucket = 100 * time.Millisecond
	// stormGrain is how finely workers bucket events before the
	// coordinator rebins them onto StormBucket from the storm's start.
	stormGrain = 10 * time.Millisecond
	// maxStormCurve bounds the curve: one point per bucket of at most
	// MaxRunTime.
	maxStormCurve = int(MaxRunTime / StormBucket)
)

// Storm defaults.
const (
	DefaultBackoffMin      = 500 * time.Millisecond
	DefaultBackoffMax      = 30 * time.Second
	DefaultStormDuration   = 30 * time.Second
	DefaultStormAttempts   = 50
	DefaultStormKillAfter  = 500 * time.Millisecond
	maxStormAttemptsPerRun = 10_000
)

// stormEnd is how one connection of a storm client ended.
type stormEnd uint8

const (
	// endClosed: an upgraded connection was closed or lost.
	endClosed stormEnd = iota + 1
	// endRefused: the upgrade was answered with an HTTP status.
	endRefused
	// endFailed: the connect or the handshake failed otherwise.
	endFailed
)

// stormPolicy decides when and where a storm client tries again. It is a
// pure function of its inputs (the jitter comes from rnd), so that tests
// need neither clocks nor sleeps.
type stormPolicy struct {
	honor      bool          // wait for retry hints and Retry-After
	backoffMin time.Duration // base of the exponential backoff
	backoffMax time.Duration // its cap
}

// stormStep is the policy's answer.
type stormStep struct {
	wait      time.Duration // from now until the next attempt
	notBefore time.Duration // the server's hint from now (0: none); attempts before it are early
	rotate    bool          // move on to the next URL
}

// next returns what a client does after an end of kind how. hint is the
// server's wait (close hint or Retry-After) when hasHint; failures counts
// the failed attempts since the client was last up (0 for the first);
// rnd(n) returns a uniform value in [0, n).
func (p stormPolicy) next(how stormEnd, hint time.Duration, hasHint bool, failures int, rnd func(n int64) int64) stormStep {
	var s stormStep
	if hasHint {
		s.notBefore = hint
	}
	switch how {
	case endClosed:
		// The node is going or gone: try the next one. A naive client is
		// back at once; a paced one waits for its hint, or, without one,
		// for the first step of its backoff so that a crowd spreads.
		s.rotate = true
		switch {
		case !p.honor:
		case hasHint:
			s.wait = hint
		default:
			s.wait = p.backoff(0, rnd)
		}
	case endRefused:
		// The node is up but busy: stay, and wait at least what it asked.
		s.wait = p.backoff(failures, rnd)
		if p.honor && hasHint {
			s.wait = max(s.wait, hint)
		}
	default:
		s.rotate = true
		s.wait = p.backoff(failures, rnd)
	}
	return s
}

// backoff is full jitter over min·2^failures, capped at max.
func (p stormPolicy) backoff(failures int, rnd func(n int64) int64) time.Duration {
	d := p.backoffMax
	if failures < 62 {
		if s := p.backoffMin << failures; s > 0 && s < d {
			d = s
		}
	}
	if d <= 0 {
		return 0
	}
	return time.Duration(rnd(int64(d) + 1))
}

// StormKill describes the signal wsbench sent to the node under test.
type StormKill struct {
	PID    int     `json:"pid"`
	Signal string  `json:"signal"`
	AtS    float64 `json:"at_s"` // seconds after every client was up
}

// StormPoint is one bucket of the curve: what happened in [T, T+0.1 s)
// after the storm began.
type StormPoint struct {
	T          float64 `json:"t"`
	Closes     uint64  `json:"closes"`
	Reconnects uint64  `json:"reconnects"`
	Refused    uint64  `json:"refused"`
	Failures   uint64  `json:"failures"` // refused included
}

// StormResult is the storm part of a Result.
type StormResult struct {
	URLs         []string   `json:"urls"`
	HonorHints   bool       `json:"honor_hints"`
	BackoffMinMs float64    `json:"backoff_min_ms"`
	BackoffMaxMs float64    `json:"backoff_max_ms"`
	MaxAttempts  int        `json:"max_attempts"`
	Kill         *StormKill `json:"kill,omitempty"`
	BucketMs     float64    `json:"bucket_ms"`
	// Curve starts where the storm began: the kill, or else the first close.
	Curve []StormPoint `json:"curve"`

	Clients       int64  `json:"clients"`        // clients that were up once
	Hit           int64  `json:"hit"`            // closed at least once
	Back          int64  `json:"back"`           // hit and up again at the end
	NotBack       int64  `json:"not_back"`       // hit and not up at the end (gave up included)
	GaveUp        int64  `json:"gave_up"`        // stopped after max attempts
	Closes        uint64 `json:"closes"`         // upgraded connections closed or lost
	Reconnects    uint64 `json:"reconnects"`     // upgrades after a close
	Refused       uint64 `json:"refused"`        // upgrades answered 503 (or another status)
	OtherFailures uint64 `json:"other_failures"` // attempts that failed otherwise
	Early         uint64 `json:"early"`          // attempts started before the server's hint
	PeakPerBucket uint64 `json:"peak_reconnects_per_bucket"`
	// AllBackS is the time from the storm's start until the last hit
	// client was up again; null when some never came back.
	AllBackS   *float64          `json:"all_back_s"`
	ConnectMs  Percentiles       `json:"connect_ms"`  // TCP connect + upgrade of the reconnects
	DowntimeMs Percentiles       `json:"downtime_ms"` // per client, close → up again
	CloseKinds map[string]uint64 `json:"close_kinds"` // "1012 with retry hint", "EOF", ...
	Downtime   *Hist             `json:"downtime_hist"`
}

// stormPart is one worker's storm events.
type stormPart struct {
	// Grains counts events by wall-clock time in stormGrain units.
	Grains       map[int64]*StormPoint `json:"grains"`
	Downtime     *Hist                 `json:"downtime"`
	CloseKinds   map[string]uint64     `json:"close_kinds"`
	FirstCloseNs int64                 `json:"first_close_ns"` // wall clock
	LastBackNs   int64                 `json:"last_back_ns"`
}

func newStormPart() *stormPart {
	return &stormPart{Grains: map[int64]*StormPoint{}, Downtime: NewHist(), CloseKinds: map[string]uint64{}}
}

// grain returns the bucket of wall-clock time ns, created on first use.
func (p *stormPart) grain(ns int64) *StormPoint {
	k := ns / int64(stormGrain)
	g := p.Grains[k]
	if g == nil {
		g = &StormPoint{}
		p.Grains[k] = g
	}
	return g
}

func (p *stormPart) merge(o *stormPart) {
	if o == nil {
		return
	}
	for k, g := range o.Grains {
		m := p.grain(k * int64(stormGrain))
		m.Closes += g.Closes
		m.Reconnects += g.Reconnects
		m.Refused += g.Refused
		m.Failures += g.Failures
	}
	p.Downtime.Merge(o.Downtime)
	for k, v := range o.CloseKinds {
		p.CloseKinds[k] += v
	}
	if o.FirstCloseNs != 0 && (p.FirstCloseNs == 0 || o.FirstCloseNs < p.FirstCloseNs) {
		p.FirstCloseNs = o.FirstCloseNs
	}
	p.LastBackNs = max(p.LastBackNs, o.LastBackNs)
}

// curve rebins the grains onto StormBucket from t0 (wall-clock ns);
// events before t0 land in the first bucket. Empty buckets in between are
// kept, so that the curve's x axis is time.
func (p *stormPart) curve(t0 int64) []StormPoint {
	keys := make([]int64, 0, len(p.Grains))
	for k := range p.Grains {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	var out []StormPoint
	for _, k := range keys {
		i := max(0, (k*int64(stormGrain)-t0)/int64(StormBucket))
		if i >= int64(maxStormCurve) {
			break
		}
		for int64(len(out)) <= i {
			out = append(out, StormPoint{T: float64(len(out)) * float64(StormBucket/time.Millisecond) / 1000})
		}
		g := p.Grains[k]
		out[i].Closes += g.Closes
		out[i].Reconnects += g.Reconnects
		out[i].Refused += g.Refused
		out[i].Failures += g.Failures
	}
	return out
}

// stormSummary fills r.Storm from the merged worker parts; t0 is the
// storm's start (wall-clock ns; 0: the first close).
func (r *Result) stormSummary(cfg Config, p *stormPart, t0 int64, kill *StormKill) {
	s := &StormResult{
		URLs: cfg.URLs(), HonorHints: !cfg.IgnoreHints, MaxAttempts: cfg.MaxAttempts,
		BackoffMinMs: float64(cfg.BackoffMin) / 1e6, BackoffMaxMs: float64(cfg.BackoffMax) / 1e6,
		Kill: kill, BucketMs: float64(StormBucket) / 1e6, CloseKinds: p.CloseKinds, Downtime: p.Downtime,
	}
	if t0 == 0 || (p.FirstCloseNs != 0 && p.FirstCloseNs < t0) {
		t0 = p.FirstCloseNs
	}
	if t0 != 0 {
		s.Curve = p.curve(t0)
	}
	for _, pt := range s.Curve {
		s.PeakPerBucket = max(s.PeakPerBucket, pt.Reconnects)
	}
	t := r.Totals
	s.Clients, s.Hit, s.GaveUp = t.StormClients, t.Hit, t.GaveUp
	s.NotBack = t.Waiting + t.GaveUp
	s.Back = s.Hit - s.NotBack
	s.Closes, s.Reconnects, s.Refused, s.Early = t.Closes, t.Reconnects, t.Refused, t.Early
	s.OtherFailures = t.StormFailures - t.Refused
	if s.Hit > 0 && s.NotBack == 0 && p.LastBackNs >= t0 && t0 != 0 {
		v := float64(p.LastBackNs-t0) / 1e9
		s.AllBackS = &v
	}
	s.ConnectMs = PercentilesOf(r.Latency)
	s.DowntimeMs = PercentilesOf(p.Downtime)
	r.Storm = s
}

// killSignal maps --signal's names to signals.
func killSignal(name string) (syscall.Signal, error) {
	switch strings.TrimPrefix(strings.ToUpper(name), "SIG") {
	case "TERM":
		return syscall.SIGTERM, nil
	case "KILL":
		return syscall.SIGKILL, nil
	case "INT":
		return syscall.SIGINT, nil
	}
	return 0, fmt.Errorf("--signal %q: want TERM, KILL or INT", name)
}
