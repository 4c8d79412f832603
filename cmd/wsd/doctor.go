package main

// wsd doctor: how many connections this box lets wsd hold now, what limits
// it, and the exact lines to change to hold more. Every file is read through
// an fs.FS rooted at "/" (or at a fake tree in tests), so nothing here needs
// the real /proc or /sys.

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/wsdhq/wsd/poller"
)

// The per-connection cost model.
const (
	// userBytesPerConn is wsd's own RSS per idle connection: 840 B at 10k
	// idle connections (761 B at 19k), measured with `wsbench idle
	// --server-pid` (README "Numbers", docs/bench/results.md idle-10k). The
	// larger of the two: fewer connections amortise the fixed part less.
	userBytesPerConn = 840
	// kernelBytesPerConn is the kernel's memory per idle TCP socket,
	// measured with `wsbench idle` at 10k and 19k connections (tuning.md §3,
	// docs/bench/results.md "Kernel memory per connection"): 1,500 B charged
	// to wsd's memory cgroup (inode, file, dentry, epoll item, LSM blobs)
	// plus the 2,368 B TCP socket object (2,521 B of slab as packed), which
	// the accepting cgroup is not charged for: 4,021 B; a client's socket,
	// all charged to its cgroup, 4,147 B. Rounded to 4 KiB. An idle socket
	// holds no buffer pages at any tcp_rmem/tcp_wmem (ss -m: 0 on all).
	kernelBytesPerConn = 4 << 10
	// queuedPagesPerConn is what tcp_mem is charged per connection when
	// every connection has a frame queued (a broadcast to everyone): an idle
	// socket holds no buffer pages, but socket memory is charged in whole
	// pages, so one queued frame costs at least one.
	queuedPagesPerConn = 1

	// Memory kept apart from connections: the Go runtime and GC, handshake
	// garbage after a reconnect storm, the rest of the process.
	memHeadroomShare = 10 // 1/10 of the budget ...
	memHeadroomMin   = 64 << 20

	// backlogTarget is what tuning.md recommends for somaxconn and
	// tcp_max_syn_backlog: they do not cap held connections, only how
	// fast a reconnect storm is accepted.
	backlogTarget = 65535

	// maxWant is the most --conns takes: poller.DefaultMaxConns never
	// allows more than 2^30.
	maxWant = 1 << 30
)

// doctorEnv is what doctor reads: the file tree, RLIMIT_NOFILE, the page
// size and the default number of event loops. Tests fake all four.
type doctorEnv struct {
	fsys     fs.FS
	rlimit   func() (soft, hard uint64, err error)
	pageSize int64
	loops    int
}

// hostEnv is this machine as wsd would see it.
func hostEnv() doctorEnv {
	return doctorEnv{
		fsys: os.DirFS("/"),
		rlimit: func() (uint64, uint64, error) {
			var r syscall.Rlimit
			err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r)
			return uint64(r.Cur), uint64(r.Max), err
		},
		pageSize: int64(os.Getpagesize()),
		loops:    runtime.GOMAXPROCS(0),
	}
}

// unknownConns marks a row that caps nothing: the value could not be read,
// or the setting limits something other than held connections.
const unknownConns = -1

// check is one row of doctor's table.
type check struct {
	name, value string
	conns       int64  // connections this limit allows, or unknownConns
	note        string // why conns is unknownConns, or how it was counted
	// fix returns the lines that let n connections through this limit; it
	// is called only when conns is known and below n (or always for an
	// advisory row).
	fix      func(n int64) []fixLine
	advisory bool // not a cap on held connections: never decides the exit status
}

// Where a fixLine goes.
const (
	inSysctl  = "sysctl"  // /etc/sysctl.d/60-wsd.conf
	inSystemd = "systemd" // the [Service] section of a systemd override
	inNote    = "note"    // no single line: what to do instead
)

type fixLine struct{ where, line string }

// doctor is `wsd doctor`: 0 when --conns fits (or is not given), 1 when it
// does not, 2 for a bad flag.
func doctor(args []string, stdout, stderr io.Writer, env doctorEnv) int {
	fset := flag.NewFlagSet("wsd doctor", flag.ContinueOnError)
	fset.SetOutput(stderr)
	want := fset.Int64("conns", 0, "connections wanted: print what to change to reach them and exit 1 when this box cannot hold them now")
	loops := fset.Int("loops", 0, "event loops wsd will run (0 = one per core, as wsd)")
	root := fset.String("root", "", "read /proc and /sys under this `directory` instead of / (testing)")
	fset.Usage = func() {
		fmt.Fprint(stderr, "Usage: wsd doctor [--conns N]\n\nPrints the most connections this box lets wsd hold now, what limits it, and\nthe lines to change to hold N. Exit status 1 when N is out of reach.\n\nFlags:\n")
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fset.NArg() > 0 || *want < 0 || *want > maxWant || *loops < 0 {
		fmt.Fprintf(stderr, "wsd doctor: usage: wsd doctor [--conns N] [--loops N], 0 ≤ N ≤ %d\n", maxWant)
		return 2
	}
	if *root != "" {
		env.fsys = os.DirFS(*root)
	}
	if *loops > 0 {
		env.loops = *loops
	}
	checks := gather(env)
	capacity, limiting := capacityOf(checks)
	printTable(stdout, checks, limiting)
	fmt.Fprintf(stdout, "\nper connection: %d B wsd + %d B kernel (both measured) = %d B of memory,\n"+
		"  %d page of tcp_mem with a frame queued, 1 descriptor (wsd keeps a reserve for its %d event loops and the rest)\n",
		userBytesPerConn, kernelBytesPerConn, userBytesPerConn+kernelBytesPerConn, queuedPagesPerConn, max(env.loops, 1))
	if limiting < 0 {
		fmt.Fprintln(stdout, "most connections now: unknown (no limit could be read)")
	} else {
		fmt.Fprintf(stdout, "most connections now: %s (limited by %s)\n", commas(capacity), checks[limiting].name)
	}
	if *want == 0 {
		return 0
	}
	reachable := limiting >= 0 && capacity >= *want
	fixes := fixesFor(checks, *want)
	switch {
	case reachable && len(fixes) == 0:
		fmt.Fprintf(stdout, "--conns %s: within reach\n", commas(*want))
	case reachable:
		fmt.Fprintf(stdout, "--conns %s: within reach; recommended:\n", commas(*want))
	default:
		fmt.Fprintf(stdout, "--conns %s: OUT OF REACH; change:\n", commas(*want))
	}
	printFixes(stdout, fixes)
	if !reachable {
		return 1
	}
	return 0
}

// capacityOf is the smallest cap and its row; -1 when no cap is known.
func capacityOf(checks []check) (int64, int) {
	capacity, limiting := int64(0), -1
	for i, c := range checks {
		if c.advisory || c.conns == unknownConns {
			continue
		}
		if limiting < 0 || c.conns < capacity {
			capacity, limiting = c.conns, i
		}
	}
	return capacity, limiting
}

// fixesFor collects the lines every known cap below n needs, and the
// advisory rows' recommendations.
func fixesFor(checks []check, n int64) []fixLine {
	var out []fixLine
	for _, c := range checks {
		if c.fix == nil || (!c.advisory && (c.conns == unknownConns || c.conns >= n)) {
			continue
		}
		out = append(out, c.fix(n)...)
	}
	return out
}

func printTable(w io.Writer, checks []check, limiting int) {
	var buf strings.Builder
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "limit\tvalue\tconnections\t")
	for i, c := range checks {
		conns := "—"
		if c.conns != unknownConns {
			conns = commas(c.conns)
		}
		if i == limiting {
			conns += " ← limits"
		}
		note := ""
		if c.note != "" {
			note = "(" + c.note + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.name, c.value, conns, note)
	}
	_ = tw.Flush()
	for _, line := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
}

func printFixes(w io.Writer, fixes []fixLine) {
	groups := []struct{ where, title string }{
		{inSysctl, "/etc/sysctl.d/60-wsd.conf (then: sysctl --system)"},
		{inSystemd, "systemctl edit wsd (then: systemctl restart wsd):\n  [Service]"},
		{inNote, "also"},
	}
	for _, g := range groups {
		var lines []string
		for _, f := range fixes {
			if f.where == g.where {
				lines = append(lines, f.line)
			}
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s\n", g.title)
		for _, l := range lines {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
}

// gather reads every limit. A file that is missing or unreadable makes its
// row "unknown": a container may hide any of them.
func gather(env doctorEnv) []check {
	loops := max(env.loops, 1)
	var out []check
	out = append(out, fdChecks(env, loops)...)
	out = append(out, memoryChecks(env)...)
	out = append(out, tcpMemCheck(env), conntrackCheck(env))
	out = append(out, backlogCheck(env, "net.core.somaxconn", "proc/sys/net/core/somaxconn"),
		backlogCheck(env, "net.ipv4.tcp_max_syn_backlog", "proc/sys/net/ipv4/tcp_max_syn_backlog"),
		portRangeCheck(env), pidsCheck(env))
	return out
}

// fdsFor is the smallest descriptor limit under which wsd (with loops
// event loops) defaults to at least n connections, rounded up to 1024.
func fdsFor(n int64, loops int) uint64 {
	lo, hi := uint64(1), uint64(2*n)+1<<16
	for lo < hi { // poller.DefaultMaxConns is monotone in the limit
		mid := lo + (hi-lo)/2
		if int64(poller.DefaultMaxConns(mid, loops)) >= n {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return roundUp(lo, 1024)
}

func roundUp(v, to uint64) uint64 { return (v + to - 1) / to * to }

// fdChecks: one descriptor per connection. wsd raises its soft limit to the
// hard one and keeps a reserve (poller.DefaultMaxConns); the hard limit
// cannot exceed fs.nr_open, and every process shares fs.file-max.
func fdChecks(env doctorEnv, loops int) []check {
	conns := func(limit int64) int64 { return int64(poller.DefaultMaxConns(uint64(limit), loops)) }
	hard := check{name: "RLIMIT_NOFILE (hard)", value: "unknown", conns: unknownConns}
	if env.rlimit != nil {
		soft, h, err := env.rlimit()
		if err == nil {
			hard.value = fmt.Sprintf("%d (soft %d: wsd raises it)", h, soft)
			hard.conns = conns(int64(min(h, 1<<40)))
			hard.note = "minus wsd's reserve"
		}
	}
	hard.fix = func(n int64) []fixLine {
		l := fdsFor(n, loops)
		return []fixLine{{inSystemd, fmt.Sprintf("LimitNOFILE=%d", l)},
			{inNote, fmt.Sprintf("outside systemd: ulimit -n %d (as root) before starting wsd", l)}}
	}
	sysctlFD := func(name, file string) check {
		c := check{name: name, value: "unknown", conns: unknownConns}
		if v, ok := readInt(env.fsys, file); ok {
			c.value, c.conns = strconv.FormatInt(v, 10), conns(v)
		}
		c.fix = func(n int64) []fixLine {
			return []fixLine{{inSysctl, fmt.Sprintf("%s = %d", name, fdsFor(n, loops))}}
		}
		return c
	}
	fileMax := sysctlFD("fs.file-max", "proc/sys/fs/file-max")
	if fileMax.conns != unknownConns {
		fileMax.note = "shared by every process"
	}
	return []check{hard, sysctlFD("fs.nr_open", "proc/sys/fs/nr_open"), fileMax}
}

// memConns is how many connections bytes of memory hold after headroom.
func memConns(bytes int64) int64 {
	usable := bytes - max(bytes/memHeadroomShare, memHeadroomMin)
	return max(usable, 0) / (userBytesPerConn + kernelBytesPerConn)
}

// memFor is the memory budget memConns needs for n connections.
func memFor(n int64) int64 {
	need := n * (userBytesPerConn + kernelBytesPerConn)
	return max(need+need/(memHeadroomShare-1)+1, need+memHeadroomMin)
}

func memoryChecks(env doctorEnv) []check {
	avail := check{name: "MemAvailable", value: "unknown", conns: unknownConns}
	if v, ok := readMeminfo(env.fsys, "MemAvailable"); ok {
		avail.value, avail.conns = bytesString(v), memConns(v)
		if total, ok := readMeminfo(env.fsys, "MemTotal"); ok {
			avail.value += " of " + bytesString(total)
		}
		avail.note = "minus 10% headroom"
	}
	avail.fix = func(n int64) []fixLine {
		return []fixLine{{inNote, fmt.Sprintf("%s connections need %s of available memory: a bigger box, or fewer other processes on it",
			commas(n), bytesString(memFor(n)))}}
	}
	cg := check{name: "cgroup memory limit", value: "none", conns: unknownConns}
	switch v, file, err := cgroupLimit(env.fsys, "memory", "memory.max", "memory.limit_in_bytes"); {
	case err != nil:
		cg.value = "unknown"
	case file != "":
		cg.value, cg.conns, cg.note = bytesString(v), memConns(v), file
	}
	cg.fix = func(n int64) []fixLine {
		return []fixLine{{inSystemd, fmt.Sprintf("MemoryMax=%d", memFor(n))}}
	}
	return []check{avail, cg}
}

func tcpMemCheck(env doctorEnv) check {
	c := check{name: "net.ipv4.tcp_mem (high)", value: "unknown", conns: unknownConns}
	v, ok := readInts(env.fsys, "proc/sys/net/ipv4/tcp_mem")
	if ok && len(v) == 3 {
		c.value = fmt.Sprintf("%d pages = %s", v[2], bytesString(v[2]*env.pageSize))
		c.conns = v[2] / queuedPagesPerConn
		c.note = "a frame queued on every connection"
	}
	c.fix = func(n int64) []fixLine {
		high := int64(roundUp(uint64(n*queuedPagesPerConn), 1024))
		return []fixLine{{inSysctl, fmt.Sprintf("net.ipv4.tcp_mem = %d %d %d", high/2, high/4*3, high)}}
	}
	return c
}

// conntrackCheck: with conntrack loaded every connection is an entry, and
// past the maximum new connections are dropped silently.
func conntrackCheck(env doctorEnv) check {
	c := check{name: "net.netfilter.nf_conntrack_max", value: "not loaded", conns: unknownConns}
	if v, ok := readInt(env.fsys, "proc/sys/net/netfilter/nf_conntrack_max"); ok {
		c.value, c.conns, c.note = strconv.FormatInt(v, 10), v, "every flow on the box"
	}
	c.fix = func(n int64) []fixLine {
		return []fixLine{{inSysctl, fmt.Sprintf("net.netfilter.nf_conntrack_max = %d", roundUp(uint64(n), 1024))},
			{inNote, "or exempt wsd's port from conntrack: nft add rule inet raw prerouting tcp dport PORT notrack"}}
	}
	return c
}

// backlogCheck: accept queues cap how fast a reconnect storm gets in, not
// how many connections stay.
func backlogCheck(env doctorEnv, name, file string) check {
	c := check{name: name, value: "unknown", conns: unknownConns, advisory: true, note: "reconnect bursts, not a cap"}
	v, ok := readInt(env.fsys, file)
	if ok {
		c.value = strconv.FormatInt(v, 10)
	}
	c.fix = func(n int64) []fixLine {
		if !ok || v >= min(n, backlogTarget) {
			return nil
		}
		return []fixLine{{inSysctl, fmt.Sprintf("%s = %d   # reconnect bursts; not a cap on held connections", name, backlogTarget)}}
	}
	return c
}

// portRangeCheck: a server uses one port; clients and proxies (wsbench,
// nginx towards wsd) need one per connection per destination address.
func portRangeCheck(env doctorEnv) check {
	c := check{name: "net.ipv4.ip_local_port_range", value: "unknown", conns: unknownConns, advisory: true}
	if v, ok := readInts(env.fsys, "proc/sys/net/ipv4/ip_local_port_range"); ok && len(v) == 2 {
		c.value = fmt.Sprintf("%d %d", v[0], v[1])
		c.note = fmt.Sprintf("clients and proxies only: %s per destination ip:port", commas(v[1]-v[0]+1))
	}
	return c
}

// pidsCheck: wsd runs a few threads, not one per connection; shown because
// a tiny pids.max stops the Go runtime, not because it caps connections.
func pidsCheck(env doctorEnv) check {
	c := check{name: "cgroup pids limit", value: "none", conns: unknownConns, advisory: true, note: "threads, not connections"}
	switch v, file, err := cgroupLimit(env.fsys, "pids", "pids.max", "pids.max"); {
	case err != nil:
		c.value = "unknown"
	case file != "":
		c.value, c.note = strconv.FormatInt(v, 10), file+"; threads, not connections"
	}
	return c
}

// cgroupLimit is the smallest limit set on the process's cgroup or any of
// its parents (a parent's limit binds its children), v2 first then v1, and
// the file it came from ("" when none is set). The error is the one
// reading /proc/self/cgroup.
func cgroupLimit(fsys fs.FS, controller, v2file, v1file string) (limit int64, file string, err error) {
	data, err := fs.ReadFile(fsys, "proc/self/cgroup")
	if err != nil {
		return 0, "", err
	}
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var base, name string
		switch {
		case parts[0] == "0" && parts[1] == "":
			base, name = "sys/fs/cgroup", v2file
		case hasController(parts[1], controller):
			base, name = "sys/fs/cgroup/"+controller, v1file
		default:
			continue
		}
		for p := strings.Trim(parts[2], "/"); ; p = parentDir(p) {
			f := path.Join(base, p, name)
			if v, set := readLimit(fsys, f); set && (file == "" || v < limit) {
				limit, file = v, "/"+f
			}
			if p == "" {
				break
			}
		}
	}
	return limit, file, nil
}

func hasController(list, c string) bool {
	for _, x := range strings.Split(list, ",") {
		if x == c {
			return true
		}
	}
	return false
}

func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

// readLimit reads a cgroup limit file; "max" and v1's huge page-aligned
// "unlimited" are no limit.
func readLimit(fsys fs.FS, file string) (int64, bool) {
	if !fs.ValidPath(file) {
		return 0, false
	}
	v, ok := readInt(fsys, file)
	if !ok || v >= 1<<62 {
		return 0, false
	}
	return v, true
}

func readInts(fsys fs.FS, file string) ([]int64, bool) {
	data, err := fs.ReadFile(fsys, file)
	if err != nil {
		return nil, false
	}
	var out []int64
	for _, f := range strings.Fields(string(data)) {
		v, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return nil, false
		}
		out = append(out, v)
	}
	return out, len(out) > 0
}

func readInt(fsys fs.FS, file string) (int64, bool) {
	v, ok := readInts(fsys, file)
	if !ok || len(v) != 1 {
		return 0, false
	}
	return v[0], true
}

// readMeminfo returns a /proc/meminfo field in bytes.
func readMeminfo(fsys fs.FS, key string) (int64, bool) {
	f, err := fsys.Open("proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != key+":" {
			continue
		}
		v, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return 0, false
		}
		if len(fields) == 3 && fields[2] == "kB" {
			v <<= 10
		}
		return v, true
	}
	return 0, false
}

func bytesString(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	default:
		return fmt.Sprintf("%d B", b)
	}
}

// commas writes n with thousands separators: 1,000,000.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}
