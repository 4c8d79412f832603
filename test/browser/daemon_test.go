package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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
	buildTimeout = 4 * time.Minute
	startTimeout = 10 * time.Second
	stopTimeout  = 15 * time.Second
	apiKey       = "browser-test-key"
)

// buildDaemon runs `go build -o DIR/wsd github.com/wsdhq/wsd/cmd/wsd` in the
// main module (two levels up).
func buildDaemon(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(gomod, []byte("module "+mainModule+"\n")) {
		t.Fatalf("%s is not the main module %s (go.mod: %v)", root, mainModule, err)
	}
	bin := filepath.Join(t.TempDir(), "wsd")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, daemonPkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -o %s %s (in %s): %v\n%s", bin, daemonPkg, root, err, out)
	}
	return bin
}

// freeLoopbackAddr picks a free port on 127.0.0.1: listen on :0, close, reuse.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// daemon is one running wsd process. Its log goes to a file that is kept
// across restarts (each start appends).
type daemon struct {
	cmd     *exec.Cmd
	addr    string
	logPath string
	exited  chan struct{}
	waitErr error
}

// startDaemon runs `bin --listen addr --api-key KEY --demo-ticker extra...`
// and waits until /healthz answers. A port still held by the previous wsd
// (restart) is retried until startTimeout.
func startDaemon(t *testing.T, bin, addr, logPath string, extra ...string) *daemon {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for {
		d, err := tryStartDaemon(bin, addr, logPath, extra)
		if err == nil {
			t.Cleanup(d.kill)
			return d
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot start wsd on %s: %v\n---- wsd log ----\n%s", addr, err, logTail(logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tryStartDaemon(bin, addr, logPath string, extra []string) (*daemon, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "==== test: starting wsd on %s at %s ====\n", addr, time.Now().Format("15:04:05.000"))
	args := []string{"--listen", addr, "--api-key", apiKey, "--demo-ticker", "--shutdown-timeout", "5s"}
	args = append(args, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = daemonSysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	f.Close() // the child has its own copy
	d := &daemon{cmd: cmd, addr: addr, logPath: logPath, exited: make(chan struct{})}
	go func() {
		d.waitErr = cmd.Wait()
		close(d.exited)
	}()
	hc := &http.Client{Timeout: time.Second}
	for start := time.Now(); time.Since(start) < startTimeout; time.Sleep(50 * time.Millisecond) {
		select {
		case <-d.exited:
			return nil, fmt.Errorf("wsd %s exited at start: %v", strings.Join(args, " "), d.waitErr)
		default:
		}
		resp, err := hc.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d, nil
			}
		}
	}
	d.kill()
	return nil, fmt.Errorf("wsd %s: /healthz did not answer within %v", strings.Join(args, " "), startTimeout)
}

// stop sends SIGTERM and waits for the exit (killing it after stopTimeout is
// an error).
func (d *daemon) stop() error {
	select {
	case <-d.exited:
		return fmt.Errorf("wsd had exited already: %v", d.waitErr)
	default:
	}
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-d.exited:
		if d.waitErr != nil {
			return fmt.Errorf("wsd exited with %v after SIGTERM", d.waitErr)
		}
		return nil
	case <-time.After(stopTimeout):
		d.kill()
		return fmt.Errorf("wsd still running %v after SIGTERM; killed it", stopTimeout)
	}
}

// kill is the cleanup: SIGKILL if still running, then reap.
func (d *daemon) kill() {
	select {
	case <-d.exited:
	default:
		_ = d.cmd.Process.Kill()
		<-d.exited
	}
}

func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(cannot read " + path + ": " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// api talks to wsd's HTTP API directly (never through the proxy).
type api struct {
	base string
	hc   *http.Client
}

func newAPI(addr string) *api {
	return &api{base: "http://" + addr, hc: &http.Client{Timeout: 5 * time.Second}}
}

func (a *api) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "apikey "+apiKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: bad JSON %q: %v", method, path, b, err)
	}
	return nil
}

type position struct {
	Offset int    `json:"offset"`
	Epoch  string `json:"epoch"`
}

// publish posts {"nick":nick,"text":text} to channel.
func (a *api) publish(ctx context.Context, channel, nick, text string) (position, error) {
	var pos position
	err := a.do(ctx, http.MethodPost, "/api/publish", map[string]any{
		"channel": channel,
		"data":    map[string]string{"nick": nick, "text": text},
	}, &pos)
	if err == nil && (pos.Offset <= 0 || pos.Epoch == "") {
		err = fmt.Errorf("publish to %s: odd answer %+v", channel, pos)
	}
	return pos, err
}

// connections returns how many subscriptions channel has on wsd.
func (a *api) connections(ctx context.Context, channel string) (int, error) {
	var p struct {
		Connections int `json:"connections"`
	}
	err := a.do(ctx, http.MethodGet, "/api/presence?channel="+url.QueryEscape(channel), nil, &p)
	return p.Connections, err
}
