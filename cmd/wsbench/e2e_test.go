//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func build(t *testing.T, dir, pkg, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = "../.."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
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

// TestEndToEndAgainstWsd builds wsd and wsbench, runs `wsbench echo` and
// `wsbench idle` briefly against the daemon, and checks the JSON output.
func TestEndToEndAgainstWsd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two binaries")
	}
	dir := t.TempDir()
	wsd := build(t, dir, "./cmd/wsd", "wsd")
	wsbench := build(t, dir, "./cmd/wsbench", "wsbench")
	addr := freeAddr(t)
	srv := exec.Command(wsd, "--listen", addr, "--log-level", "warn")
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Process.Kill(); _ = srv.Wait() })
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatal("wsd did not listen")
		}
		time.Sleep(50 * time.Millisecond)
	}

	runJSON := func(args ...string) map[string]any {
		t.Helper()
		out := filepath.Join(dir, args[0]+".json")
		args = append(args, "--json", out, "--quiet", "--timeout", "60s")
		cmd := exec.Command(wsbench, args...)
		var so, se bytes.Buffer
		cmd.Stdout, cmd.Stderr = &so, &se
		if err := cmd.Run(); err != nil {
			t.Fatalf("wsbench %v: %v\n%s\n%s", args, err, so.String(), se.String())
		}
		if !strings.Contains(so.String(), args[0]) {
			t.Errorf("no final table on stdout: %s", so.String())
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"scenario", "conns", "duration_s", "msgs_per_sec", "deliveries_per_sec", "latency_ms", "errors", "server_rss_bytes_per_conn"} {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: JSON lacks %q", args[0], k)
			}
		}
		return m
	}

	echo := runJSON("echo", "--url", "ws://"+addr+"/echo", "--conns", "50", "--duration", "1s", "--warmup", "200ms", "--size", "1024")
	if echo["scenario"] != "echo" || echo["conns"].(float64) != 50 || echo["errors"].(float64) != 0 || echo["msgs_per_sec"].(float64) <= 0 {
		t.Fatalf("echo: %v", echo)
	}
	lat := echo["latency_ms"].(map[string]any)
	if lat["p99"].(float64) <= 0 || lat["max"].(float64) < lat["p99"].(float64) {
		t.Fatalf("echo latency: %v", lat)
	}

	pid := strconv.Itoa(srv.Process.Pid)
	idle := runJSON("idle", "--url", "ws://"+addr+"/echo", "--conns", "500", "--duration", "1s", "--warmup", "500ms", "--server-pid", pid)
	if idle["errors"].(float64) != 0 || idle["conns_up"].(float64) != 500 {
		t.Fatalf("idle: %v", idle)
	}
	if v, ok := idle["server_rss_bytes_per_conn"].(float64); !ok || v <= 0 || v > 1<<20 {
		t.Fatalf("idle: server_rss_bytes_per_conn = %v", idle["server_rss_bytes_per_conn"])
	}

	bc := runJSON("broadcast", "--url", "ws://"+addr+"/broadcast", "--conns", "100", "--duration", "1s", "--warmup", "200ms", "--procs", "2")
	if bc["errors"].(float64) != 0 || bc["deliveries_per_sec"].(float64) <= 0 || bc["lost"].(float64) != 0 {
		t.Fatalf("broadcast: %v", bc)
	}

	// report: the JSON files become one HTML page.
	html := filepath.Join(dir, "r.html")
	cmd := exec.Command(wsbench, "report", "--html", html, filepath.Join(dir, "echo.json"), filepath.Join(dir, "idle.json"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("report: %v %s", err, b)
	}
	if b, _ := os.ReadFile(html); !bytes.Contains(b, []byte("latency_hist")) {
		t.Fatal("report has no data")
	}
}

func TestRefusesRemoteTarget(t *testing.T) {
	var so, se bytes.Buffer
	code := run([]string{"echo", "--url", "ws://203.0.113.5:80/echo", "--conns", "1", "--quiet"}, &so, &se)
	if code == 0 || !strings.Contains(se.String(), "loopback") {
		t.Fatalf("exit %d: %s", code, se.String())
	}
	code = run([]string{"idle", "--source-ips", "10.0.0.1", "--quiet"}, &so, &se)
	if code == 0 {
		t.Fatal("non-loopback source accepted")
	}
	if code := run([]string{"nope"}, &so, &se); code != 2 {
		t.Fatalf("unknown command: exit %d", code)
	}
	fmt.Fprint(&so) // keep imports tidy
}
