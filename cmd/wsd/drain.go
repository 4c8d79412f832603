package main

import (
	"flag"
	"fmt"
	"strconv"
	"time"

	"github.com/wsdhq/wsd/server"
)

// pacing holds the flags that pace reconnects: how a stopping node spreads
// its clients' return (--drain-spread) and how fast a node takes upgrades
// (--max-accept-rate). docs/protocol.md describes what clients see.
type pacing struct {
	drainSpread   nonNegDuration
	maxAcceptRate nonNegFloat
}

func (p *pacing) addFlags(fs *flag.FlagSet) {
	fs.Var(&p.drainSpread, "drain-spread", "on SIGTERM/SIGINT, close every connection with 1012 and a retry hint drawn per client from [0, this), so clients come back spread over it (0 = 1001 to all, no hint)")
	fs.Var(&p.maxAcceptRate, "max-accept-rate", "most upgrades and /sse streams per second, in bursts of one second's worth (0 = no limit); excess gets 503 with a Retry-After that spreads the refused clients at this rate")
}

// apply sets the server options the flags stand for.
func (p *pacing) apply(o *server.Options) {
	o.DrainSpread = time.Duration(p.drainSpread)
	o.MaxAcceptRate = float64(p.maxAcceptRate)
}

// nonNegDuration is a duration flag that refuses negative values, so a
// typo stops wsd (exit 2) instead of silently turning pacing off.
type nonNegDuration time.Duration

func (d *nonNegDuration) String() string { return time.Duration(*d).String() }

func (d *nonNegDuration) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if v < 0 {
		return fmt.Errorf("%v is negative", v)
	}
	*d = nonNegDuration(v)
	return nil
}

// nonNegFloat is a float flag that refuses negative and non-finite values.
type nonNegFloat float64

func (f *nonNegFloat) String() string { return strconv.FormatFloat(float64(*f), 'g', -1, 64) }

func (f *nonNegFloat) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return err
	}
	if v < 0 || v != v || v > 1e9 {
		return fmt.Errorf("%v is not a rate between 0 and 1e9", v)
	}
	*f = nonNegFloat(v)
	return nil
}
