//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
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

// TestEndToEndAgainstWsd builds wsd and wsbench, runs `wsbench echo`,
// `wsbench idle` and `wsbench broadcast` (/broadcast, and /ws with publish
// over /ws and over the HTTP API) briefly against the daemon, and checks the
// JSON output; the /ws runs are checked against wsd's own /metrics.
func TestEndToEndAgainstWsd(t *testing.T) {
	dir := t.TempDir()
	wsd := build(t, dir, "./cmd/wsd", "wsd")
	wsbench := build(t, dir, "./cmd/wsbench", "wsbench")
	addr := freeAddr(t)
	srv := exec.Command(wsd, "--listen", addr, "--log-level", "error", "--rate-limit", "-1", "--api-key", "e2e-key")
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

	// /ws: every delivery wsbench counts is one wsd handed out, and the
	// other way round (no loss, no duplicates), in both publish modes.
	for _, via := range []string{"ws", "http"} {
		m0 := scrape(t, addr)
		args := []string{"broadcast", "--mode", "ws", "--url", "ws://" + addr + "/ws", "--channel", "e2e-" + via, "--conns", "150",
			"--duration", "1s", "--warmup", "200ms", "--pipeline", "4", "--publish", via}
		if via == "http" {
			args = append(args, "--api-key", "e2e-key")
		} else {
			args = append(args, "--procs", "2")
		}
		r := runJSON(args...)
		m1 := scrape(t, addr)
		tot := r["totals"].(map[string]any)
		pubs, uniq := tot["published"].(float64), tot["unique"].(float64)
		if r["errors"].(float64) != 0 || r["lost"].(float64) != 0 || r["subscribers"].(float64) != 150 || tot["subscribed"].(float64) != 150 ||
			r["deliveries_per_sec"].(float64) <= 0 || pubs == 0 || uniq != 150*pubs || r["mode"] != "ws" || r["publish"] != via {
			t.Fatalf("/ws publish over %s: %v", via, r)
		}
		if d := m1["wsd_publications_total"] - m0["wsd_publications_total"]; d != pubs {
			t.Errorf("/ws publish over %s: wsd accepted %v publications, wsbench sent %v", via, d, pubs)
		}
		if d := m1["wsd_fanout_deliveries_total"] - m0["wsd_fanout_deliveries_total"]; d != uniq {
			t.Errorf("/ws publish over %s: wsd handed out %v deliveries, wsbench received %v", via, d, uniq)
		}
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

// scrape reads wsd's counters from /metrics.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			m[name] = v
		}
	}
	if _, ok := m["wsd_fanout_deliveries_total"]; !ok {
		t.Fatalf("/metrics without wsd_fanout_deliveries_total:\n%s", b)
	}
	return m
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

func TestBroadcastWSFlags(t *testing.T) {
	t.Setenv("WSBENCH_API_KEY", "")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"broadcast", "--mode", "ws", "--publish", "http", "--quiet"}, "needs --api-key"},
		{[]string{"broadcast", "--channel", "x", "--quiet"}, "need --mode ws"},
		{[]string{"broadcast", "--mode", "ws", "--url", "ws://192.0.2.1/ws", "--quiet"}, "loopback"},
		{[]string{"broadcast", "--mode", "ws", "--publish", "http", "--api-key", "k", "--api-url", "http://192.0.2.1/api/publish", "--quiet"}, "loopback"},
		{[]string{"echo", "--mode", "ws"}, "flag provided but not defined"},
		{[]string{"broadcast", "--mode", "ws", "--url", "ws://127.0.0.1:1/ws,ws://192.0.2.1/ws", "--quiet"}, "loopback"},
		{[]string{"broadcast", "--mode", "ws", "--url", "ws://127.0.0.1:1/ws,ws://127.0.0.1:1/ws", "--quiet"}, "given twice"},
		{[]string{"broadcast", "--mode", "ws", "--publish-url", "ws://192.0.2.1/ws", "--quiet"}, "--publish-url"},
		{[]string{"broadcast", "--cpu-pid", "a=x", "--quiet"}, "want PID or label=PID"},
		{[]string{"echo", "--publish-url", "ws://127.0.0.1:1/ws"}, "flag provided but not defined"},
		{[]string{"broadcast", "--rates", "5,10", "--rate", "3", "--quiet"}, "--rates and --rate"},
		{[]string{"broadcast", "--rates", "5,0", "--quiet"}, "not a positive number"},
		{[]string{"broadcast", "--rates", "5", "--url", "ws://192.0.2.1/broadcast", "--quiet"}, "loopback"},
		{[]string{"echo", "--rates", "5"}, "flag provided but not defined"},
	} {
		var so, se bytes.Buffer
		if code := run(c.args, &so, &se); code == 0 || !strings.Contains(se.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, se.String(), c.want)
		}
	}
}

func TestStormFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"storm", "--fallback", "ws://192.0.2.1/ws", "--quiet"}, "loopback"},
		{[]string{"storm", "--signal", "KILL", "--quiet"}, "need --kill-pid"},
		{[]string{"storm", "--kill-pid", "1", "--quiet"}, "not a server wsbench may signal"},
		{[]string{"echo", "--honor-hints=false"}, "flag provided but not defined"},
	} {
		var so, se bytes.Buffer
		if code := run(c.args, &so, &se); code == 0 || !strings.Contains(se.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, se.String(), c.want)
		}
	}
}
