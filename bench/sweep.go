package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Bounds of a broadcast rate sweep (wsbench broadcast --rates).
const (
	// MaxSweepSteps bounds the rates one sweep runs: each step is a whole
	// run (connect, warm-up, window, drain).
	MaxSweepSteps = 64
	// DefaultSweepMaxP99 is the latency a sustained step stays within.
	DefaultSweepMaxP99 = 100 * time.Millisecond
	// sweepMinPublished is the share of the offered publishes/s the
	// publisher must reach for a step to count (below it the client, not
	// the server, set the rate), and of the offered deliveries/s the
	// subscribers must get within the window.
	sweepMinPublished = 0.95
)

// ParseRates parses a sweep's offered publish rates: a comma-separated list
// of rates and FROM:TO:STEP ranges (TO included), e.g. "5,10:30:5,40". The
// result is ascending without repeats, every rate positive, at most
// MaxSweepSteps of them.
func ParseRates(s string) ([]float64, error) {
	var out []float64
	add := func(v float64) error {
		if len(out) >= MaxSweepSteps {
			return fmt.Errorf("--rates %q: more than %d steps", s, MaxSweepSteps)
		}
		out = append(out, v)
		return nil
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		parts := strings.Split(f, ":")
		nums := make([]float64, len(parts))
		for i, p := range parts {
			v, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
			if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
				return nil, fmt.Errorf("--rates %q: %q is not a positive number", s, p)
			}
			nums[i] = v
		}
		switch len(nums) {
		case 1:
			if err := add(nums[0]); err != nil {
				return nil, err
			}
		case 3:
			from, to, step := nums[0], nums[1], nums[2]
			if to < from {
				return nil, fmt.Errorf("--rates %q: range %q ends below its start", s, f)
			}
			// Counted, not accumulated: 0.1 steps do not drift past TO.
			n := int(math.Floor((to-from)/step+1e-9)) + 1
			if n > MaxSweepSteps {
				return nil, fmt.Errorf("--rates %q: more than %d steps", s, MaxSweepSteps)
			}
			for i := range n {
				if err := add(from + float64(i)*step); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("--rates %q: %q is neither a rate nor FROM:TO:STEP", s, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("--rates %q: no rate", s)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// Sweep says how a broadcast rate sweep runs.
type Sweep struct {
	Rates  []float64     // offered publishes/s, ascending (ParseRates)
	MaxP99 time.Duration // a sustained step's p99 stays within it; default DefaultSweepMaxP99
	// StopAfter is how many steps in a row not kept up with (something
	// lost) end the sweep: the rates above would only overload the server
	// longer. Steps over the latency bound go on: their throughput and CPU
	// per delivery are figures too. Default 1.
	StopAfter int
	// Pause between steps, for the server to close the last step's
	// connections; default 1 s.
	Pause time.Duration
	// Progress receives one line per step; nil for none.
	Progress io.Writer
}

// SweepStep is one offered rate of a sweep and what the server made of it.
type SweepStep struct {
	Rate                    float64  `json:"rate"` // offered publishes/s
	OfferedDeliveriesPerSec float64  `json:"offered_deliveries_per_sec"`
	PublishesPerSec         float64  `json:"publishes_per_sec"` // reached by the publisher
	DeliveriesPerSec        float64  `json:"deliveries_per_sec"`
	P50Ms                   float64  `json:"p50_ms"`
	P99Ms                   float64  `json:"p99_ms"`
	MaxMs                   float64  `json:"max_ms"`
	Lost                    uint64   `json:"lost"`
	Errors                  uint64   `json:"errors"`
	ServerCPUCores          *float64 `json:"server_cpu_cores,omitempty"`
	ServerCPUUSPerDelivery  *float64 `json:"server_cpu_us_per_delivery,omitempty"`
	Sustained               bool     `json:"sustained"`
	Why                     string   `json:"why,omitempty"` // why not sustained
	// KeptUp: every publication reached every subscriber at the offered
	// rate (nothing lost, no errors, the publisher reached the rate and
	// the window's deliveries/s the offered), whatever the latency.
	KeptUp bool `json:"kept_up"`
}

// SweepResult is a whole sweep; its JSON form is wsbench's --json output
// for broadcast --rates.
type SweepResult struct {
	Label         string      `json:"label,omitempty"`
	URL           string      `json:"url"`
	Started       time.Time   `json:"started"`
	Conns         int         `json:"conns"`
	Procs         int         `json:"procs"`
	Size          int         `json:"size"`
	Text          bool        `json:"text"`
	Mode          string      `json:"mode"`
	StepDurationS float64     `json:"step_duration_s"` // each step's measured window
	MaxP99Ms      float64     `json:"max_p99_ms"`
	Steps         []SweepStep `json:"steps"`
	// MaxSustainedRate is the highest offered publishes/s that the server
	// sustained with every lower step sustained too (0: not even the
	// first); MaxSustainedDeliveriesPerSec is what it delivered there.
	MaxSustainedRate             float64 `json:"max_sustained_rate"`
	MaxSustainedDeliveriesPerSec float64 `json:"max_sustained_deliveries_per_sec"`
	// MaxKeptUpRate is the same without the latency bound: the highest
	// offered publishes/s delivered in full, every lower step too.
	MaxKeptUpRate             float64 `json:"max_kept_up_rate"`
	MaxKeptUpDeliveriesPerSec float64 `json:"max_kept_up_deliveries_per_sec"`
	// Runs are the steps' whole results (for the HTML report).
	Runs []*Result `json:"-"`
}

// judgeStep fills a step from its run: sustained when every publication
// reached every subscriber (nothing lost, no error), the p99 stayed within
// maxP99Ms and the publisher reached the offered rate.
func judgeStep(rate float64, res *Result, maxP99Ms float64) SweepStep {
	st := SweepStep{
		Rate: rate, OfferedDeliveriesPerSec: rate * float64(res.Subscribers),
		PublishesPerSec: res.MsgsPerSec, DeliveriesPerSec: res.DeliveriesPerSec,
		P50Ms: res.LatencyMs.P50, P99Ms: res.LatencyMs.P99, MaxMs: res.LatencyMs.Max,
		Lost: res.Lost, Errors: res.Errors,
		ServerCPUCores: res.ServerCPUCores, ServerCPUUSPerDelivery: res.ServerCPUUSPerDelivery,
	}
	var why []string
	if res.LatencyMs.Count == 0 {
		why = append(why, "no deliveries measured")
	}
	if res.Lost > 0 {
		why = append(why, fmt.Sprintf("%d lost", res.Lost))
	}
	if other := res.Errors - min(res.Errors, res.Lost); other > 0 {
		why = append(why, fmt.Sprintf("%d errors", other))
	}
	if res.MsgsPerSec < sweepMinPublished*rate {
		why = append(why, fmt.Sprintf("publisher reached %.1f/s of %.4g/s", res.MsgsPerSec, rate))
	} else if res.DeliveriesPerSec < st.OfferedDeliveriesPerSec-deliveryShortfall(rate, res) {
		// Everything arrived by the end of the drain, but the window's
		// rate fell short: a backlog grew while it lasted.
		why = append(why, fmt.Sprintf("delivered %.0f/s of %.0f/s offered", res.DeliveriesPerSec, st.OfferedDeliveriesPerSec))
	}
	st.KeptUp = len(why) == 0
	if res.LatencyMs.Count > 0 && res.LatencyMs.P99 > maxP99Ms {
		why = append(why, fmt.Sprintf("p99 %.0f ms > %.0f ms", res.LatencyMs.P99, maxP99Ms))
	}
	st.Sustained, st.Why = len(why) == 0, strings.Join(why, "; ")
	return st
}

// deliveryShortfall is how far under the offered deliveries/s a step's
// window may fall and still count as kept up: 5%, or two publications'
// worth of deliveries over the window, whichever is more. A window holds
// whole fan-outs only approximately: at 2 publishes/s one publication is a
// tenth of a 5 s window, and a fan-out in flight at either edge is counted
// in part.
func deliveryShortfall(rate float64, res *Result) float64 {
	d := (1 - sweepMinPublished) * rate * float64(res.Subscribers)
	if res.DurationS > 0 {
		d = max(d, 2*float64(res.Subscribers)/res.DurationS)
	}
	return d
}

// maxSustained fills the highest rate sustained with every lower step
// sustained too. Steps are ascending.
// The same for the highest rate kept up with.
func (sr *SweepResult) maxSustained() {
	sr.MaxSustainedRate, sr.MaxSustainedDeliveriesPerSec = 0, 0
	sr.MaxKeptUpRate, sr.MaxKeptUpDeliveriesPerSec = 0, 0
	sustained, kept := true, true
	for _, st := range sr.Steps {
		if sustained = sustained && st.Sustained; sustained {
			sr.MaxSustainedRate, sr.MaxSustainedDeliveriesPerSec = st.Rate, st.DeliveriesPerSec
		}
		if kept = kept && st.KeptUp; kept {
			sr.MaxKeptUpRate, sr.MaxKeptUpDeliveriesPerSec = st.Rate, st.DeliveriesPerSec
		}
	}
}

// RunSweep runs a broadcast at each of sw.Rates in turn (cfg.Rate is
// replaced), each a whole run of cfg.Duration after cfg.Warmup on fresh
// connections, and stops after sw.StopAfter steps in a row that were not
// kept up with. A step whose run fails is one, with the error as its
// reason; ctx
// ending stops the sweep with what it has.
func RunSweep(ctx context.Context, cfg Config, sw Sweep, opt RunOptions) (*SweepResult, error) {
	if cfg.Scenario != ScenarioBroadcast {
		return nil, errors.New("--rates: a sweep is a broadcast's")
	}
	if len(sw.Rates) == 0 || len(sw.Rates) > MaxSweepSteps || !slices.IsSorted(sw.Rates) {
		return nil, fmt.Errorf("--rates: want 1..%d ascending rates", MaxSweepSteps)
	}
	if sw.MaxP99 <= 0 {
		sw.MaxP99 = DefaultSweepMaxP99
	}
	if sw.StopAfter <= 0 {
		sw.StopAfter = 1
	}
	if sw.Pause <= 0 {
		sw.Pause = time.Second
	}
	base, err := cfg.withDefaults() // the flags are checked before the first step
	if err != nil {
		return nil, err
	}
	sr := &SweepResult{
		Label: cfg.Label, URL: cfg.URL, Started: time.Now().UTC(), Conns: base.Conns, Procs: base.Procs,
		Size: base.Size, Text: base.Text, Mode: base.Mode, StepDurationS: base.Duration.Seconds(),
		MaxP99Ms: float64(sw.MaxP99) / 1e6,
	}
	fails := 0
	for i, rate := range sw.Rates {
		if i > 0 {
			select {
			case <-time.After(sw.Pause):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		c := cfg
		c.Rate = rate
		res, err := Run(ctx, c, opt)
		var st SweepStep
		if err != nil {
			st = SweepStep{Rate: rate, Why: "run failed: " + err.Error()}
		} else {
			st = judgeStep(rate, res, sr.MaxP99Ms)
			sr.Runs = append(sr.Runs, res)
		}
		sr.Steps = append(sr.Steps, st)
		if sw.Progress != nil {
			fmt.Fprintf(sw.Progress, "sweep %s: %.4g publishes/s offered: %s deliveries/s, p99 %.1f ms, %s\n",
				sweepName(sr), rate, human(st.DeliveriesPerSec), st.P99Ms, verdict(st))
		}
		if st.KeptUp {
			fails = 0
		} else {
			fails++
		}
		if fails >= sw.StopAfter {
			break
		}
	}
	sr.maxSustained()
	return sr, nil
}

// sweepName names a sweep's server: its label, or its URL.
func sweepName(sr *SweepResult) string {
	if sr.Label != "" {
		return sr.Label
	}
	return sr.URL
}

func verdict(st SweepStep) string {
	if st.Sustained {
		return "sustained"
	}
	return "not sustained (" + st.Why + ")"
}

// WriteSweepTable prints a sweep as a Markdown table (readable as it is
// in a terminal) and its highest sustained rate.
func WriteSweepTable(w io.Writer, sr *SweepResult) {
	fmt.Fprintf(w, "broadcast sweep — %s: %d subscribers (%d client procs), %d B, %.0f s per step, sustained = nothing lost, no errors, p99 ≤ %.0f ms\n\n",
		sweepName(sr), sr.Conns, sr.Procs, sr.Size, sr.StepDurationS, sr.MaxP99Ms)
	fmt.Fprintln(w, "| offered publishes/s | offered deliveries/s | delivered/s | p50 ms | p99 ms | max ms | lost | server CPU cores | server CPU µs/delivery | sustained |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	opt := func(p *float64, f string) string {
		if p == nil {
			return "–"
		}
		return fmt.Sprintf(f, *p)
	}
	for _, st := range sr.Steps {
		v := "yes"
		if !st.Sustained {
			v = "no: " + st.Why
		}
		fmt.Fprintf(w, "| %.4g | %.0f | %.0f | %.1f | %.1f | %.1f | %d | %s | %s | %s |\n",
			st.Rate, st.OfferedDeliveriesPerSec, st.DeliveriesPerSec, st.P50Ms, st.P99Ms, st.MaxMs, st.Lost,
			opt(st.ServerCPUCores, "%.2f"), opt(st.ServerCPUUSPerDelivery, "%.2f"), v)
	}
	best := func(what string, rate, perSec float64) {
		if rate > 0 {
			fmt.Fprintf(w, "%s: %.4g publishes/s (%.0f deliveries/s)\n", what, rate, perSec)
		} else {
			fmt.Fprintf(w, "%s: none of the rates\n", what)
		}
	}
	fmt.Fprintln(w)
	best(fmt.Sprintf("highest sustained (p99 ≤ %.0f ms)", sr.MaxP99Ms), sr.MaxSustainedRate, sr.MaxSustainedDeliveriesPerSec)
	best("highest kept up with (all delivered, any latency)", sr.MaxKeptUpRate, sr.MaxKeptUpDeliveriesPerSec)
}

// ReadSweep reads a sweep's JSON (wsbench broadcast --rates --json).
func ReadSweep(path string) (*SweepResult, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var sr SweepResult
	if err := json.Unmarshal(b, &sr); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(sr.Steps) == 0 {
		return nil, fmt.Errorf("%s: not a sweep (no steps)", path)
	}
	return &sr, nil
}

// WriteSweepCompare prints several servers' sweeps side by side as one
// Markdown table: a row per offered rate, for each server delivered/s,
// p99 and server CPU µs per delivery ("–" where its sweep had stopped),
// then each server's highest sustained and kept-up rates.
func WriteSweepCompare(w io.Writer, srs []*SweepResult) {
	var rates []float64
	for _, sr := range srs {
		for _, st := range sr.Steps {
			rates = append(rates, st.Rate)
		}
	}
	slices.Sort(rates)
	rates = slices.Compact(rates)
	head, rule := "| offered publishes/s | offered deliveries/s |", "|---:|---:|"
	for _, sr := range srs {
		n := sweepName(sr)
		head += fmt.Sprintf(" %s delivered/s | %s p99 ms | %s µs/delivery |", n, n, n)
		rule += "---:|---:|---:|"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, rule)
	for _, r := range rates {
		offered := 0.0
		cells := ""
		for _, sr := range srs {
			i := slices.IndexFunc(sr.Steps, func(st SweepStep) bool { return st.Rate == r })
			if i < 0 {
				cells += " – | – | – |"
				continue
			}
			st := sr.Steps[i]
			offered = max(offered, st.OfferedDeliveriesPerSec)
			mark := ""
			if !st.KeptUp {
				mark = " ✗" // not kept up with: something lost, or a backlog
			}
			us := "–"
			if st.ServerCPUUSPerDelivery != nil {
				us = fmt.Sprintf("%.2f", *st.ServerCPUUSPerDelivery)
			}
			cells += fmt.Sprintf(" %.0f%s | %.0f | %s |", st.DeliveriesPerSec, mark, st.P99Ms, us)
		}
		fmt.Fprintf(w, "| %.4g | %.0f |%s\n", r, offered, cells)
	}
	fmt.Fprintln(w)
	for _, sr := range srs {
		fmt.Fprintf(w, "- **%s** (%d subscribers, %d client procs, %.0f s per step): highest sustained with p99 ≤ %.0f ms: %s; highest kept up with: %s\n",
			sweepName(sr), sr.Conns, sr.Procs, sr.StepDurationS, sr.MaxP99Ms, rateOrNone(sr.MaxSustainedRate, sr.MaxSustainedDeliveriesPerSec), rateOrNone(sr.MaxKeptUpRate, sr.MaxKeptUpDeliveriesPerSec))
	}
}

func rateOrNone(rate, perSec float64) string {
	if rate <= 0 {
		return "none of the rates"
	}
	return fmt.Sprintf("%.4g publishes/s (%.0f deliveries/s)", rate, perSec)
}
