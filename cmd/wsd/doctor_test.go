package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// fakeEnv is a box made of a testdata tree, a fixed RLIMIT_NOFILE hard
// limit (0: Getrlimit fails) and two event loops.
func fakeEnv(root string, hard uint64) doctorEnv {
	return doctorEnv{
		fsys: os.DirFS(root),
		rlimit: func() (uint64, uint64, error) {
			if hard == 0 {
				return 0, 0, errors.New("getrlimit: not here")
			}
			return 1024, hard, nil
		},
		pageSize: 4096,
		loops:    2,
	}
}

var capacityLine = regexp.MustCompile(`(?m)^most connections now: (?:([0-9,]+) \(limited by (.+)\)|(unknown) .*)$`)

// capacity reads doctor's verdict back: the number (-1 for unknown) and
// the limiting row.
func capacity(t *testing.T, out string) (int64, string) {
	t.Helper()
	m := capacityLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no capacity line in:\n%s", out)
	}
	if m[3] == "unknown" {
		return -1, ""
	}
	n, err := strconv.ParseInt(strings.ReplaceAll(m[1], ",", ""), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n, m[2]
}

var columnGap = regexp.MustCompile(`  +`)

// containsLoose is strings.Contains where a run of two or more spaces in
// want (a table's column gap) matches any run of two or more in out.
func containsLoose(out, want string) bool {
	parts := columnGap.Split(want, -1)
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile(strings.Join(parts, "  +")).MatchString(out)
}

func TestDoctorFakeBoxes(t *testing.T) {
	const td = "testdata/doctor/"
	cases := []struct {
		name     string
		env      doctorEnv
		args     []string
		capacity int64 // -1: unknown
		limiting string
		exit     int
		want     []string // substrings of the output (containsLoose)
		notWant  []string
	}{
		{name: "fds limit a tiny box", env: fakeEnv(td+"tiny", 1024), args: []string{"--conns", "5000"},
			// 1024 − max(1024/50, 32) − 2 loops × 5
			capacity: 982, limiting: "RLIMIT_NOFILE (hard)", exit: 1,
			want: []string{"OUT OF REACH", "\n  LimitNOFILE=5120\n", "ulimit -n 5120",
				"\n  net.core.somaxconn = 65535   # reconnect bursts", "MemAvailable                    1.5 GiB of 2.0 GiB               293,669"},
			notWant: []string{"fs.nr_open =", "fs.file-max =", "tcp_mem =", "MemoryMax="}},
		{name: "at the fd capacity exactly", env: fakeEnv(td+"tiny", 1024), args: []string{"--conns", "982"},
			capacity: 982, limiting: "RLIMIT_NOFILE (hard)", exit: 0,
			want: []string{"--conns 982: within reach\n"}, notWant: []string{"LimitNOFILE=", "somaxconn ="}},
		{name: "within reach, backlog recommended", env: fakeEnv(td+"conntrack", 1<<20), args: []string{"--conns", "65536"},
			capacity: 65536, limiting: "net.netfilter.nf_conntrack_max", exit: 0,
			want:    []string{"--conns 65,536: within reach; recommended:", "\n  net.ipv4.tcp_max_syn_backlog = 65535   # reconnect bursts"},
			notWant: []string{"nf_conntrack_max =", "LimitNOFILE="}},
		{name: "one past the fd capacity", env: fakeEnv(td+"tiny", 1024), args: []string{"--conns", "983"},
			capacity: 982, limiting: "RLIMIT_NOFILE (hard)", exit: 1, want: []string{"LimitNOFILE=2048"}},
		{name: "memory limits", env: fakeEnv(td+"memory", 1<<20), args: []string{"--conns", "300000"},
			// (1 GiB − 10%) / (840 + 4096) B
			capacity: 195779, limiting: "MemAvailable", exit: 1,
			want:    []string{"300,000 connections need 1.5 GiB of available memory", "cgroup memory limit             none"},
			notWant: []string{"LimitNOFILE=", "MemoryMax=", "nf_conntrack_max ="}},
		{name: "cgroup v2 memory.max limits", env: fakeEnv(td+"cgroup2", 1<<20), args: []string{"--conns", "200000"},
			// (512 MiB − 64 MiB) / 4936 B
			capacity: 95170, limiting: "cgroup memory limit", exit: 1,
			want: []string{"/sys/fs/cgroup/system.slice/wsd.service/memory.max", "\n  MemoryMax=1096888889\n",
				"cgroup pids limit               4915"},
			notWant: []string{"LimitNOFILE=", "of available memory"}},
		{name: "cgroup v1: a parent's limit binds", env: fakeEnv(td+"cgroup1", 1<<20),
			capacity: 40787, limiting: "cgroup memory limit", exit: 0,
			want: []string{"256.0 MiB", "/sys/fs/cgroup/memory/a/memory.limit_in_bytes"}},
		{name: "conntrack limits", env: fakeEnv(td+"conntrack", 1<<20), args: []string{"--conns", "100000"},
			capacity: 65536, limiting: "net.netfilter.nf_conntrack_max", exit: 1,
			want:    []string{"\n  net.netfilter.nf_conntrack_max = 100352\n", "notrack"},
			notWant: []string{"LimitNOFILE=", "tcp_mem ="}},
		{name: "tcp_mem limits", env: fakeEnv(td+"tcpmem", 4<<20), args: []string{"--conns", "500000"},
			capacity: 262144, limiting: "net.ipv4.tcp_mem (high)", exit: 1,
			want:    []string{"\n  net.ipv4.tcp_mem = 250368 375552 500736\n", "conntrack_max  not loaded"},
			notWant: []string{"LimitNOFILE=", "fs.nr_open ="}},
		{name: "missing and garbled files are unknown", env: fakeEnv(td+"partial", 0), args: []string{"--conns", "1"},
			// 50000 − 1000 − 10
			capacity: 48990, limiting: "fs.file-max", exit: 0,
			want: []string{"RLIMIT_NOFILE (hard)            unknown", "net.ipv4.tcp_mem (high)         unknown",
				"MemAvailable                    unknown", "cgroup memory limit             unknown"}},
		{name: "nothing readable", env: fakeEnv(t.TempDir(), 0), args: []string{"--conns", "1"},
			capacity: -1, exit: 1, want: []string{"OUT OF REACH"}},
		{name: "nothing readable, no --conns", env: fakeEnv(t.TempDir(), 0),
			capacity: -1, exit: 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := doctor(tc.args, &stdout, &stderr, tc.env)
			out := stdout.String()
			if code != tc.exit {
				t.Errorf("exit %d, want %d", code, tc.exit)
			}
			if stderr.Len() > 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
			n, lim := capacity(t, out)
			if n != tc.capacity || lim != tc.limiting {
				t.Errorf("capacity %d limited by %q, want %d by %q", n, lim, tc.capacity, tc.limiting)
			}
			for _, w := range tc.want {
				if !containsLoose(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output has %q", w)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

// The lines doctor suggests must actually reach N: applied to the box,
// they make doctor exit 0 with at least N.
func TestDoctorFixesReachTheGoal(t *testing.T) {
	for _, n := range []int64{1, 983, 5000, 1_000_000, 3_000_000} {
		l := fdsFor(n, 2)
		if got := memConns(memFor(n)); got < n {
			t.Errorf("memFor(%d) holds only %d", n, got)
		}
		if c := fdChecks(fakeEnv("testdata/doctor/tiny", l), 2)[0].conns; c < n {
			t.Errorf("LimitNOFILE=%d holds only %d of %d", l, c, n)
		}
		if l%1024 != 0 {
			t.Errorf("fdsFor(%d) = %d, not rounded to 1024", n, l)
		}
	}
}

func TestDoctorFlags(t *testing.T) {
	env := fakeEnv("testdata/doctor/tiny", 1024)
	for _, tc := range []struct {
		args []string
		exit int
	}{
		{[]string{"--conns", "-1"}, 2},
		{[]string{"--conns", "many"}, 2},
		{[]string{"--bogus"}, 2},
		{[]string{"extra"}, 2},
		{[]string{"--help"}, 0},
		{[]string{"--loops", "-3"}, 2},
		{[]string{"--conns", "1073741825"}, 2},
		{[]string{"--conns", "1073741824"}, 1},
	} {
		var stdout, stderr bytes.Buffer
		if code := doctor(tc.args, &stdout, &stderr, env); code != tc.exit {
			t.Errorf("%v: exit %d, want %d (stderr %q)", tc.args, code, tc.exit, stderr.String())
		}
	}
	// --root and --loops reach the checks: 20 loops reserve 100 descriptors.
	var stdout bytes.Buffer
	env.fsys = nil
	if code := doctor([]string{"--root", "testdata/doctor/tiny", "--loops", "20"}, &stdout, &bytes.Buffer{}, env); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if n, _ := capacity(t, stdout.String()); n != 1024-32-100 {
		t.Errorf("capacity %d with 20 loops, want %d", n, 1024-32-100)
	}
}

// TestDoctorRealBox runs the built wsd's doctor on this machine, through
// main's dispatch, so CI runs it for real.
func TestDoctorRealBox(t *testing.T) {
	bin, err := wsdBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "doctor", "--conns", "1")
	out, err := cmd.Output()
	code := cmd.ProcessState.ExitCode()
	if err != nil && code < 0 {
		t.Fatal(err)
	}
	t.Logf("wsd doctor --conns 1 on this box (exit %d):\n%s", code, out)
	n, lim := capacity(t, string(out))
	if n <= 0 || lim == "" {
		t.Fatalf("capacity %d limited by %q: this box must hold something", n, lim)
	}
	if code != 0 {
		t.Errorf("exit %d with a capacity of %d ≥ 1", code, n)
	}
}
