package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The kernel memory charged to the server's memory cgroup: unlike
// /proc/slabinfo and sockstat's mem it is the server's alone (when the
// server is alone in its cgroup), so it is the figure to trust on a shared
// box. The TCP socket object of an accepted connection is allocated at the
// handshake, outside the server's context, and is not in it.

// cgroupKernel reads the kernel bytes charged to one memory cgroup.
type cgroupKernel struct {
	Path string // the cgroup's directory
	V2   bool
}

// memoryCgroup finds pid's memory cgroup from procRoot/PID/cgroup: the v1
// line naming the memory controller (under sysRoot/memory), else the v2
// line "0::path" (under sysRoot, or sysRoot/unified in hybrid mode).
func memoryCgroup(procRoot, sysRoot string, pid int) (cgroupKernel, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return cgroupKernel{}, err
	}
	var v2 string
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			v2 = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "memory" {
				return cgroupKernel{Path: filepath.Join(sysRoot, "memory", f[2])}, nil
			}
		}
	}
	if v2 == "" {
		return cgroupKernel{}, errors.New("no memory cgroup")
	}
	for _, root := range []string{sysRoot, filepath.Join(sysRoot, "unified")} {
		dir := filepath.Join(root, v2)
		if _, err := os.Stat(filepath.Join(dir, "memory.stat")); err == nil {
			return cgroupKernel{Path: dir, V2: true}, nil
		}
	}
	return cgroupKernel{}, errors.New("no memory.stat for the v2 cgroup " + v2)
}

// read returns the cgroup's kernel bytes: v1 memory.kmem.usage_in_bytes;
// v2 memory.stat's kernel (slab, stacks, page tables, per-cpu) plus sock
// (socket buffers, which v1 counts only with kmem.tcp limits).
func (c cgroupKernel) read() (int64, error) {
	if !c.V2 {
		b, err := os.ReadFile(filepath.Join(c.Path, "memory.kmem.usage_in_bytes"))
		if err != nil {
			return 0, err
		}
		return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	}
	b, err := os.ReadFile(filepath.Join(c.Path, "memory.stat"))
	if err != nil {
		return 0, err
	}
	return parseV2Kernel(b)
}

// parseV2Kernel sums memory.stat's kernel and sock; kernels before 5.18
// have no kernel line: slab + kernel_stack + pagetables + percpu instead.
func parseV2Kernel(b []byte) (int64, error) {
	v := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("memory.stat %s: %w", f[0], err)
		}
		v[f[0]] = n
	}
	if _, ok := v["sock"]; !ok {
		return 0, errors.New("memory.stat: no sock line")
	}
	if k, ok := v["kernel"]; ok {
		return k + v["sock"], nil
	}
	if _, ok := v["slab"]; !ok {
		return 0, errors.New("memory.stat: neither kernel nor slab")
	}
	return v["slab"] + v["kernel_stack"] + v["pagetables"] + v["percpu"] + v["sock"], nil
}

// serverCgroup is the server's memory cgroup during a run; shared says
// wsbench is in the same one (then the clients' sockets count too).
type serverCgroup struct {
	cgroupKernel
	shared bool
	delta  int64
}

// newServerCgroup finds pid's memory cgroup, or nil where there is none
// to read (no cgroup memory controller, not Linux).
func newServerCgroup(procRoot, sysRoot string, pid int) *serverCgroup {
	c, err := memoryCgroup(procRoot, sysRoot, pid)
	if err != nil {
		return nil
	}
	if _, err := c.read(); err != nil {
		return nil
	}
	own, err := memoryCgroup(procRoot, sysRoot, os.Getpid())
	return &serverCgroup{cgroupKernel: c, shared: err == nil && own.Path == c.Path}
}
