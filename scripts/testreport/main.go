// Command testreport turns `go test -json` into what make test prints, and
// lists the tests that were skipped, so that a run cannot pass quietly
// without running what it claims to.
//
//	go test -json ./... | testreport filter LOG.json
//
// copies the JSON stream to LOG.json and prints what plain `go test` would:
// a line per package, and the full output of every failed test (also of
// tests a panic or timeout cut short); unlike plain go test it also prints
// the output of every skipped test, with its reason. It exits 1 when the
// stream reports a failure.
//
//	testreport summary [-ci] [-min-passed N] LOG.json...
//
// counts the tests of those runs and lists the skipped ones by package and
// name, or says "skipped tests: none". With -ci a skipped test is a failure
// (exit 1): under CI=true nothing may be skipped. With -min-passed, fewer
// than N passed tests (subtests count) is a failure.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "filter":
		if len(os.Args) != 3 {
			usage()
		}
		err = filterToFile(os.Stdin, os.Stdout, os.Args[2])
	case "summary":
		fs := flag.NewFlagSet("summary", flag.ExitOnError)
		ci := fs.Bool("ci", false, "a skipped test is a failure")
		minPassed := fs.Int("min-passed", 0, "fewer passed tests is a failure")
		_ = fs.Parse(os.Args[2:])
		err = summarizeFiles(os.Stdout, fs.Args(), *ci, *minPassed)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testreport:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go test -json ... | testreport filter LOG.json\n       testreport summary [-ci] [-min-passed N] LOG.json...")
	os.Exit(2)
}

// event is one line of `go test -json` (cmd/test2json).
type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

// errFailed reports a failure seen in the stream; the details were printed.
var errFailed = errors.New("the tests reported a failure (output above)")

func filterToFile(in io.Reader, out io.Writer, logPath string) error {
	log, err := os.Create(logPath)
	if err != nil {
		return err
	}
	ferr := filter(io.TeeReader(in, log), out)
	if err := log.Close(); err != nil && ferr == nil {
		ferr = err
	}
	return ferr
}

// filter prints the human form of a go test -json stream read from in.
func filter(in io.Reader, out io.Writer) error {
	p := &printer{out: out, bufs: map[key][]string{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		p.line(sc.Bytes())
	}
	p.flushAll()
	if err := sc.Err(); err != nil {
		return err
	}
	if p.failed {
		return errFailed
	}
	return nil
}

type key struct{ pkg, test string }

// printer holds each test's output until the test ends: passing tests are
// quiet, failed and skipped ones are printed whole.
type printer struct {
	out    io.Writer
	bufs   map[key][]string
	order  []key // first output of each buffered test, to print in order
	failed bool
}

func (p *printer) line(b []byte) {
	var e event
	if len(b) == 0 || b[0] != '{' || json.Unmarshal(b, &e) != nil {
		fmt.Fprintf(p.out, "%s\n", b) // not test2json: pass it through
		return
	}
	k := key{e.Package, e.Test}
	switch e.Action {
	case "output":
		if _, ok := p.bufs[k]; !ok {
			p.order = append(p.order, k)
		}
		p.bufs[k] = append(p.bufs[k], e.Output)
	case "build-output":
		io.WriteString(p.out, e.Output)
	case "build-fail":
		p.failed = true
	case "pass", "skip", "fail":
		if e.Action == "fail" {
			p.failed = true
		}
		if e.Test != "" {
			p.endTest(k, e.Action)
		} else {
			p.endPackage(e.Package, e.Action)
		}
	}
}

func (p *printer) endTest(k key, action string) {
	if action != "pass" {
		p.print(k)
	}
	p.drop(k)
}

// endPackage prints what is left of a package: on failure the output of
// tests that never ended (a panic or a timeout stops them all), and the
// package's own lines ("ok", "FAIL", a TestMain's messages).
func (p *printer) endPackage(pkg, action string) {
	for _, k := range slices.Clone(p.order) {
		if k.pkg != pkg || k.test == "" {
			continue
		}
		if action == "fail" {
			p.print(k)
		}
		p.drop(k)
	}
	k := key{pkg, ""}
	for _, l := range p.bufs[k] {
		if action == "fail" || (l != "PASS\n" && !strings.HasPrefix(l, "testing: warning: no tests to run")) {
			io.WriteString(p.out, l)
		}
	}
	p.drop(k)
}

// flushAll prints whatever never ended: go test itself was cut short.
func (p *printer) flushAll() {
	for _, k := range slices.Clone(p.order) {
		p.print(k)
		p.drop(k)
	}
}

func (p *printer) print(k key) {
	for _, l := range p.bufs[k] {
		io.WriteString(p.out, l)
	}
}

func (p *printer) drop(k key) {
	if _, ok := p.bufs[k]; !ok {
		return
	}
	delete(p.bufs, k)
	p.order = slices.DeleteFunc(p.order, func(o key) bool { return o == k })
}

// ---- summary ----

// result is what happened to the tests of one or more runs.
type result struct {
	passed, failed int
	skipped        []skip
}

type skip struct{ pkg, test, reason string }

// logLine is how testing prints t.Log, t.Skip and friends: "    file.go:12: msg".
var logLine = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)

func summarizeFiles(out io.Writer, paths []string, ci bool, minPassed int) error {
	if len(paths) == 0 {
		return errors.New("summary: no log files")
	}
	var r result
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		err = r.add(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	if err := r.print(out, ci); err != nil {
		return err
	}
	if r.passed < minPassed {
		return fmt.Errorf("%d test(s) passed, want at least %d", r.passed, minPassed)
	}
	return nil
}

// add reads one go test -json log.
func (r *result) add(in io.Reader) error {
	lastLog := map[key]string{} // the reason of a skip is its last log line
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Test == "" {
			continue // non-JSON lines and package events: not a test's fate
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			if m := logLine.FindStringSubmatch(strings.TrimRight(e.Output, "\n")); m != nil {
				lastLog[k] = m[1]
			}
		case "pass":
			r.passed++
		case "fail":
			r.failed++
		case "skip":
			r.skipped = append(r.skipped, skip{e.Package, e.Test, lastLog[k]})
		}
	}
	return sc.Err()
}

func (r *result) print(out io.Writer, ci bool) error {
	fmt.Fprintf(out, "tests: %d passed, %d failed, %d skipped\n", r.passed, r.failed, len(r.skipped))
	if len(r.skipped) == 0 {
		fmt.Fprintln(out, "skipped tests: none")
		return nil
	}
	fmt.Fprintf(out, "skipped tests (%d):\n", len(r.skipped))
	for _, s := range r.skipped {
		reason := s.reason
		if len(reason) > 200 {
			reason = reason[:200] + "..."
		}
		fmt.Fprintf(out, "  %s %s: %s\n", s.pkg, s.test, reason)
	}
	if ci {
		return fmt.Errorf("CI=true and %d test(s) skipped: a CI run must run every test", len(r.skipped))
	}
	return nil
}
