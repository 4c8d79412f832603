// Package interop drives the wsd daemon binary with WebSocket clients that
// nobody on this project wrote: gorilla/websocket and coder/websocket in Go,
// Python's websockets and Node's ws. It does not import the main module; it
// builds cmd/wsd once, runs it on a free loopback port and talks to /echo.
//
// Environment:
//
//	WSD_BIN     use this prebuilt daemon instead of building ../../cmd/wsd
//	WSD_PYTHON  python interpreter that has the websockets package
//	WSD_NODE    node binary (default: node on PATH)
package interop

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// daemon is the wsd process shared by every test in this package, and
// daemonBin the binary it runs (tests that need a daemon of their own start
// it). Both are set by TestMain before any test runs and never reassigned.
var (
	daemon    *wsdProcess
	daemonBin string
)

// suite wraps testing.M so that goleak checks for leaks after the daemon has
// been stopped and its helper goroutines have finished.
type suite struct{ m *testing.M }

func (s suite) Run() int {
	bin, cleanup, err := daemonBinary()
	if err != nil {
		loud("cannot build the wsd daemon, no interop test can run", err)
		return 1
	}
	defer cleanup()
	daemonBin = bin

	d, err := startDaemon(bin)
	if err != nil {
		loud("cannot start the wsd daemon", err)
		return 1
	}
	daemon = d

	code := s.m.Run()

	if err := d.stop(); err != nil {
		loud("wsd daemon did not stop cleanly", err)
		code = 1
	}
	if race := d.raceReport(); race != "" {
		loud("the wsd daemon (built with -race) reported a DATA RACE", fmt.Errorf("%s", race))
		code = 1
	}
	if code != 0 {
		fmt.Fprintf(os.Stderr, "---- last lines of the wsd daemon log (%s) ----\n%s\n---- end of wsd log ----\n",
			d.logPath, d.logTail(60))
	} else {
		d.removeLog()
	}
	return code
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(suite{m})
}

func loud(what string, err error) {
	fmt.Fprintf(os.Stderr, "\n"+
		"##################################################################\n"+
		"## INTEROP: %s\n"+
		"## %v\n"+
		"##################################################################\n\n", what, err)
}
