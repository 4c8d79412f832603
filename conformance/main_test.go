package conformance

import (
	"bytes"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/leakcheck"
)

// The daemons under test. Each runs from the binary TestMain builds.
var (
	srvDefault = &daemon{name: "default"}                                                          // default flags: 16 MiB, deflate on
	srvSmall   = &daemon{name: "small", args: []string{"--max-message", "65536"}}                  // cheap limit tests, zip bombs
	srvPlain   = &daemon{name: "plain", args: []string{"--deflate=false", "--idle-timeout", "2s"}} // no deflate, short idle timeout
	daemons    = []*daemon{srvDefault, srvSmall, srvPlain}
)

// maxDefault is the daemon's default --max-message.
const maxDefault = 16 << 20

// maxSmall is srvSmall's --max-message.
const maxSmall = 65536

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wsd-conformance-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "conformance:", err)
		return 1
	}
	defer os.RemoveAll(dir)

	bin := os.Getenv("WSD_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "wsd")
		args := []string{"build", "-o", bin}
		// A race-enabled suite runs a race-enabled daemon: its data races fail the run.
		if raceEnabled && os.Getenv("WSD_RACE") != "0" {
			args = append(args, "-race")
		}
		args = append(args, "github.com/wsdhq/wsd/cmd/wsd")
		start := time.Now()
		out, err := exec.Command("go", args...).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "conformance: go %s: %v\n%s", strings.Join(args, " "), err, out)
			return 1
		}
		fmt.Printf("conformance: built wsd (race=%v) in %v\n", raceEnabled, time.Since(start).Round(time.Millisecond))
	}

	var wg sync.WaitGroup
	for _, d := range daemons {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.startErr = d.start(bin, dir)
		}()
	}
	wg.Wait()
	if srvDefault.startErr != nil {
		fmt.Fprintf(os.Stderr, "conformance: the default daemon did not start: %v\n", srvDefault.startErr)
		for _, d := range daemons {
			d.stop()
		}
		return 1
	}

	code := m.Run()

	for _, d := range daemons {
		if msg := d.stop(); msg != "" {
			fmt.Fprintf(os.Stderr, "conformance: daemon %s: %s\n", d.name, msg)
			code = 1
		}
	}
	return leakcheck.After(code) // after the daemons' goroutines ended
}

// daemon is one wsd process.
type daemon struct {
	name string
	args []string

	addr     string
	startErr error
	cmd      *exec.Cmd
	log      *syncBuffer
	exited   chan struct{}
	waitErr  error
}

func (d *daemon) start(bin, dir string) error {
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			return err
		}
		d.addr = fmt.Sprintf("127.0.0.1:%d", port)
		d.log = &syncBuffer{}
		d.exited = make(chan struct{})
		d.cmd = exec.Command(bin, append([]string{"--listen", d.addr}, d.args...)...)
		d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
		if err := d.cmd.Start(); err != nil {
			return err
		}
		go func(cmd *exec.Cmd, exited chan struct{}) {
			d.waitErr = cmd.Wait()
			close(exited)
		}(d.cmd, d.exited)
		if last = d.waitReady(10 * time.Second); last == nil {
			return nil
		}
		d.cmd.Process.Kill()
		<-d.exited
	}
	return fmt.Errorf("%v; output:\n%s", last, d.log.tail(4096))
}

func (d *daemon) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-d.exited:
			return fmt.Errorf("wsd %v exited during startup: %v", d.cmd.Args[1:], d.waitErr)
		default:
		}
		c, err := Dial(d.addr, Options{Timeout: time.Second})
		if err == nil {
			c.Close()
			return nil
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("wsd %v not ready after %v: %v", d.cmd.Args[1:], limit, last)
}

// stop sends SIGTERM and reports anything wrong: a crash before the end, a
// slow exit, data races or panics in the output.
func (d *daemon) stop() string {
	if d.cmd == nil || d.cmd.Process == nil || d.startErr != nil {
		return ""
	}
	var problems []string
	select {
	case <-d.exited:
		problems = append(problems, fmt.Sprintf("exited before the end of the suite: %v", d.waitErr))
	default:
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
			if d.waitErr != nil {
				fmt.Printf("conformance: note: daemon %s exited with %v after SIGTERM (design says exit 0)\n", d.name, d.waitErr)
			}
		case <-time.After(5 * time.Second):
			fmt.Printf("conformance: note: daemon %s still running 5 s after SIGTERM; killed\n", d.name)
			d.cmd.Process.Kill()
			<-d.exited
		}
	}
	out := d.log.String()
	if strings.Contains(out, "DATA RACE") {
		problems = append(problems, "data race(s) reported")
	}
	if strings.Contains(out, "panic:") || strings.Contains(out, "fatal error:") {
		problems = append(problems, "panic reported")
	}
	if len(problems) == 0 {
		return ""
	}
	return strings.Join(problems, "; ") + "\n--- daemon output ---\n" + tailString(out, 64<<10)
}

// need returns d's address, or fails t if d is not running.
func (d *daemon) need(t testing.TB) string {
	t.Helper()
	if d.startErr != nil {
		t.Fatalf("daemon %s (%v) did not start: %v", d.name, d.args, d.startErr)
	}
	d.checkAlive(t)
	return d.addr
}

func (d *daemon) checkAlive(t testing.TB) {
	t.Helper()
	select {
	case <-d.exited:
		t.Fatalf("daemon %s has exited (%v); output tail:\n%s", d.name, d.waitErr, d.log.tail(8192))
	default:
	}
}

// healthy checks that d still accepts a connection and echoes a message.
func (d *daemon) healthy(t testing.TB) {
	t.Helper()
	addr := d.need(t)
	c, err := Dial(addr, Options{})
	if err != nil {
		d.checkAlive(t)
		t.Fatalf("daemon %s unhealthy: dial: %v", d.name, err)
	}
	defer c.Close()
	payload := []byte("still alive?")
	if err := c.Write(Frame(codec.OpText, true, 0, payload)); err != nil {
		t.Fatalf("daemon %s unhealthy: write: %v", d.name, err)
	}
	ev, err := c.Next()
	if err != nil || ev.Op != codec.OpText || !bytes.Equal(ev.Payload, payload) {
		d.checkAlive(t)
		t.Fatalf("daemon %s unhealthy: echo: got %v, %v", d.name, ev, err)
	}
	closeNormally(t, c)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 8<<20 { // keep the head and stop growing
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) tail(n int) string { return tailString(s.String(), n) }

func tailString(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
