// Package e2e runs the wsd daemon as users deploy it: behind a TLS
// terminating nginx, with real clients.
package e2e

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wsdhq/wsd/internal/leakcheck"
)

var wsdBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "wsd-e2e")
	if err != nil {
		panic(err)
	}
	wsdBin = filepath.Join(dir, "wsd")
	out, err := exec.Command("go", "build", "-o", wsdBin, "github.com/wsdhq/wsd/cmd/wsd").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building wsd: %v\n%s", err, out)
		os.Exit(1)
	}
	code := leakcheck.After(m.Run())
	os.RemoveAll(dir)
	os.Exit(code)
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// daemon is a running wsd.
type daemon struct {
	Addr string
	cmd  *exec.Cmd
	log  *strings.Builder
}

// startWSD runs wsd with args on a free port and waits until it accepts.
func startWSD(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startWSDAt(t, freePort(t), args...)
}

// startWSDAt runs wsd with args on addr (a restart takes its old
// address) and waits until it accepts.
func startWSDAt(t *testing.T, addr string, args ...string) *daemon {
	t.Helper()
	cmd := exec.Command(wsdBin, append([]string{"--listen", addr}, args...)...)
	var log strings.Builder
	pr, pw, _ := os.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
		}
	}()
	d := &daemon{Addr: addr, cmd: cmd, log: &log}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		<-logDone
		if t.Failed() {
			t.Logf("wsd log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return d
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("wsd did not start:\n%s", log.String())
	return nil
}
