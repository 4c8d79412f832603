package soak

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsdhq/wsd/internal/leakcheck"
)

var wsdBin string

// TestMain builds wsd once; with -race the daemon gets the race detector
// too, so the short race window checks the server, not only the driver.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wsd-soak-bin")
	if err != nil {
		panic(err)
	}
	wsdBin = filepath.Join(dir, "wsd")
	args := []string{"build", "-o", wsdBin}
	if raceBuild {
		args = append(args, "-race")
	}
	out, err := exec.Command("go", append(args, "github.com/wsdhq/wsd/cmd/wsd")...).CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building wsd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := leakcheck.After(m.Run())
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a running wsd process.
type daemon struct {
	addr string
	key  string
	cmd  *exec.Cmd
	http *http.Client

	mu  sync.Mutex
	log bytes.Buffer // the last 64 KiB of its output
}

func (d *daemon) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.log.Write(p)
	if d.log.Len() > 64<<10 {
		d.log.Next(d.log.Len() - 64<<10)
	}
	return len(p), nil
}

func (d *daemon) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startWSD runs wsd on a free loopback port with a random API key and
// pprof, and waits until /healthz answers. Cleanup stops it with SIGINT,
// then SIGKILL after 15 s.
func startWSD(t *testing.T, args ...string) *daemon {
	t.Helper()
	var k [12]byte
	rand.Read(k[:])
	d := &daemon{addr: freeAddr(t), key: hex.EncodeToString(k[:]),
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}}
	base := []string{"--listen", d.addr, "--api-key", d.key, "--pprof", "--log-level", "warn", "--broker", "memory"}
	d.cmd = exec.Command(wsdBin, append(base, args...)...)
	d.cmd.Stdout, d.cmd.Stderr = d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		d.http.CloseIdleConnections()
		_ = d.cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = d.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("wsd output (tail):\n%s", d.output())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			t.Fatalf("wsd exited at start:\n%s", d.output())
		default:
		}
		if resp, err := d.http.Get("http://" + d.addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return d
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("wsd did not answer /healthz within 30 s:\n%s", d.output())
	return nil
}

// metrics scrapes /metrics into name{labels} → value.
func (d *daemon) metrics() (map[string]float64, error) {
	resp, err := d.http.Get("http://" + d.addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("/metrics: %s", resp.Status)
	}
	m := make(map[string]float64, 256)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m, sc.Err()
}

// closes returns wsd_closes_total by cause.
func closes(m map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m {
		if rest, ok := strings.CutPrefix(k, `wsd_closes_total{cause="`); ok {
			out[strings.TrimSuffix(rest, `"}`)] = v
		}
	}
	return out
}

// resources is what must come back after the soak.
type resources struct {
	Goroutines int
	FDs        int
	RSS        int64 // bytes
}

func (r resources) String() string {
	return fmt.Sprintf("goroutines %d, fds %d, RSS %.1f MiB", r.Goroutines, r.FDs, float64(r.RSS)/(1<<20))
}

// resources reads wsd's goroutine count (/debug/pprof/goroutine?debug=1
// header: "goroutine profile: total N"), open fds and VmRSS.
func (d *daemon) resources() (resources, error) {
	var r resources
	resp, err := d.http.Get("http://" + d.addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return r, err
	}
	head, _ := bufio.NewReader(resp.Body).ReadString('\n')
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := fmt.Sscanf(head, "goroutine profile: total %d", &r.Goroutines); err != nil {
		return r, fmt.Errorf("goroutine profile head %q: %w", head, err)
	}
	pid := d.cmd.Process.Pid
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return r, err
	}
	r.FDs = len(fds)
	r.RSS, err = vmRSS(pid)
	return r, err
}

func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// publish posts one publication through the HTTP API and returns its offset.
func (d *daemon) publish(ctx context.Context, channel string, data []byte) (uint64, error) {
	body := make([]byte, 0, len(data)+64)
	body = append(body, `{"channel":"`...)
	body = append(body, channel...)
	body = append(body, `","data":`...)
	body = append(body, data...)
	body = append(body, '}')
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+d.addr+"/api/publish", bytes.NewReader(body))
	req.Header.Set("Authorization", "apikey "+d.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("publish: %s: %s", resp.Status, b)
	}
	off, ok := jsonUint(b, `"offset":`)
	if !ok {
		return 0, fmt.Errorf("publish: no offset in %s", b)
	}
	return off, nil
}

// jsonUint finds key (with its colon) in b and parses the unsigned number
// after it: enough for the flat fields these tests read, without a
// decoder's cost at 100,000 messages a second.
func jsonUint(b []byte, key string) (uint64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	var n uint64
	j := i + len(key)
	start := j
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		n = n*10 + uint64(b[j]-'0')
	}
	return n, j > start
}

// dialer spreads client sockets over 127.0.0.2–127.0.0.254 so that a long
// churn does not run one source address out of ephemeral ports (TIME_WAIT).
type dialer struct {
	mu   sync.Mutex
	next int
}

func (d *dialer) local() *net.TCPAddr {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.next = d.next%253 + 1
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(d.next+1))}
}

// dial opens a TCP connection; rcvbuf > 0 sets SO_RCVBUF before connect so
// that the advertised window stays that small (a slow reader's socket
// fills fast instead of absorbing megabytes).
func (d *dialer) dial(ctx context.Context, addr string, rcvbuf int) (net.Conn, error) {
	nd := net.Dialer{LocalAddr: d.local(), Timeout: 10 * time.Second}
	if rcvbuf > 0 {
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return nd.DialContext(ctx, "tcp", addr)
}

// envDuration reads a duration from env, or def.
func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration like 60s or 10m", name, v)
	}
	return d
}

// artifactDir is where the HTML timelines and JSON go: $WSD_ARTIFACTS/soak
// if set, else a fresh directory under the temp dir that is kept (and
// logged) so the timeline can be opened after the run.
func artifactDir(t *testing.T) string {
	dir := os.Getenv("WSD_ARTIFACTS")
	var err error
	if dir != "" {
		dir = filepath.Join(dir, "soak")
		err = os.MkdirAll(dir, 0o755)
	} else {
		dir, err = os.MkdirTemp("", "wsd-soak-")
	}
	if err != nil {
		t.Fatal(err)
	}
	return dir
}
