package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	mainModule   = "github.com/wsdhq/wsd"
	daemonPkg    = mainModule + "/cmd/wsd"
	buildTimeout = 5 * time.Minute
	startTimeout = 10 * time.Second
	stopTimeout  = 20 * time.Second
)

// wsdProcess is one running wsd daemon. Its fields are written by
// startDaemon and only read afterwards; exited is closed when the process
// has been reaped, after which waitErr may be read.
type wsdProcess struct {
	cmd     *exec.Cmd
	addr    string // host:port the daemon listens on
	logPath string
	logFile *os.File
	exited  chan struct{}
	waitErr error
}

// repoRoot returns the directory of the main module (two levels up), after
// checking that it really is github.com/wsdhq/wsd.
func repoRoot() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		return "", fmt.Errorf("main module not found: %w", err)
	}
	if !bytes.HasPrefix(gomod, []byte("module "+mainModule+"\n")) {
		return "", fmt.Errorf("%s/go.mod is not module %s", root, mainModule)
	}
	return root, nil
}

// daemonBinary builds cmd/wsd into a temporary directory (with -race when
// the tests themselves run with -race), or returns $WSD_BIN when set.
func daemonBinary() (bin string, cleanup func(), err error) {
	if b := os.Getenv("WSD_BIN"); b != "" {
		if _, err := os.Stat(b); err != nil {
			return "", nil, fmt.Errorf("WSD_BIN=%s: %w", b, err)
		}
		return b, func() {}, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", nil, err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "wsd")); err != nil {
		return "", nil, fmt.Errorf("%s does not exist yet: %w", filepath.Join(root, "cmd", "wsd"), err)
	}
	dir, err := os.MkdirTemp("", "wsd-interop-bin-")
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { os.RemoveAll(dir) }
	bin = filepath.Join(dir, "wsd")
	args := []string{"build"}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "-o", bin, daemonPkg)

	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("go %s (in %s): %v\n%s", strings.Join(args, " "), root, err, out)
	}
	return bin, cleanup, nil
}

// freeLoopbackAddr picks a free TCP port on 127.0.0.1 by listening on :0
// and closing the listener again.
func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// startDaemon runs `bin --listen 127.0.0.1:PORT` with its output in a log
// file and waits until a TCP dial to it succeeds.
func startDaemon(bin string, extraArgs ...string) (*wsdProcess, error) {
	addr, err := freeLoopbackAddr()
	if err != nil {
		return nil, err
	}
	logFile, err := os.CreateTemp("", "wsd-interop-*.log")
	if err != nil {
		return nil, err
	}
	args := append([]string{"--listen", addr}, extraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), "GORACE=halt_on_error=0")
	cmd.SysProcAttr = daemonSysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	d := &wsdProcess{cmd: cmd, addr: addr, logPath: logFile.Name(), logFile: logFile, exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()

	deadline := time.Now().Add(startTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
		if err == nil {
			c.Close()
			return d, nil
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("wsd %s exited before accepting connections (%v); log:\n%s",
				strings.Join(args, " "), d.waitErr, d.logTail(40))
		default:
		}
		if time.Now().After(deadline) {
			d.kill()
			return nil, fmt.Errorf("wsd %s: no TCP listener on %s after %v; log:\n%s",
				strings.Join(args, " "), addr, startTimeout, d.logTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// url returns ws://ADDR/path.
func (d *wsdProcess) url(path string) string { return "ws://" + d.addr + path }

func (d *wsdProcess) alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits for the daemon to exit; having to kill it is
// an error. The exit status is checked by TestDaemonSIGTERM, not here.
func (d *wsdProcess) stop() error {
	defer d.logFile.Close()
	if !d.alive() {
		return fmt.Errorf("wsd had already exited before the end of the tests: %v", d.waitErr)
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-d.exited:
		return nil
	case <-time.After(stopTimeout):
		d.kill()
		return fmt.Errorf("wsd still running %v after SIGTERM; killed it", stopTimeout)
	}
}

// removeLog deletes the log file (after a fully passing run).
func (d *wsdProcess) removeLog() { os.Remove(d.logPath) }

func (d *wsdProcess) kill() {
	d.cmd.Process.Kill()
	<-d.exited
}

// logTail returns the last n lines the daemon printed.
func (d *wsdProcess) logTail(n int) string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return "(cannot read log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// raceReport returns the daemon's race detector reports, if any.
func (d *wsdProcess) raceReport() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return ""
	}
	i := bytes.Index(b, []byte("WARNING: DATA RACE"))
	if i < 0 {
		return ""
	}
	b = b[i:]
	if len(b) > 8000 {
		b = b[:8000]
	}
	return string(b)
}

// needDaemon returns the shared daemon, failing the test at once if it is
// not running, and again at the end if it died while the test ran.
func needDaemon(t *testing.T) *wsdProcess {
	t.Helper()
	d := daemon
	if d == nil {
		t.Fatal("wsd daemon was not started (TestMain)")
	}
	if !d.alive() {
		t.Fatalf("wsd daemon is no longer running (%v); log tail:\n%s", d.waitErr, d.logTail(40))
	}
	t.Cleanup(func() {
		// Give a crash triggered by the last frames a moment to happen.
		select {
		case <-d.exited:
		case <-time.After(20 * time.Millisecond):
		}
		if !d.alive() {
			t.Errorf("wsd daemon DIED during %s (%v); log tail:\n%s", t.Name(), d.waitErr, d.logTail(40))
		}
	})
	return d
}

// errIsClosedByPeer reports whether err means the peer closed the TCP
// connection (EOF or reset), as opposed to a timeout.
func errIsClosedByPeer(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}
