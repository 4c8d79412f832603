package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// SuiteServer is one server under test: Cmd is run with "--listen ADDR"
// appended, and must serve /echo and /broadcast.
type SuiteServer struct {
	Name string   `json:"name"`
	Cmd  []string `json:"cmd"`
}

// SuiteStep is one scenario run against every server. Config.URL holds only
// the path; the suite fills in the address. HalfPeakOf names an earlier
// closed-loop echo step: this step then offers half of the first server's
// measured msgs/s from that step, spread over its connections (the same
// offered load for every server).
//
// Servers, when set, limits the step to the servers of those names (the
// /ws steps run only on wsd: the peers have no /ws); ServerArgs are added
// to the server's command for this step (before --listen).
type SuiteStep struct {
	Name       string   `json:"name"`
	Config     Config   `json:"config"`
	HalfPeakOf string   `json:"half_peak_of,omitempty"`
	Servers    []string `json:"servers,omitempty"`
	ServerArgs []string `json:"server_args,omitempty"`
}

// runsOn reports whether the step runs on the server named name.
func (s SuiteStep) runsOn(name string) bool {
	if len(s.Servers) == 0 {
		return true
	}
	for _, n := range s.Servers {
		if n == name {
			return true
		}
	}
	return false
}

// SuiteOptions configures RunSuite.
type SuiteOptions struct {
	Servers  []SuiteServer
	Steps    []SuiteStep
	Listen   string // default 127.0.0.1:18765
	Progress io.Writer
	TTY      bool
	Exe      []string // worker process command, see RunOptions
	Log      io.Writer
}

// SuiteResult is every result of a suite run, with the machine.
type SuiteResult struct {
	Started  time.Time     `json:"started"`
	Machine  Machine       `json:"machine"`
	Servers  []SuiteServer `json:"servers"`
	Steps    []SuiteStep   `json:"steps"`
	Results  []*Result     `json:"results"`
	Failures []string      `json:"failures,omitempty"`
	Command  string        `json:"command,omitempty"`
}

// perProcConns is how many connections the suite gives one client process.
const perProcConns = 10000

// DefaultSuiteSteps are the steps `make bench-peers` runs: idle RSS at
// idleConns (each), echo at echoConns (closed loop, then half the first
// server's peak at a fixed rate), broadcast to bcastConns subscribers and a
// connect-rate run.
func DefaultSuiteSteps(idleConns, echoConns []int, bcastConns, connectConns int, d time.Duration) []SuiteStep {
	var steps []SuiteStep
	steps = append(steps, SuiteStep{Name: fmt.Sprintf("connect-%s", kconns(connectConns)),
		Config: Config{Scenario: ScenarioConnect, URL: "/echo", Conns: connectConns}})
	for _, n := range idleConns {
		steps = append(steps, SuiteStep{Name: "idle-" + kconns(n),
			Config: Config{Scenario: ScenarioIdle, URL: "/echo", Conns: n, Duration: min(d, 5*time.Second), Warmup: 3 * time.Second}})
	}
	for _, n := range echoConns {
		peak := "echo-" + kconns(n)
		steps = append(steps,
			SuiteStep{Name: peak, Config: Config{Scenario: ScenarioEcho, URL: "/echo", Conns: n, Size: 1024, Duration: d}},
			SuiteStep{Name: peak + "-halfpeak", HalfPeakOf: peak, Config: Config{Scenario: ScenarioEcho, URL: "/echo", Conns: n, Size: 1024, Duration: d}})
	}
	if bcastConns > 0 {
		steps = append(steps, SuiteStep{Name: "broadcast-" + kconns(bcastConns),
			Config: Config{Scenario: ScenarioBroadcast, URL: "/broadcast", Conns: bcastConns, Size: 64, Text: true, Pipeline: 8, Duration: d}})
	}
	return steps
}

// WSBroadcastSteps are the /ws broadcast steps of `make bench-peers`, for
// the servers named in servers (those that speak wsd's /ws protocol): conns
// subscribers of one channel, 64-byte JSON data, 8 publishes in flight,
// published over /ws (broadcast-ws-*) and over the HTTP API
// (broadcast-ws-http-*). The server is started with --rate-limit -1 (the
// publisher sends far more than 20 messages/s) and --api-key apiKey.
func WSBroadcastSteps(conns int, servers []string, apiKey string, d time.Duration) []SuiteStep {
	if conns <= 0 || len(servers) == 0 {
		return nil
	}
	args := []string{"--rate-limit", "-1", "--api-key", apiKey}
	base := Config{Scenario: ScenarioBroadcast, URL: "/ws", Mode: ModeWS, Channel: DefaultChannel, Conns: conns, Size: 64, Text: true, Pipeline: 8, Duration: d}
	viaHTTP := base
	viaHTTP.Publish, viaHTTP.APIKey = PublishHTTP, apiKey
	return []SuiteStep{
		{Name: "broadcast-ws-" + kconns(conns), Config: base, Servers: servers, ServerArgs: args},
		{Name: "broadcast-ws-http-" + kconns(conns), Config: viaHTTP, Servers: servers, ServerArgs: args},
	}
}

func kconns(n int) string {
	if n%1000 == 0 {
		return fmt.Sprintf("%dk", n/1000)
	}
	return fmt.Sprint(n)
}

// RunSuite runs every step against every server, each step on a freshly
// started server (so RSS baselines are clean), and collects the results.
// A failing step is recorded and the suite goes on.
func RunSuite(ctx context.Context, opt SuiteOptions) (*SuiteResult, error) {
	if opt.Listen == "" {
		opt.Listen = "127.0.0.1:18765"
	}
	if len(opt.Servers) == 0 {
		return nil, errors.New("suite: no servers")
	}
	logw := opt.Log
	if logw == nil {
		logw = io.Discard
	}
	sr := &SuiteResult{Started: time.Now().UTC(), Machine: DescribeMachine(), Servers: opt.Servers, Steps: opt.Steps}
	peaks := map[string]float64{} // step -> first server's msgs/s
	host, portStr, err := net.SplitHostPort(opt.Listen)
	if err != nil {
		return nil, fmt.Errorf("suite --listen: %w", err)
	}
	basePort, _ := strconv.Atoi(portStr)
	run := 0
	for _, step := range opt.Steps {
		for si, srv := range opt.Servers {
			if ctx.Err() != nil {
				return sr, ctx.Err()
			}
			if !step.runsOn(srv.Name) {
				continue
			}
			// Every run gets its own port: the previous server's TIME_WAIT
			// sockets must not stop a server that binds without SO_REUSEADDR.
			o := opt
			o.Listen = net.JoinHostPort(host, strconv.Itoa(basePort+run%200))
			run++
			cfg := step.Config
			cfg.URL = "ws://" + o.Listen + step.Config.URL
			cfg.Label = srv.Name
			if cfg.Procs == 0 {
				cfg.Procs = (cfg.Conns + perProcConns - 1) / perProcConns
			}
			if step.HalfPeakOf != "" {
				peak, ok := peaks[step.HalfPeakOf]
				if !ok || peak <= 0 {
					sr.Failures = append(sr.Failures, fmt.Sprintf("%s/%s: no peak from %s", step.Name, srv.Name, step.HalfPeakOf))
					continue
				}
				cfg.Rate = peak / 2 / float64(cfg.Conns)
			}
			fmt.Fprintf(logw, "== %s on %s\n", step.Name, srv.Name)
			res, err := runStepOn(ctx, srv, step.ServerArgs, o, cfg)
			if errors.Is(err, errNotListening) {
				// The port may still be held by the previous server: once more.
				fmt.Fprintln(logw, "   retrying:", err)
				time.Sleep(2 * time.Second)
				res, err = runStepOn(ctx, srv, step.ServerArgs, o, cfg)
			}
			if err != nil {
				msg := fmt.Sprintf("%s/%s: %v", step.Name, srv.Name, err)
				fmt.Fprintln(logw, "   FAILED:", err)
				sr.Failures = append(sr.Failures, msg)
				continue
			}
			res.Step = step.Name
			if si == 0 && cfg.Scenario == ScenarioEcho && cfg.Rate == 0 {
				peaks[step.Name] = res.MsgsPerSec
			}
			WriteTable(logw, res)
			sr.Results = append(sr.Results, res)
		}
	}
	return sr, nil
}

func runStepOn(ctx context.Context, srv SuiteServer, extra []string, opt SuiteOptions, cfg Config) (*Result, error) {
	args := append(append(append([]string{}, srv.Cmd[1:]...), extra...), "--listen", opt.Listen)
	cmd := exec.Command(srv.Cmd[0], args...)
	var serr strings.Builder
	cmd.Stdout, cmd.Stderr = io.Discard, &limitedWriter{w: &serr, n: 4096}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", srv.Name, err)
	}
	exited := make(chan struct{}) // closed once the server has exited
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(8 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	if err := waitListening(opt.Listen, 10*time.Second, exited); err != nil {
		if err == errExited {
			err = fmt.Errorf("exited: %v", waitErr)
		}
		return nil, fmt.Errorf("%s: %w: %v; stderr: %s", srv.Name, errNotListening, err, serr.String())
	}
	time.Sleep(300 * time.Millisecond) // let the runtime settle before the RSS baseline
	cfg.ServerPID = cmd.Process.Pid
	return Run(ctx, cfg, RunOptions{Progress: opt.Progress, TTY: opt.TTY, Exe: opt.Exe})
}

var (
	errExited       = errors.New("exited")
	errNotListening = errors.New("server did not start listening")
)

func waitListening(addr string, d time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errExited
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("timeout")
}

type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// keptMarker starts the part of results.md written by hand (measurements
// a suite does not make: kernel memory, budgets, sweeps). WriteSuiteFiles
// carries it over, so that a new run does not erase it.
const keptMarker = "<!-- written by hand below: make bench-peers keeps it -->"

// WriteSuiteFiles writes results.md, results.json and results.html to dir;
// results.md keeps its hand-written part (keptMarker and what follows).
func WriteSuiteFiles(dir string, sr *SuiteResult) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// No API keys in the files, even of a server long gone.
	red := *sr
	red.Steps = make([]SuiteStep, len(sr.Steps))
	for i, st := range sr.Steps {
		if st.Config.APIKey != "" {
			st.Config.APIKey = "KEY"
		}
		st.ServerArgs = redactArgs(st.ServerArgs)
		red.Steps[i] = st
	}
	sr = &red
	if err := WriteJSON(dir+"/results.json", sr); err != nil {
		return err
	}
	var kept []byte
	if old, err := os.ReadFile(dir + "/results.md"); err == nil {
		if i := bytes.Index(old, []byte(keptMarker)); i >= 0 {
			kept = old[i:]
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.Create(dir + "/results.md")
	if err != nil {
		return err
	}
	WriteSuiteMarkdown(f, sr)
	if len(kept) > 0 {
		_, _ = fmt.Fprintf(f, "\n%s", kept)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return WriteHTMLFile(dir+"/results.html", Report{
		Title: "wsd and its peers, side by side", Generated: time.Now().UTC(), Machine: sr.Machine, Results: sr.Results,
		Notes: []string{"Every step ran on a freshly started server; results.md has the ratio table and the commands."},
	})
}
