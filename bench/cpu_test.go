package bench

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestParseStatCPU(t *testing.T) {
	// Field 2 may hold spaces and ')'; utime 1234 and stime 56 are fields 14, 15.
	line := "4242 (wsd (a) b) S 1 4242 4242 0 -1 4194560 1043 0 0 0 1234 56 0 0 20 0 7 0 12345 1000000 500 18446744073709551615\n"
	if v, err := parseStatCPU([]byte(line)); err != nil || v != 1290 {
		t.Fatalf("got %d, %v; want 1290", v, err)
	}
	for _, bad := range []string{"", "4242 wsd S 1", "4242 (wsd) S 1 2 3", "4242 (wsd) S 1 4242 4242 0 -1 4194560 1043 0 0 0 x 56 0"} {
		if _, err := parseStatCPU([]byte(bad)); !errors.Is(err, errNoStat) {
			t.Errorf("%q: %v, want errNoStat", bad, err)
		}
	}
}

func TestParseCPUProc(t *testing.T) {
	p, err := ParseCPUProc("node a=123")
	if err != nil || p.Label != "node a" || p.PID != 123 {
		t.Fatalf("%+v %v", p, err)
	}
	// Without a label: the PID (and the name, when the process exists).
	p, err = ParseCPUProc("1073741824")
	if err != nil || p.PID != 1<<30 || !strings.Contains(p.Label, "1073741824") {
		t.Fatalf("%+v %v", p, err)
	}
	for _, bad := range []string{"", "a=", "a=-3", "a=x", "0"} {
		if _, err := ParseCPUProc(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUSPer(t *testing.T) {
	// 0.73 cores at 200k deliveries/s is 3.65 µs per delivery.
	if got := usPer(0.73, 200_000); math.Abs(got-3.65) > 1e-9 {
		t.Fatalf("usPer(0.73, 200k) = %v, want 3.65", got)
	}
	for _, c := range [][2]float64{{1, 0}, {1, -5}, {-1, 100}} {
		if got := usPer(c[0], c[1]); got != 0 {
			t.Errorf("usPer(%v, %v) = %v, want 0", c[0], c[1], got)
		}
	}
}

func TestWithServer(t *testing.T) {
	broker := CPUProc{Label: "broker", PID: 7}
	// Not among --cpu-pid: appended, the caller's slice untouched.
	procs := make([]CPUProc, 1, 4)
	procs[0] = broker
	all, i := withServer(procs, 42)
	if i != 1 || len(all) != 2 || all[1].PID != 42 || procs[:2][1].PID != 0 {
		t.Fatalf("got %+v, %d (caller's backing array %+v)", all, i, procs[:2])
	}
	// Already listed: metered once, under its --cpu-pid label.
	if all, i := withServer([]CPUProc{broker, {Label: "a", PID: 42}}, 42); i != 1 || len(all) != 2 {
		t.Fatalf("got %+v, %d", all, i)
	}
	if all, i := withServer([]CPUProc{broker}, 0); i != -1 || len(all) != 1 {
		t.Fatalf("no server: got %+v, %d", all, i)
	}
}

func TestSetServerCPU(t *testing.T) {
	srv := ProcCPU{PID: 42, CPUSeconds: 7.3, Cores: 0.73}
	b := &Result{Scenario: ScenarioBroadcast, DeliveriesPerSec: 200_000, MsgsPerSec: 20}
	b.setServerCPU(srv)
	if b.ServerCPUUSPerDelivery == nil || math.Abs(*b.ServerCPUUSPerDelivery-3.65) > 1e-9 || b.ServerCPUUSPerMsg != nil ||
		*b.ServerCPUSeconds != 7.3 || *b.ServerCPUCores != 0.73 {
		t.Fatalf("broadcast: %+v", b)
	}
	e := &Result{Scenario: ScenarioEcho, DeliveriesPerSec: 50_000, MsgsPerSec: 50_000}
	e.setServerCPU(ProcCPU{CPUSeconds: 10, Cores: 1})
	if e.ServerCPUUSPerMsg == nil || *e.ServerCPUUSPerMsg != 20 || e.ServerCPUUSPerDelivery != nil {
		t.Fatalf("echo: %+v", e)
	}
	c := &Result{Scenario: ScenarioConnect, ConnsUp: 10_000}
	c.setServerCPU(ProcCPU{CPUSeconds: 0.45, Cores: 0.9})
	if c.ServerCPUUSPerUpgrade == nil || math.Abs(*c.ServerCPUUSPerUpgrade-45) > 1e-9 || c.ServerCPUUSPerMsg != nil || c.ServerCPUUSPerDelivery != nil {
		t.Fatalf("connect: %+v", c)
	}
	// Nothing delivered: seconds and cores, no per-unit figure.
	z := &Result{Scenario: ScenarioBroadcast}
	z.setServerCPU(srv)
	if z.ServerCPUUSPerDelivery != nil || z.ServerCPUSeconds == nil {
		t.Fatalf("no deliveries: %+v", z)
	}
	var js strings.Builder
	if err := json.NewEncoder(&js).Encode(b); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"server_cpu_us_per_delivery":3.65`, `"server_cpu_s":7.3`, `"server_cpu_cores":0.73`} {
		if !strings.Contains(js.String(), k) {
			t.Errorf("JSON lacks %s", k)
		}
	}
	if strings.Contains(js.String(), "server_cpu_us_per_msg") {
		t.Error("broadcast JSON has server_cpu_us_per_msg")
	}
	var tbl strings.Builder
	WriteTable(&tbl, b)
	if !strings.Contains(tbl.String(), "3.650 µs per delivery") {
		t.Errorf("table lacks the server's µs per delivery:\n%s", tbl.String())
	}
}
