//go:build linux

package bench

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/poller"
)

// Phases of a worker; loops follow the worker's phase.
const (
	phConnect int32 = iota // opening connections
	phTraffic              // scenario traffic, not yet measured (warm-up)
	phMeasure              // traffic, latencies recorded
	phStop                 // no new traffic; replies drain
	phClose                // close handshakes, then exit
)

// worker is one process's share of a run: a few epoll loops, each owning
// many connections.
type worker struct {
	cfg     Config
	targets []Target // Config.URLs
	pubEP   uint8    // broadcast: the publisher's target (Config.PublishURL)
	spread  int      // broadcast: subscribers go round robin over targets[:spread]
	nextSub atomic.Int64
	srcs    []netip.Addr
	base    time.Time
	phase   atomic.Int32
	loops   []*loop
	pubLoop *loop          // the loop holding the publisher connection, if any
	hpub    *httpPublisher // /ws mode, publish over HTTP: the publisher (worker 0)
	scen    scenario
	flate   *codec.Flate
	idBase  int
	planned int // connections this worker opens, publisher included
	bc      bcastState
	wg      sync.WaitGroup
}

func (w *worker) now() int64 { return int64(time.Since(w.base)) }

func newWorker(cfg Config) (*worker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	w := &worker{cfg: cfg, base: time.Now(), scen: newScenario(cfg)}
	for _, u := range cfg.URLs() {
		t, err := ParseTarget(u, cfg.AllowRemote)
		if err != nil {
			return nil, err
		}
		w.targets = append(w.targets, t)
	}
	if cfg.Scenario == ScenarioBroadcast {
		w.spread = len(cfg.SubscriberURLs())
		w.pubEP = uint8(cfg.pubTarget(cfg.URLs()))
	}
	for _, s := range cfg.SourceIPs {
		w.srcs = append(w.srcs, netip.MustParseAddr(s))
	}
	if cfg.Deflate {
		w.flate = codec.NewFlate(codec.DeflateConfig{Enabled: true, Level: 1, Threshold: -1})
	}
	mine := share(cfg.Conns, cfg.WorkerIndex, cfg.WorkerCount)
	for i := 0; i < cfg.WorkerIndex; i++ {
		w.idBase += share(cfg.Conns, i, cfg.WorkerCount)
	}
	pub := cfg.Scenario == ScenarioBroadcast && cfg.WorkerIndex == 0
	if pub && cfg.Mode == ModeWS && cfg.Publish == PublishHTTP {
		w.hpub = newHTTPPublisher(w, w.scen.(*bcastScenario))
		pub = false // no publisher connection
	}
	w.planned = mine
	if pub {
		w.planned++
	}
	limit, _ := poller.RaiseFileLimit()
	if limit > 0 && uint64(w.planned+fdReserve) > limit {
		return nil, fmt.Errorf("%d connections in one process exceed its file limit (%d, keeping %d spare): use --procs %d",
			w.planned, limit, fdReserve, (cfg.Conns+int(limit)-fdReserve-1)/(int(limit)-fdReserve)+1)
	}
	nloops := cfg.Loops
	if nloops <= 0 {
		nloops = runtime.GOMAXPROCS(0)
	}
	nloops = max(1, min(nloops, w.planned))
	perRate := cfg.ConnectRate / float64(cfg.WorkerCount) / float64(nloops)
	conc := max(1, cfg.Concurrency/cfg.WorkerCount/nloops)
	for i := range nloops {
		l, err := newLoop(w, i, share(mine, i, nloops), conc, perRate)
		if err != nil {
			return nil, err
		}
		w.loops = append(w.loops, l)
	}
	if pub {
		w.loops[0].toOpen++
		w.loops[0].pubPending = true
		w.pubLoop = w.loops[0]
	}
	return w, nil
}

func (w *worker) start() {
	for _, l := range w.loops {
		w.wg.Add(1)
		go l.run()
	}
	if w.hpub != nil {
		w.wg.Add(1)
		go w.hpub.run()
	}
}

func (w *worker) setPhase(p int32) {
	w.phase.Store(p)
	for _, l := range w.loops {
		l.wake()
	}
	if w.hpub != nil {
		w.hpub.poke()
	}
}

// notifyPub tells the publisher, from subscriber loop l, that a publish has
// reached every local subscriber.
func (w *worker) notifyPub(l *loop) {
	if w.pubLoop != nil && w.pubLoop != l {
		w.pubLoop.wake()
	}
	if w.hpub != nil {
		w.hpub.poke()
	}
}

func (w *worker) snapshot() Counters {
	var c Counters
	for _, l := range w.loops {
		c.Add(l.ctr.snapshot())
	}
	if w.hpub != nil {
		c.Add(w.hpub.ctr.snapshot())
	}
	return c
}

// connected reports whether every planned connection is ready (upgraded;
// in /ws mode also subscribed) or gone.
func (w *worker) connected() bool {
	var n int64
	for _, l := range w.loops {
		n += l.ctr.settled.Load()
	}
	return n >= int64(w.planned)
}

// drain waits, after traffic stopped, until every echo is answered (or every
// ping), or nothing has arrived for 300 ms, at most 3 s.
func (w *worker) drain() {
	deadline := time.Now().Add(3 * time.Second)
	last := w.snapshot()
	quiet := time.Now()
	for time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		s := w.snapshot()
		switch w.cfg.Scenario {
		case ScenarioEcho:
			if s.Recv >= s.Sent {
				return
			}
		case ScenarioIdle:
			if s.Pongs >= s.Pings {
				return
			}
		case ScenarioConnect, ScenarioStorm:
			return
		}
		if s.Deliveries != last.Deliveries || s.Pongs != last.Pongs {
			quiet = time.Now()
		}
		if time.Since(quiet) > 300*time.Millisecond {
			return
		}
		last = s
	}
}

// close ends every connection and waits for the loops to exit.
func (w *worker) close() {
	w.setPhase(phClose)
	if w.hpub != nil {
		w.hpub.cancel()
	}
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(closeGrace + 5*time.Second):
	}
}

// drive runs the worker through its phases on commands from the
// coordinator ("start", "measure", "stop"), calls ready once every
// connection is up or failed, and returns the result when stopped. It
// returns an error when cmds closes or ctx ends first, or the run's own
// timeout passes.
func (w *worker) drive(ctx context.Context, cmds <-chan string, ready func()) (*workerResult, error) {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	w.start()
	res := &workerResult{Index: w.cfg.WorkerIndex}
	t0 := time.Now()
	for !w.connected() {
		select {
		case <-ctx.Done():
			w.close()
			return nil, fmt.Errorf("worker %d: still connecting when the run's time ran out (%v)", w.cfg.WorkerIndex, w.cfg.Timeout)
		case <-time.After(10 * time.Millisecond):
		}
	}
	res.ConnectNs = int64(time.Since(t0))
	ready()
	var m0 Counters
	var tm0 time.Time
	for {
		var cmd string
		var ok bool
		select {
		case <-ctx.Done():
			w.close()
			return nil, errors.New("run aborted: " + context.Cause(ctx).Error())
		case cmd, ok = <-cmds:
		}
		if !ok {
			w.close()
			return nil, errors.New("run aborted by the coordinator")
		}
		switch cmd {
		case "start":
			if w.cfg.Scenario == ScenarioBroadcast {
				subs := int32(w.snapshot().Open)
				if w.pubLoop != nil && w.pubLoop.pub != nil && w.pubLoop.pub.state == stOpen {
					subs--
				}
				w.bc.target.Store(max(subs, 1))
				res.Subscribers = int64(subs)
			}
			w.setPhase(phTraffic)
		case "measure":
			m0, tm0 = w.snapshot(), time.Now()
			w.setPhase(phMeasure)
		case "stop":
			if tm0.IsZero() {
				m0, tm0 = w.snapshot(), time.Now()
			}
			m1 := w.snapshot()
			res.WindowNs = int64(time.Since(tm0))
			res.Window = m1.Sub(m0)
			res.OpenAtStop = m1.Open
			w.setPhase(phStop)
			w.drain()
			w.close()
			res.Total = w.snapshot()
			res.Latency, res.Upgrade = NewHist(), NewHist()
			res.Reasons = map[string]uint64{}
			for _, l := range w.loops {
				res.Latency.Merge(l.hist)
				res.Upgrade.Merge(l.up)
				for k, v := range l.reasons {
					res.Reasons[k] += v
				}
				if l.firstStart != 0 && (res.FirstStartNs == 0 || l.firstStart < res.FirstStartNs) {
					res.FirstStartNs = l.firstStart
				}
				res.LastUpNs = max(res.LastUpNs, l.lastUp)
				if l.storm != nil {
					if res.Storm == nil {
						res.Storm = newStormPart()
					}
					res.Storm.merge(l.storm)
				}
				res.mergeNodes(l)
			}
			if w.hpub != nil {
				w.hpub.mu.Lock()
				for k, v := range w.hpub.reasons {
					res.Reasons[k] += v
				}
				w.hpub.mu.Unlock()
			}
			return res, nil
		}
	}
}

// subscriberTarget is the target of the worker's next subscriber: round
// robin over the subscriber URLs, counted across workers (each numbers its
// subscribers from its idBase). Safe from any of the worker's loops.
func (w *worker) subscriberTarget() uint8 {
	if w.spread <= 1 {
		return 0
	}
	i := int64(w.idBase) + w.nextSub.Add(1) - 1
	return uint8(i % int64(w.spread))
}

// mergeNodes adds loop l's per-node counts to r; after l has stopped.
func (r *workerResult) mergeNodes(l *loop) {
	if l.epHist == nil {
		return
	}
	if r.Nodes == nil {
		r.Nodes = make([]nodePart, len(l.epHist))
		for i := range r.Nodes {
			r.Nodes[i].Latency = NewHist()
		}
	}
	for i, h := range l.epHist {
		r.Nodes[i].Latency.Merge(h)
		r.Nodes[i].Subscribers += l.epSubs[i]
	}
}
