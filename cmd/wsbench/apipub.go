package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/wsdhq/wsd/bench"
)

// runAPIPub is "wsbench apipub": the HTTP API's publish rate over
// keep-alive connections.
func runAPIPub(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("apipub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c bench.APIPubConfig
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080/api/publish", "the publish endpoint (loopback)")
	fs.StringVar(&c.Key, "api-key", "", "wsd's API key")
	fs.StringVar(&c.Channel, "channel", "bench", "channel to publish to; with --channels a pattern naming them, e.g. feed:%d")
	fs.IntVar(&c.Channels, "channels", 0, "spread the publishes over this many channels, 0..N-1 of the --channel pattern (0: one channel)")
	pick := fs.String("pick", "rr", "with --channels: rr (round robin over all connections together) or random (per request)")
	fs.IntVar(&c.CPUPID, "cpu-pid", 0, "report this process's CPU time (user+system, /proc/PID/stat) over the run and per publish")
	fs.IntVar(&c.Size, "size", 64, "data bytes per publication")
	fs.IntVar(&c.Conns, "conns", 1, "keep-alive connections, each one request at a time")
	fs.DurationVar(&c.Duration, "duration", 5*time.Second, "how long to publish")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("apipub: unexpected argument %q", fs.Arg(0))
	}
	switch *pick {
	case "rr":
	case "random":
		c.Random = true
	default:
		return fmt.Errorf("apipub: --pick %q: want rr or random", *pick)
	}
	r, err := bench.RunAPIPub(context.Background(), c)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "conns %d  ok %d  failed %d  reconnects %d  %.0f publishes/s  p50 %v  p99 %v\n",
		c.Conns, r.OK, r.Failed, r.Reconnects, r.PerSecond(), r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond))
	if c.CPUPID > 0 {
		fmt.Fprintf(stdout, "cpu pid %d  %.2f s  %.2f cores  %.1f µs per publish\n",
			c.CPUPID, r.CPUSeconds, r.CPUSeconds/r.Elapsed.Seconds(), float64(r.CPUPerPublish())/float64(time.Microsecond))
	}
	if r.FirstError != "" {
		fmt.Fprintf(stdout, "first error: %s\n", r.FirstError)
	}
	return nil
}
