package bench

import (
	"errors"
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
