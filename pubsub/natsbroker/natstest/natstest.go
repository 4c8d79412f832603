// Package natstest runs a real nats-server with JetStream for tests: on a
// loopback port, with its store in a directory of the test's, killed when
// the test ends whatever happens. The binary is $WSD_NATS_SERVER, else
// bin/nats-server at the module's root (scripts/install-test-deps.sh builds
// it there), else nats-server on PATH; when none exists the test ends
// through testdep.Missing (a failure under CI=true).
package natstest

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/wsdhq/wsd/internal/testdep"
)

// Server is one nats-server process (and its restarts, on the same port
// and store). Methods are for the test's goroutine.
type Server struct {
	t      testing.TB
	bin    string
	Store  string // JetStream store directory
	Port   int
	URL    string // nats://127.0.0.1:Port
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	logs   *os.File
}

// startTimeout bounds a start, generous for a loaded machine.
const startTimeout = 20 * time.Second

// Binary finds nats-server (see the package doc) or ends the test.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("WSD_NATS_SERVER"); p != "" {
		if _, err := os.Stat(p); err != nil {
			testdep.Missing(t, "nats-server at $WSD_NATS_SERVER="+p, testdep.InstallHint)
		}
		return p
	}
	if root, err := moduleRoot(); err == nil {
		p := filepath.Join(root, "bin", "nats-server")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	testdep.Missing(t, "nats-server (bin/nats-server, $WSD_NATS_SERVER or PATH)", testdep.InstallHint)
	return ""
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if b, _ := os.ReadFile(filepath.Join(dir, "go.mod")); strings.HasPrefix(string(b), "module github.com/wsdhq/wsd\n") {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no wsd go.mod above the working directory")
		}
		dir = parent
	}
}

// Start runs nats-server -js on a free loopback port with its store in a
// new temporary directory, and waits until it accepts connections.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, bin: Binary(t), Store: t.TempDir()}
	logs, err := os.Create(filepath.Join(t.TempDir(), "nats-server.log"))
	if err != nil {
		t.Fatal(err)
	}
	s.logs = logs
	t.Cleanup(func() {
		s.Kill()
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("nats-server log:\n%s", tail(string(b), 4000))
		}
		logs.Close()
	})
	for attempt := 0; ; attempt++ {
		s.Port = freePort(t)
		s.URL = "nats://127.0.0.1:" + strconv.Itoa(s.Port)
		err := s.start()
		if err == nil {
			return s
		}
		if attempt == 3 {
			t.Fatalf("nats-server did not start: %v", err)
		}
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start runs the process on s.Port and waits for its client port.
func (s *Server) start() error {
	portsDir := s.t.TempDir()
	cmd := exec.Command(s.bin, "-a", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-js", "-sd", s.Store,
		"--ports_file_dir", portsDir, "-m", "0")
	cmd.Stdout, cmd.Stderr = s.logs, s.logs
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("nats-server exited at start (port %d taken?)", s.Port)
		case <-time.After(20 * time.Millisecond):
		}
		if ready(portsDir) {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(s.Port), time.Second)
			if err == nil {
				c.Close()
				return nil
			}
		}
	}
	s.Kill()
	return fmt.Errorf("nats-server not listening on %d after %v", s.Port, startTimeout)
}

// ready: nats-server writes its ports file once it listens.
func ready(dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.ports"))
	for _, f := range files {
		var p struct {
			Nats []string `json:"nats"`
		}
		if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &p) == nil && len(p.Nats) > 0 {
			return true
		}
	}
	return false
}

// Stop shuts the server down gracefully (SIGTERM: JetStream flushes its
// store) and waits for it to exit.
func (s *Server) Stop() { s.signal(syscall.SIGTERM) }

// Kill kills the server (SIGKILL) and waits for it; nothing if not running.
func (s *Server) Kill() { s.signal(syscall.SIGKILL) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-exited
	}
}

// Restart stops the server and starts it again on the same port with the
// same store.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Resume()
}

// Resume starts a stopped server again on the same port with the same
// store.
func (s *Server) Resume() {
	s.t.Helper()
	var err error
	for range 50 { // the port may linger for a moment after the exit
		if err = s.start(); err == nil {
			return
		}
	}
	s.t.Fatalf("nats-server start on port %d again: %v", s.Port, err)
}
