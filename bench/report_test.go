package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wsdhq/wsd/internal/testdep"
)

func fakeResult(label, scenario string, msgs float64, rssPerConn float64) *Result {
	h := NewHist()
	for i := int64(1); i <= 1000; i++ {
		h.Record(i * 10_000) // 0.01 .. 10 ms
	}
	r := &Result{
		Scenario: scenario, Label: label, Step: scenario + "-1k", URL: "ws://127.0.0.1:1/echo", Conns: 1000, ConnsUp: 1000, Procs: 1,
		Size: 1024, DurationS: 2, MsgsPerSec: msgs, DeliveriesPerSec: msgs, UpgradesPerSec: 5000,
		Latency: h, Upgrade: h, LatencyMs: PercentilesOf(h), UpgradeMs: PercentilesOf(h),
		ErrorReasons: map[string]uint64{"read: reset": 2}, Errors: 2, ServerRSSBefore: 8 << 20, ServerRSSAfter: 9 << 20,
	}
	if rssPerConn > 0 {
		r.ServerRSSBytesPerConn = &rssPerConn
	}
	for i := range 10 {
		r.Timeline = append(r.Timeline, Sample{T: float64(i) / 2, Phase: "measure", Open: 1000, MsgsPerSec: msgs, DeliveriesPerSec: msgs, RSS: 9 << 20})
	}
	return r
}

func TestWriteTableAndJSON(t *testing.T) {
	r := fakeResult("wsd", ScenarioEcho, 50_000, 300)
	var b bytes.Buffer
	WriteTable(&b, r)
	for _, want := range []string{"echo — wsd", "msgs/s", "50.0k", "p99", "300 B/conn", "read: reset"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	path := filepath.Join(t.TempDir(), "r.json")
	if err := WriteJSON(path, r); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"scenario", "conns", "duration_s", "msgs_per_sec", "deliveries_per_sec", "latency_ms", "errors", "server_rss_bytes_per_conn"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	lat := m["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "p999", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_ms lacks %q", k)
		}
	}
	back, err := ReadResults(path)
	if err != nil || len(back) != 1 || back[0].Latency.Quantile(0.99) != r.Latency.Quantile(0.99) {
		t.Fatalf("round trip: %v", err)
	}
	// Unknown RSS is null, not 0.
	r.ServerRSSBytesPerConn = nil
	var nb bytes.Buffer
	_ = json.NewEncoder(&nb).Encode(r)
	if !strings.Contains(nb.String(), `"server_rss_bytes_per_conn":null`) {
		t.Error("missing RSS must encode as null")
	}
}

func TestSuiteMarkdownRatios(t *testing.T) {
	sr := &SuiteResult{
		Started: time.Now(), Machine: Machine{CPUs: 2, CPUModel: "Test CPU", MemBytes: 24 << 30, Kernel: "Linux 6", GoVersion: "go1.26"},
		Servers: []SuiteServer{{Name: "wsd", Cmd: []string{"bin/wsd"}}, {Name: "gorilla", Cmd: []string{"bin/peers/gorilla"}}},
		Steps:   []SuiteStep{{Name: "echo-1k", Config: Config{Scenario: ScenarioEcho, Conns: 1000}}, {Name: "idle-1k", Config: Config{Scenario: ScenarioIdle, Conns: 1000}}},
	}
	a, b := fakeResult("wsd", ScenarioEcho, 60_000, 0), fakeResult("gorilla", ScenarioEcho, 40_000, 0)
	c, d := fakeResult("wsd", ScenarioIdle, 0, 300), fakeResult("gorilla", ScenarioIdle, 0, 1200)
	c.Step, d.Step = "idle-1k", "idle-1k"
	ca, cb := 12.5, 25.0
	a.ServerCPUUSPerMsg, b.ServerCPUUSPerMsg = &ca, &cb
	sr.Results = []*Result{a, b, c, d}
	sr.Failures = []string{"broadcast-10k/gorilla: boom"}
	var w bytes.Buffer
	WriteSuiteMarkdown(&w, sr)
	out := w.String()
	for _, want := range []string{"| CPUs (nproc) | 2 |", "Test CPU", "24.0 GiB", "Linux 6", "go1.26",
		"| echo-1k | msgs/s | 1.50× |", "| idle-1k | server RSS B/conn | 0.25× |", "| echo-1k | msgs/s | 60000 | 40000 |",
		"| echo-1k | server CPU µs/msg | 12.5 | 25.0 |", "| echo-1k | server CPU µs/msg | 0.50× |",
		"boom", "wsbench echo --url"} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// TestSuiteMarkdownWSStep: a step that runs on wsd only shows n/a for the
// peers (not "failed"), has no ratio row, and says how it was run.
func TestSuiteMarkdownWSStep(t *testing.T) {
	steps := append([]SuiteStep{{Name: "broadcast-10k", Config: Config{Scenario: ScenarioBroadcast, Conns: 10000}}},
		WSBroadcastSteps(10000, []string{"wsd"}, "s3cret", 8*time.Second)...)
	sr := &SuiteResult{
		Started: time.Now(), Servers: []SuiteServer{{Name: "wsd", Cmd: []string{"bin/wsd"}}, {Name: "gorilla", Cmd: []string{"bin/peers/gorilla"}}},
		Steps: steps,
	}
	for _, l := range []string{"wsd", "gorilla"} {
		r := fakeResult(l, ScenarioBroadcast, 240_000, 0)
		r.Step = "broadcast-10k"
		sr.Results = append(sr.Results, r)
	}
	for i, st := range steps[1:] {
		r := fakeResult("wsd", ScenarioBroadcast, 200_000+float64(i), 0)
		r.Step, r.Mode, r.Channel, r.PublishVia, r.URL = st.Name, ModeWS, st.Config.Channel, st.Config.Publish, "ws://127.0.0.1:1/ws"
		if r.PublishVia == "" {
			r.PublishVia = PublishWS
		}
		sr.Results = append(sr.Results, r)
	}
	var w bytes.Buffer
	WriteSuiteMarkdown(&w, sr)
	out := w.String()
	for _, want := range []string{
		"| broadcast-ws-10k | deliveries/s | 200000 | n/a |", "| broadcast-ws-http-10k | deliveries/s | 200001 | n/a |",
		"wsbench broadcast --mode ws --channel bench --publish ws --url", "--publish http --api-key KEY --url", "Runs on wsd only, started with `--rate-limit -1 --api-key KEY`",
		"POST /api/publish, one request at a time", "**broadcast-ws**",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if strings.Contains(out, "s3cret") || strings.Contains(out, "| broadcast-ws-10k | deliveries/s | – |") || strings.Contains(out, "| gorilla | failed |") {
		t.Error("API key shown, ratio row for a wsd-only step, or a peer marked failed")
	}
	if t.Failed() {
		t.Log(out)
	}
	dir := t.TempDir()
	if err := WriteSuiteFiles(dir, sr); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "results.json")); bytes.Contains(b, []byte("s3cret")) {
		t.Error("results.json holds the API key")
	}
}

func writeTestReport(t *testing.T) string {
	t.Helper()
	rs := []*Result{
		fakeResult("wsd", ScenarioEcho, 60_000, 0), fakeResult("gorilla", ScenarioEcho, 40_000, 0),
		fakeResult("wsd", ScenarioIdle, 0, 300), fakeResult("wsd", ScenarioBroadcast, 1000, 0), fakeResult("wsd", ScenarioConnect, 0, 0),
	}
	rs[2].Step = "idle"
	ws := fakeResult("wsd", ScenarioBroadcast, 900, 0)
	ws.Mode, ws.Channel, ws.PublishVia = ModeWS, DefaultChannel, PublishHTTP
	rs = append(rs, ws, fakeStorm("naive", 1), fakeStorm("hints honoured", 20))
	path := filepath.Join(t.TempDir(), "report.html")
	if err := WriteHTMLFile(path, Report{Title: "test <report>", Machine: DescribeMachine(), Results: rs}); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHTMLSelfContained(t *testing.T) {
	raw, err := os.ReadFile(writeTestReport(t))
	if err != nil {
		t.Fatal(err)
	}
	page := string(raw)
	if !strings.Contains(page, "test &lt;report&gt;") {
		t.Error("title not escaped")
	}
	// Nothing may be fetched: no src/href attributes, no URLs other than the
	// SVG namespace and the target URLs inside the data.
	if regexp.MustCompile(`(?i)<(script|link|img|iframe)[^>]+(src|href)=`).MatchString(page) {
		t.Error("page references an external resource")
	}
	for _, m := range regexp.MustCompile(`https?://[^"'\s<)]+`).FindAllString(page, -1) {
		if m != "http://www.w3.org/2000/svg" {
			t.Errorf("unexpected URL in page: %s", m)
		}
	}
	if !strings.Contains(page, "Content-Security-Policy") {
		t.Error("no CSP forbidding fetches")
	}
}

// TestHTMLRendersInChromium opens the report in headless Chromium and checks
// that every chart was drawn and no script error happened.
func TestHTMLRendersInChromium(t *testing.T) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		testdep.Missing(t, "chromium (chromium, chromium-browser or google-chrome on PATH)", "Debian chromium; "+testdep.InstallHint)
	}
	path := writeTestReport(t)
	profile := t.TempDir()
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
		"--dump-dom", "file://"+path)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("chromium: %v\n%s", err, stderr.String())
		}
	case <-time.After(90 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("chromium did not finish in 90 s")
	}
	dom := stdout.String()
	if !strings.Contains(dom, `data-done="1"`) {
		t.Fatalf("script did not run to the end:\n%.2000s\nstderr:\n%s", dom, stderr.String())
	}
	m := regexp.MustCompile(`data-charts="(\d+)"`).FindStringSubmatch(dom)
	// 5 runs: echo×2 (4 charts each + RSS), idle, broadcast, connect, plus comparison charts.
	if m == nil || len(m[1]) < 2 {
		t.Fatalf("too few charts rendered: %v", m)
	}
	if n := strings.Count(dom, `data-rendered="1"`); n < 20 {
		t.Fatalf("only %d charts rendered", n)
	}
	if strings.Count(dom, "<path") < 15 || strings.Count(dom, "<rect") < 4 {
		t.Fatal("charts have no lines or bars")
	}
	if e := regexp.MustCompile(`id="js-errors">([^<]*)<`).FindStringSubmatch(dom); e == nil || strings.TrimSpace(e[1]) != "" {
		t.Fatalf("JS errors: %v", e)
	}
	for _, line := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(line, "Uncaught") || (strings.Contains(line, "CONSOLE") && strings.Contains(strings.ToLower(line), "error")) {
			t.Errorf("console: %s", line)
		}
	}
}

// Regenerating results.md keeps what was written by hand below the
// marker, and replaces everything above it.
func TestSuiteFilesKeepHandWrittenPart(t *testing.T) {
	dir := t.TempDir()
	old := "# stale generated table\n\n| idle | 999 |\n\n" + keptMarker + "\n## Kernel memory per connection\n\nmeasured by hand\n"
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	sr := &SuiteResult{Started: time.Now(), Servers: []SuiteServer{{Name: "wsd", Cmd: []string{"bin/wsd"}}},
		Steps: []SuiteStep{{Name: "echo-1k", Config: Config{Scenario: ScenarioEcho, Conns: 1000}}}}
	sr.Results = []*Result{fakeResult("wsd", ScenarioEcho, 60_000, 0)}
	for range 2 { // and again: the part is kept once, not doubled
		if err := WriteSuiteFiles(dir, sr); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if strings.Contains(out, "stale generated") || !strings.Contains(out, "| echo-1k | msgs/s | 60000 |") ||
		strings.Count(out, keptMarker) != 1 || !strings.HasSuffix(out, keptMarker+"\n## Kernel memory per connection\n\nmeasured by hand\n") {
		t.Fatalf("results.md:\n%s", out)
	}
	// A fresh directory gets the generated part only.
	fresh := t.TempDir()
	if err := WriteSuiteFiles(fresh, sr); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(fresh, "results.md")); bytes.Contains(b, []byte(keptMarker)) {
		t.Error("a fresh results.md has the marker")
	}
}
