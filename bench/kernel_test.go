package bench

import (
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func readKernelTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "kernel", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseSockstat(t *testing.T) {
	s, err := parseSockstat(readKernelTestdata(t, "sockstat-after"))
	if err != nil {
		t.Fatal(err)
	}
	if want := (Sockstat{Inuse: 20009, Orphan: 1, TW: 21, Alloc: 20010, MemPages: 545}); s != want {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	for _, bad := range [][]byte{readKernelTestdata(t, "sockstat-short"), []byte("sockets: used 2\n"), []byte("TCP: inuse x orphan 0 tw 0 alloc 0 mem 0\n")} {
		if _, err := parseSockstat(bad); err == nil {
			t.Errorf("parseSockstat(%q): no error", bad)
		}
	}
}

func TestParseSlabinfo(t *testing.T) {
	m, err := parseSlabinfo(readKernelTestdata(t, "slabinfo-after"))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 9 {
		t.Fatalf("%d caches, want 9", len(m))
	}
	if want := (slabCache{ActiveObjs: 20107, NumObjs: 20150, ObjSize: 2368, PagesPerSlab: 8, NumSlabs: 1550}); m["TCP"] != want {
		t.Fatalf("TCP: got %+v, want %+v", m["TCP"], want)
	}
	if got := m["TCP"].bytes(4096); got != 1550*8*4096 {
		t.Fatalf("TCP bytes %d", got)
	}
	for _, bad := range [][]byte{readKernelTestdata(t, "slabinfo-bad"), []byte("slabinfo - version: 1.1\n"), nil} {
		if _, err := parseSlabinfo(bad); err == nil {
			t.Errorf("parseSlabinfo(%q): no error", bad)
		}
	}
}

// TestKernelDelta: 10,000 connections, both ends on the box (20,000
// sockets). The tracked caches are listed in order and summed, kmalloc-64
// (+20,000 objects) apart as a mover, not summed, kmalloc-32 (+500 < 10%
// of the connections) not at all.
func TestKernelDelta(t *testing.T) {
	snap := func(sock, slab string) kernelSnapshot {
		s, err := parseSockstat(readKernelTestdata(t, sock))
		if err != nil {
			t.Fatal(err)
		}
		m, err := parseSlabinfo(readKernelTestdata(t, slab))
		if err != nil {
			t.Fatal(err)
		}
		return kernelSnapshot{Sock: s, Slabs: m}
	}
	k := kernelDelta(snap("sockstat-before", "slabinfo-before"), snap("sockstat-after", "slabinfo-after"), 10000, 4096)
	if k.SocketsPerConn != 2 || k.OrphanDelta != 1 || k.TWDelta != 2 || k.TCPMemBytesDelta != 500*4096 {
		t.Fatalf("sockstat deltas: %+v", k)
	}
	var names []string
	for _, s := range k.Slabs {
		names = append(names, s.Name)
	}
	want := []string{"TCP", "sock_inode_cache", "dentry", "filp", "eventpoll_epi"}
	if len(names) != len(want) {
		t.Fatalf("slabs %v, want %v", names, want)
	}
	for i := range want {
		if names[i] != want[i] {
			t.Fatalf("slabs %v, want %v", names, want)
		}
	}
	if s := k.Slabs[0]; s.ObjsDelta != 20000 || s.BytesDelta != 1538*8*4096 || s.ObjSize != 2368 {
		t.Fatalf("TCP delta %+v", s)
	}
	if len(k.OtherSlabs) != 1 || k.OtherSlabs[0].Name != "kmalloc-64" || k.OtherSlabs[0].ObjsDelta != 20000 || k.OtherSlabs[0].BytesDelta != 313*4096 {
		t.Fatalf("other slabs %+v", k.OtherSlabs)
	}
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-6 }
	if !near(k.TCPMemBytesPerConn, 204.8) || !near(k.SlabBytesPerConn, 7822.1312) ||
		!near(k.BytesPerConn, 8026.9312) || !near(k.BytesPerSocket, 4013.4656) {
		t.Fatalf("per conn: tcp mem %v slabs %v total %v per socket %v", k.TCPMemBytesPerConn, k.SlabBytesPerConn, k.BytesPerConn, k.BytesPerSocket)
	}
	// Without slabinfo (not root) the sockstat part still counts.
	noSlab := kernelDelta(kernelSnapshot{Sock: k.Before}, kernelSnapshot{Sock: k.After}, 10000, 4096)
	if noSlab.Slabs != nil || !near(noSlab.BytesPerConn, 204.8) {
		t.Fatalf("without slabinfo: %+v", noSlab)
	}
	if kernelDelta(kernelSnapshot{}, kernelSnapshot{}, 0, 4096) != nil {
		t.Fatal("0 connections: want nil")
	}
}

// TestProcKernelLive reads this machine's files: sockstat always parses on
// Linux; slabinfo parses when readable (root).
func TestProcKernelLive(t *testing.T) {
	if runtime.GOOS != "linux" {
		return
	}
	k, err := procKernel("/proc/net/sockstat", "/proc/slabinfo", "/sys/kernel/slab")()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.ReadFile("/proc/slabinfo"); err == nil && k.Slabs["TCP"].ObjSize == 0 {
		t.Fatalf("slabinfo readable but no TCP cache: %d caches", len(k.Slabs))
	}
}

// TestMergedSlabs: eventpoll_pwq shares a slab with anon_vma_chain (both
// link to :A-0000064); slabinfo lists only anon_vma_chain, whose growth then
// counts as eventpoll_pwq's and is not listed again among the movers.
func TestMergedSlabs(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{":A-0000064", "TCP"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"eventpoll_pwq", "anon_vma_chain", "fs_cache"} {
		if err := os.Symlink(":A-0000064", filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]slabCache{"TCP": {ActiveObjs: 10, ObjSize: 2368, PagesPerSlab: 8, NumSlabs: 1},
		"anon_vma_chain": {ActiveObjs: 640, ObjSize: 64, PagesPerSlab: 1, NumSlabs: 10}}
	after := map[string]slabCache{"TCP": {ActiveObjs: 2010, ObjSize: 2368, PagesPerSlab: 8, NumSlabs: 155},
		"anon_vma_chain": {ActiveObjs: 2640, ObjSize: 64, PagesPerSlab: 1, NumSlabs: 42}}
	merged := mergedSlabs(dir, after)
	if len(merged) != 1 || merged["eventpoll_pwq"] != "anon_vma_chain" {
		t.Fatalf("merged %v", merged)
	}
	tracked, movers := slabDeltas(before, after, merged, 1000, 4096)
	if len(tracked) != 2 || tracked[1].Name != "eventpoll_pwq" || tracked[1].MergedInto != "anon_vma_chain" ||
		tracked[1].ObjsDelta != 2000 || tracked[1].BytesDelta != 32*4096 {
		t.Fatalf("tracked %+v", tracked)
	}
	if len(movers) != 0 {
		t.Fatalf("movers %+v", movers)
	}
	if m := mergedSlabs(filepath.Join(dir, "missing"), after); len(m) != 0 {
		t.Fatalf("no /sys/kernel/slab: %v", m)
	}
}

// fakeCgroupTree lays out procRoot/PID/cgroup and the cgroup's files under
// sysRoot from testdata/cgroup.
func fakeCgroupTree(t *testing.T, cgroupFile string, files map[string]string) (procRoot, sysRoot string) {
	t.Helper()
	root := t.TempDir()
	procRoot, sysRoot = filepath.Join(root, "proc"), filepath.Join(root, "sys")
	write := func(path string, b []byte) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(procRoot, "42", "cgroup"), readCgroupTestdata(t, cgroupFile))
	for path, content := range files {
		write(filepath.Join(sysRoot, path), []byte(content))
	}
	return procRoot, sysRoot
}

func readCgroupTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "cgroup", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestMemoryCgroupV1(t *testing.T) {
	proc, sys := fakeCgroupTree(t, "v1-cgroup", map[string]string{"memory/svc/wsd/memory.kmem.usage_in_bytes": "15400960\n"})
	c, err := memoryCgroup(proc, sys, 42)
	if err != nil {
		t.Fatal(err)
	}
	if c.V2 || c.Path != filepath.Join(sys, "memory/svc/wsd") {
		t.Fatalf("%+v", c)
	}
	if v, err := c.read(); err != nil || v != 15400960 {
		t.Fatalf("read %d, %v", v, err)
	}
}

// TestMemoryCgroupV2: the hybrid layout (v2 under sysRoot/unified); kernel
// + sock, and before Linux 5.18 (no kernel line) slab + stacks + page
// tables + percpu + sock.
func TestMemoryCgroupV2(t *testing.T) {
	stat := string(readCgroupTestdata(t, "v2-memory.stat"))
	proc, sys := fakeCgroupTree(t, "v2-cgroup", map[string]string{"unified/system.slice/wsd.service/memory.stat": stat})
	c, err := memoryCgroup(proc, sys, 42)
	if err != nil {
		t.Fatal(err)
	}
	if !c.V2 || c.Path != filepath.Join(sys, "unified/system.slice/wsd.service") {
		t.Fatalf("%+v", c)
	}
	if v, err := c.read(); err != nil || v != 16113664+8192 {
		t.Fatalf("read %d, %v", v, err)
	}
	old, err := parseV2Kernel(readCgroupTestdata(t, "v2-memory.stat-old"))
	if err != nil || old != 15663104+65536+204800+1440+8192 {
		t.Fatalf("old layout: %d, %v", old, err)
	}
	for _, bad := range []string{"anon 1\n", "kernel 5\n", "sock x\n"} {
		if _, err := parseV2Kernel([]byte(bad)); err == nil {
			t.Errorf("parseV2Kernel(%q): no error", bad)
		}
	}
	if _, err := memoryCgroup(proc, sys, 43); err == nil {
		t.Fatal("no such pid: no error")
	}
}
