package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/wsdhq/wsd/bench"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" || f == "0" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("%q: %v", s, err)
		}
		out = append(out, n)
	}
	return out, nil
}

func runSuite(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("wsbench suite", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var servers listFlag
	var out, listen, idle, echo, only, sourceIPs, wsServers string
	var bcast, wsBcast, connect int
	var d time.Duration
	var quiet bool
	fs.Var(&servers, "server", "name=command (repeatable; the first is the reference for ratios); the command gets --listen ADDR")
	fs.StringVar(&out, "out", "docs/bench", "directory for results.md, results.json and results.html")
	fs.StringVar(&listen, "listen", "127.0.0.1:18765", "address every server listens on, in turn")
	fs.DurationVar(&d, "duration", 8*time.Second, "measured window of each echo and broadcast step (idle holds min(duration, 5s))")
	fs.StringVar(&idle, "idle-conns", "10000,19000", "idle steps: connection counts (0 to skip)")
	fs.StringVar(&echo, "echo-conns", "1000,10000", "echo steps: connection counts, each closed loop then at half the first server's peak")
	fs.IntVar(&bcast, "broadcast-conns", 10000, "broadcast subscribers (0 to skip)")
	fs.IntVar(&wsBcast, "ws-broadcast-conns", 10000, "broadcast-ws steps (wsd's /ws protocol, publish over /ws and over HTTP): subscribers (0 to skip)")
	fs.StringVar(&wsServers, "ws-servers", "wsd", "names of the --server entries that speak wsd's /ws protocol: only they run the broadcast-ws steps (comma-separated)")
	fs.IntVar(&connect, "connect-conns", 10000, "connect step: connections (0 to skip)")
	fs.StringVar(&only, "steps", "", "run only steps whose names start with one of these (comma-separated)")
	fs.StringVar(&sourceIPs, "source-ips", "127.0.0.2-127.0.0.60", "client source addresses")
	fs.BoolVar(&quiet, "quiet", false, "no progress line")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(servers) == 0 {
		return errors.New("suite: give at least one --server name=command")
	}
	var opt bench.SuiteOptions
	for _, s := range servers {
		name, cmd, err := splitServer(s)
		if err != nil {
			return err
		}
		opt.Servers = append(opt.Servers, bench.SuiteServer{Name: name, Cmd: cmd})
	}
	idleN, err := parseInts(idle)
	if err != nil {
		return err
	}
	echoN, err := parseInts(echo)
	if err != nil {
		return err
	}
	ips, err := bench.ParseSourceIPs(sourceIPs, false)
	if err != nil {
		return err
	}
	steps := bench.DefaultSuiteSteps(idleN, echoN, bcast, connect, d)
	if connect == 0 {
		steps = steps[1:]
	}
	var wsNames []string
	for _, n := range strings.Split(wsServers, ",") {
		n = strings.TrimSpace(n)
		for _, s := range opt.Servers {
			if n != "" && s.Name == n {
				wsNames = append(wsNames, n)
			}
		}
	}
	var key [12]byte
	_, _ = rand.Read(key[:])
	steps = append(steps, bench.WSBroadcastSteps(wsBcast, wsNames, hex.EncodeToString(key[:]), d)...)
	var kept []bench.SuiteStep
	for _, s := range steps {
		for _, ip := range ips {
			s.Config.SourceIPs = append(s.Config.SourceIPs, ip.String())
		}
		if only == "" || hasPrefixAny(s.Name, strings.Split(only, ",")) {
			kept = append(kept, s)
		}
	}
	opt.Steps, opt.Listen, opt.Log = kept, listen, stdout
	if !quiet {
		opt.Progress, opt.TTY = stderr, isTTY(os.Stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	sr, err := bench.RunSuite(ctx, opt)
	if sr == nil {
		return err
	}
	sr.Command = "wsbench suite " + strings.Join(args, " ")
	if werr := bench.WriteSuiteFiles(out, sr); werr != nil {
		return werr
	}
	fmt.Fprintf(stdout, "suite done in %v: %s/results.md, results.json, results.html (%d results, %d failures)\n",
		time.Since(start).Round(time.Second), out, len(sr.Results), len(sr.Failures))
	return err
}

func hasPrefixAny(s string, ps []string) bool {
	for _, p := range ps {
		if p = strings.TrimSpace(p); p != "" && strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}
