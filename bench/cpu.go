package bench

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// MaxCPUProcs bounds --cpu-pid: a few servers (and their broker), not a
// process table.
const MaxCPUProcs = 16

// userHZ is the unit of utime and stime in /proc/PID/stat. The kernel
// exports clock ticks to user space at a fixed USER_HZ of 100 on every
// architecture Go runs Linux on, whatever its internal HZ.
const userHZ = 100

// CPUProc names a process whose CPU time a run reports.
type CPUProc struct {
	Label string `json:"label"`
	PID   int    `json:"pid"`
}

// ParseCPUProc parses "label=PID" or "PID" (the label is then the
// process's name from /proc/PID/comm, or the PID).
func ParseCPUProc(s string) (CPUProc, error) {
	label, num, ok := strings.Cut(s, "=")
	if !ok {
		label, num = "", s
	}
	pid, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || pid <= 0 {
		return CPUProc{}, fmt.Errorf("--cpu-pid %q: want PID or label=PID", s)
	}
	label = strings.TrimSpace(label)
	if label == "" {
		label = strconv.Itoa(pid)
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil {
			label = strings.TrimSpace(string(b)) + " " + label
		}
	}
	return CPUProc{Label: label, PID: pid}, nil
}

// ProcCPU is one process's CPU time over a run's measured window.
type ProcCPU struct {
	Label      string  `json:"label"`
	PID        int     `json:"pid"`
	CPUSeconds float64 `json:"cpu_s"` // user + system
	Cores      float64 `json:"cores"` // CPU seconds per second of the window
	// USPerDelivery is CPU µs per delivery of the whole run (broadcast,
	// echo), 0 when there were none.
	USPerDelivery float64 `json:"us_per_delivery,omitempty"`
}

// errNoStat is returned for a /proc/PID/stat line that cannot be read.
var errNoStat = errors.New("malformed /proc/PID/stat")

// parseStatCPU returns utime + stime, in clock ticks, from a
// /proc/PID/stat line. The command name (field 2) may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func parseStatCPU(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errNoStat
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, errNoStat
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || u < 0 || s < 0 {
		return 0, errNoStat
	}
	return u + s, nil
}

// procCPUTicks reads a process's utime + stime in clock ticks.
func procCPUTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// cpuMeter samples the CPU time of a run's listed processes at the start
// and the end of the measured window. Not safe for concurrent use.
type cpuMeter struct {
	procs []CPUProc
	t0    time.Time
	start []int64
}

// begin records the processes' CPU time now. A process that cannot be
// read is an error: a figure for the wrong window would be worse than none.
func (m *cpuMeter) begin() error {
	m.t0 = time.Now()
	m.start = m.start[:0]
	for _, p := range m.procs {
		v, err := procCPUTicks(p.PID)
		if err != nil {
			return fmt.Errorf("CPU time of %s (pid %d): %w", p.Label, p.PID, err)
		}
		m.start = append(m.start, v)
	}
	return nil
}

// end returns each process's CPU use since begin.
func (m *cpuMeter) end() ([]ProcCPU, error) {
	window := time.Since(m.t0).Seconds()
	out := make([]ProcCPU, 0, len(m.procs))
	for i, p := range m.procs {
		v, err := procCPUTicks(p.PID)
		if err != nil {
			return nil, fmt.Errorf("--cpu-pid %s (%d): %w", p.Label, p.PID, err)
		}
		s := float64(v-m.start[i]) / userHZ
		pc := ProcCPU{Label: p.Label, PID: p.PID, CPUSeconds: s}
		if window > 0 {
			pc.Cores = s / window
		}
		out = append(out, pc)
	}
	return out, nil
}

// perDelivery fills each process's CPU µs per delivery from the run's
// delivery rate: cores used / deliveries per second.
func perDelivery(ps []ProcCPU, deliveriesPerSec float64) {
	for i := range ps {
		ps[i].USPerDelivery = usPer(ps[i].Cores, deliveriesPerSec)
	}
}

// usPer is the CPU µs one unit of work (a delivery, an echoed message)
// cost: the cores a process used over the measured window divided by the
// units per second of that window. It divides rates, not counts, because
// the coordinator's CPU window and the workers' counting window open and
// close a few milliseconds apart; 0 when no work was done.
func usPer(cores, unitsPerSec float64) float64 {
	if unitsPerSec <= 0 || cores < 0 {
		return 0
	}
	return cores / unitsPerSec * 1e6
}

// withServer is the processes a run meters: procs (--cpu-pid) and the
// server (--server-pid) when it is not among them, with the server's
// index in the list (-1 without a server).
func withServer(procs []CPUProc, serverPID int) ([]CPUProc, int) {
	if serverPID <= 0 {
		return procs, -1
	}
	for i, p := range procs {
		if p.PID == serverPID {
			return procs, i
		}
	}
	all := append(append(make([]CPUProc, 0, len(procs)+1), procs...), CPUProc{Label: "server (--server-pid)", PID: serverPID})
	return all, len(procs)
}

// setServerCPU fills r's server CPU fields from srv, the --server-pid
// process's CPU over the measured window: seconds and cores for every
// scenario, µs per delivery for a broadcast, µs per echoed message for
// echo and µs per upgrade for connect (when any were made). A connect
// run's window is its connect phase: accepting and upgrading is all the
// server did in it.
func (r *Result) setServerCPU(srv ProcCPU) {
	s, cores := srv.CPUSeconds, srv.Cores
	r.ServerCPUSeconds, r.ServerCPUCores = &s, &cores
	switch r.Scenario {
	case ScenarioBroadcast:
		if r.DeliveriesPerSec > 0 {
			v := usPer(cores, r.DeliveriesPerSec)
			r.ServerCPUUSPerDelivery = &v
		}
	case ScenarioEcho:
		if r.MsgsPerSec > 0 {
			v := usPer(cores, r.MsgsPerSec)
			r.ServerCPUUSPerMsg = &v
		}
	case ScenarioConnect:
		if r.ConnsUp > 0 {
			v := srv.CPUSeconds * 1e6 / float64(r.ConnsUp)
			r.ServerCPUUSPerUpgrade = &v
		}
	}
}
