package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// RunOptions are how a run talks to its caller; the zero value is silent
// and runs every worker in-process.
type RunOptions struct {
	// Progress receives a live line (TTY: rewritten in place) or plain
	// periodic lines; nil for none.
	Progress io.Writer
	TTY      bool
	// Exe starts a worker process: the program and its arguments, which
	// must lead to ServeWorker. Default: this executable with WorkerArg.
	Exe []string
}

// Run performs one run of cfg and returns the merged result. With
// cfg.Procs > 1 it starts that many worker processes (each under its own
// file limit) and merges their histograms and counters.
func Run(ctx context.Context, cfg Config, opt RunOptions) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.KillPID != 0 {
		if err := checkKillPID(cfg.KillPID); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	var rss rssSource
	switch {
	case cfg.ServerPID > 0:
		rss = procRSS(cfg.ServerPID)
	case cfg.PrometheusURL != "":
		if rss, err = promRSS(cfg.PrometheusURL, cfg.AllowRemote); err != nil {
			return nil, err
		}
	}
	res := &Result{
		Scenario: cfg.Scenario, Label: cfg.Label, URL: cfg.URL, Started: time.Now().UTC(),
		Conns: cfg.Conns, Procs: cfg.Procs, Size: cfg.Size, Text: cfg.Text, Deflate: cfg.Deflate,
		Rate: cfg.Rate, Pipeline: cfg.Pipeline, ConnectRate: cfg.ConnectRate, ServerPID: cfg.ServerPID,
		Mode: cfg.Mode, Channel: cfg.Channel, PublishVia: cfg.Publish, Binary: cfg.Binary,
	}
	if cfg.Scenario == ScenarioBroadcast {
		res.PublishURL = cfg.PublishURL
		if subs := cfg.SubscriberURLs(); len(subs) > 1 {
			for _, u := range subs {
				res.Nodes = append(res.Nodes, NodeResult{URL: u, Latency: NewHist()})
			}
		}
	}
	metered, srvIdx := withServer(cfg.CPUProcs, cfg.ServerPID)
	cpu := &cpuMeter{procs: metered}
	if err := cpu.begin(); err != nil { // every PID is readable before any load
		return nil, err
	}
	if cfg.Scenario == ScenarioIdle || cfg.Scenario == ScenarioConnect {
		res.Size, res.Rate, res.Pipeline = 0, 0, 0
	}
	// idle and echo: the kernel's socket memory before any connection (best
	// effort: no figures rather than no run where /proc differs). Echo at a
	// low --rate shows what sockets keep after some traffic.
	var kernel kernelSource
	var kernelBefore, kernelAfter kernelSnapshot
	if cfg.Scenario == ScenarioIdle || cfg.Scenario == ScenarioEcho {
		kernel = procKernel("/proc/net/sockstat", "/proc/slabinfo", "/sys/kernel/slab")
		if kernelBefore, err = kernel(); err != nil {
			kernel = nil
		}
	}
	// ... and what the server's memory cgroup is charged (its own, unlike the
	// machine-wide figures above).
	var srvCg *serverCgroup
	var cgBefore int64
	if kernel != nil && cfg.ServerPID > 0 {
		if srvCg = newServerCgroup("/proc", "/sys/fs/cgroup", cfg.ServerPID); srvCg != nil {
			if cgBefore, err = srvCg.read(); err != nil {
				srvCg = nil
			}
		}
	}
	if rss != nil {
		if v, err := rss(); err == nil {
			res.ServerRSSBefore = v
		} else {
			return nil, fmt.Errorf("reading the server's RSS: %w", err)
		}
	}

	exe := opt.Exe
	if len(exe) == 0 && cfg.Procs > 1 {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		exe = []string{self, WorkerArg}
	}
	handles := make([]handle, 0, cfg.Procs)
	abortAll := func() {
		for _, h := range handles {
			h.abort()
		}
	}
	for i := range cfg.Procs {
		c := cfg
		c.WorkerIndex, c.WorkerCount = i, cfg.Procs
		var h handle
		if cfg.Procs == 1 {
			h, err = startInproc(ctx, c)
		} else {
			h, err = startProc(ctx, c, exe)
		}
		if err != nil {
			abortAll()
			return nil, err
		}
		handles = append(handles, h)
	}

	tl := &timeline{cfg: cfg, handles: handles, rss: rss, start: time.Now(), out: opt.Progress, tty: opt.TTY}
	tl.setPhase("connect")
	stopTL := tl.run()

	fail := func(err error) (*Result, error) {
		abortAll()
		for _, h := range handles {
			<-h.done()
		}
		stopTL()
		return nil, err
	}
	// Wait until every worker has its connections (or a worker fails).
	for _, h := range handles {
		select {
		case <-h.ready():
		case <-h.done():
			_, err := h.result()
			if err == nil {
				err = errors.New("worker ended before it was ready")
			}
			return fail(err)
		case <-ctx.Done():
			return fail(fmt.Errorf("connecting took longer than the run's limit (%v)", cfg.Timeout))
		}
	}
	sleep := func(d time.Duration) error {
		select {
		case <-time.After(d):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	send := func(cmd string) {
		for _, h := range handles {
			h.send(cmd)
		}
	}
	var measureFrom, measureTo float64
	var stormT0 int64
	var kill *StormKill
	switch cfg.Scenario {
	case ScenarioStorm:
		tl.setPhase("storm")
		measureFrom = tl.now()
		send("start")
		send("measure")
		if stormT0, kill, err = stormWait(ctx, cfg, tl); err != nil {
			return fail(err)
		}
	case ScenarioConnect:
		if res.ServerCPU, err = cpu.end(); err != nil { // the connect phase
			return fail(err)
		}
		tl.setPhase("measure")
		measureFrom = tl.now()
		send("measure")
	default:
		warm := "warmup"
		if cfg.Scenario == ScenarioIdle {
			warm = "settle" // pings only; idle conns stay idle
		}
		tl.setPhase(warm)
		send("start")
		if err := sleep(cfg.Warmup); err != nil {
			return fail(err)
		}
		tl.setPhase("measure")
		measureFrom = tl.now()
		send("measure")
		if err := cpu.begin(); err != nil {
			return fail(err)
		}
		if err := sleep(cfg.Duration); err != nil {
			return fail(err)
		}
		if res.ServerCPU, err = cpu.end(); err != nil {
			return fail(err)
		}
	}
	measureTo = tl.now()
	tl.sampleNow() // the last point of the measured window
	if kernel != nil {
		if kernelAfter, err = kernel(); err != nil {
			kernel = nil
		}
		if srvCg != nil {
			if v, err := srvCg.read(); err == nil {
				srvCg.delta = v - cgBefore
			} else {
				srvCg = nil
			}
		}
	}
	tl.setPhase("drain")
	send("stop")
	var results []*workerResult
	var errs []error
	for _, h := range handles {
		select {
		case <-h.done():
		case <-ctx.Done():
			return fail(errors.New("workers did not finish in time"))
		}
		r, err := h.result()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		results = append(results, r)
	}
	stopTL()
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	res.merge(results)
	res.Timeline = tl.samples
	if srvIdx >= 0 && srvIdx < len(res.ServerCPU) {
		res.setServerCPU(res.ServerCPU[srvIdx])
		res.ServerCPU = res.ServerCPU[:len(cfg.CPUProcs)] // --cpu-pid's list only
	}
	perDelivery(res.ServerCPU, res.DeliveriesPerSec)
	if cfg.Scenario == ScenarioStorm {
		part := newStormPart()
		for _, r := range results {
			part.merge(r.Storm)
		}
		res.stormSummary(cfg, part, stormT0, kill)
	}
	if rss != nil {
		var sum, n int64
		for _, s := range tl.samples {
			if s.RSS > 0 && s.T >= measureFrom && s.T <= measureTo+1e-9 {
				sum += s.RSS
				n++
			}
		}
		if n > 0 {
			res.ServerRSSAfter = sum / n
		}
		if res.ServerRSSAfter > 0 && res.ConnsUp > 0 {
			v := float64(res.ServerRSSAfter-res.ServerRSSBefore) / float64(res.ConnsUp)
			res.ServerRSSBytesPerConn = &v
		}
	}
	if kernel != nil {
		res.Kernel = kernelDelta(kernelBefore, kernelAfter, res.ConnsUp, int64(os.Getpagesize()))
		if res.Kernel != nil && srvCg != nil {
			v := float64(srvCg.delta) / float64(res.ConnsUp)
			res.Kernel.ServerCgroup, res.Kernel.ServerCgroupShared, res.Kernel.ServerCgroupKernelBytesPerConn = srvCg.Path, srvCg.shared, &v
		}
	}
	if opt.Progress != nil && opt.TTY {
		fmt.Fprint(opt.Progress, "\r\033[K")
	}
	return res, nil
}

// timeline samples the workers' counters (and the server's RSS) every
// cfg.Sample, and prints progress.
type timeline struct {
	cfg     Config
	handles []handle
	rss     rssSource
	start   time.Time
	out     io.Writer
	tty     bool

	mu        sync.Mutex
	phase     string
	samples   []Sample
	prev      Counters
	prevT     float64
	lastPrint time.Time
}

func (t *timeline) now() float64 { return time.Since(t.start).Seconds() }

func (t *timeline) setPhase(p string) {
	t.mu.Lock()
	t.phase = p
	t.mu.Unlock()
}

func (t *timeline) run() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(t.cfg.Sample)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				t.sampleNow()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

// sum is the workers' counters now.
func (t *timeline) sum() Counters {
	var c Counters
	for _, h := range t.handles {
		c.Add(h.snapshot())
	}
	return c
}

func (t *timeline) sampleNow() {
	c := t.sum()
	var rss int64
	if t.rss != nil {
		rss, _ = t.rss()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	dt := now - t.prevT
	s := Sample{T: now, Phase: t.phase, Open: c.Open, Up: c.Up, Errors: c.Errors, RSS: rss, Hit: c.Hit, Waiting: c.Waiting}
	if dt > 0 {
		d := c.Sub(t.prev)
		switch t.cfg.Scenario {
		case ScenarioBroadcast:
			s.MsgsPerSec = float64(d.Published) / dt
		case ScenarioIdle:
			s.MsgsPerSec = float64(d.Pongs) / dt
		case ScenarioConnect:
			s.MsgsPerSec = float64(d.Up) / dt
		case ScenarioStorm:
			s.MsgsPerSec = float64(d.Reconnects) / dt
		default:
			s.MsgsPerSec = float64(d.Recv) / dt
		}
		s.DeliveriesPerSec = float64(d.Deliveries) / dt
	}
	t.prev, t.prevT = c, now
	t.samples = append(t.samples, s)
	t.print(s)
}

func (t *timeline) print(s Sample) {
	if t.out == nil {
		return
	}
	if !t.tty && time.Since(t.lastPrint) < 2*time.Second {
		return
	}
	t.lastPrint = time.Now()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %-7s %5.1fs  conns %d/%d", t.cfg.Scenario, s.Phase, s.T, s.Open, t.cfg.Conns)
	switch t.cfg.Scenario {
	case ScenarioConnect:
		fmt.Fprintf(&b, "  upgrades/s %s", human(s.MsgsPerSec))
	case ScenarioIdle:
		fmt.Fprintf(&b, "  pongs/s %s", human(s.MsgsPerSec))
	case ScenarioBroadcast:
		fmt.Fprintf(&b, "  publishes/s %s  deliveries/s %s", human(s.MsgsPerSec), human(s.DeliveriesPerSec))
	case ScenarioStorm:
		fmt.Fprintf(&b, "  reconnects/s %s  hit %d  waiting %d", human(s.MsgsPerSec), s.Hit, s.Waiting)
	default:
		fmt.Fprintf(&b, "  msgs/s %s", human(s.MsgsPerSec))
	}
	if s.RSS > 0 {
		fmt.Fprintf(&b, "  server RSS %s", humanBytes(float64(s.RSS)))
	}
	fmt.Fprintf(&b, "  errors %d", s.Errors)
	if t.tty {
		fmt.Fprintf(t.out, "\r\033[K%s", b.String())
	} else {
		fmt.Fprintln(t.out, b.String())
	}
}
