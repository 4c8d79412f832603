package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Kernel memory per connection (idle): the difference between two
// snapshots of /proc/net/sockstat and /proc/slabinfo, one before the
// connections are opened and one while they are all held.
//
// Two things make these figures coarser than the server's RSS:
//   - /proc/net/sockstat's TCP inuse and tw are per network namespace, but
//     its orphan, alloc and mem (pages charged to socket buffers) and all of
//     /proc/slabinfo are for the whole machine, so anything else running
//     shows up in them (on a shared box, run in a network namespace of
//     your own and repeat: scripts/kmem-idle.sh);
//   - the clients' sockets usually live on the same box, so every
//     connection is two TCP sockets. KernelResult.SocketsPerConn says how
//     many sockets each connection added (TCP inuse delta / connections),
//     and the per-socket figures divide by it.

// trackedSlabs are the caches a TCP connection allocates from: the socket
// (TCP), its inode (sock_inode_cache), the dentry and struct file behind
// the descriptor, and the epoll item and wait-queue hook of the loop that
// watches it (eventpoll_epi; ep_head, the list head every watched file gets
// since Linux 5.11), and the security modules' blobs for the inode and file
// (lsm_inode_cache, lsm_file_cache, Linux 6.x). They are always listed and make SlabBytesPerConn; other
// caches are listed apart (OtherSlabs) when they move, and not summed:
// on a shared box most of what moves there is other processes' churn.
var trackedSlabs = []string{"TCP", "sock_inode_cache", "dentry", "filp", "eventpoll_epi", "eventpoll_pwq", "ep_head", "lsm_inode_cache", "lsm_file_cache"}

// moverFraction: a cache not in trackedSlabs is listed when its active
// objects grew by at least this fraction of the connections (e.g. a
// kmalloc-* cache every socket takes something from).
const moverFraction = 0.1

// Sockstat is the TCP line of /proc/net/sockstat.
type Sockstat struct {
	Inuse    int64 `json:"inuse"`     // TCP sockets in use (listeners too, TIME_WAIT not), this netns
	Orphan   int64 `json:"orphan"`    // closed sockets still finishing, whole machine
	TW       int64 `json:"tw"`        // TIME_WAIT sockets, this netns
	Alloc    int64 `json:"alloc"`     // allocated sockets, whole machine
	MemPages int64 `json:"mem_pages"` // pages charged to TCP socket buffers, whole machine
}

// parseSockstat reads the TCP line of /proc/net/sockstat.
func parseSockstat(b []byte) (Sockstat, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("TCP:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		var s Sockstat
		seen := 0
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return Sockstat{}, fmt.Errorf("sockstat TCP %s: %w", f[i], err)
			}
			dst := map[string]*int64{"inuse": &s.Inuse, "orphan": &s.Orphan, "tw": &s.TW, "alloc": &s.Alloc, "mem": &s.MemPages}[f[i]]
			if dst != nil {
				*dst = v
				seen++
			}
		}
		if seen < 5 {
			return Sockstat{}, fmt.Errorf("sockstat TCP line %q: want inuse, orphan, tw, alloc and mem", strings.TrimSpace(string(rest)))
		}
		return s, nil
	}
	return Sockstat{}, errors.New("sockstat: no TCP line")
}

// slabCache is one line of /proc/slabinfo (version 2.1).
type slabCache struct {
	ActiveObjs   int64
	NumObjs      int64
	ObjSize      int64
	PagesPerSlab int64
	NumSlabs     int64
}

// bytes is the memory the cache's slabs occupy.
func (c slabCache) bytes(page int64) int64 { return c.NumSlabs * c.PagesPerSlab * page }

// parseSlabinfo reads /proc/slabinfo version 2.1:
//
//	name <active_objs> <num_objs> <objsize> <objperslab> <pagesperslab> : tunables ... : slabdata <active_slabs> <num_slabs> <sharedavail>
func parseSlabinfo(b []byte) (map[string]slabCache, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 4096), 1<<20)
	out := map[string]slabCache{}
	first := true
	for sc.Scan() {
		line := sc.Text()
		if first {
			first = false
			if !strings.HasPrefix(line, "slabinfo - version: 2.") {
				return nil, fmt.Errorf("slabinfo: unknown header %q", line)
			}
			continue
		}
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		// name + 5 numbers, ":" tunables + 3, ":" slabdata + 3
		if len(f) < 16 || f[6] != ":" || f[11] != ":" || f[12] != "slabdata" {
			return nil, fmt.Errorf("slabinfo: malformed line %q", line)
		}
		var n [7]int64
		for i, s := range []string{f[1], f[2], f[3], f[4], f[5], f[13], f[14]} {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("slabinfo %s: %w", f[0], err)
			}
			n[i] = v
		}
		out[f[0]] = slabCache{ActiveObjs: n[0], NumObjs: n[1], ObjSize: n[2], PagesPerSlab: n[4], NumSlabs: n[6]}
	}
	if first {
		return nil, errors.New("slabinfo: empty")
	}
	return out, sc.Err()
}

// kernelSnapshot is sockstat and slabinfo at one moment. Slabs is nil when
// /proc/slabinfo is unreadable (it needs root). Merged maps a tracked cache
// SLUB merged into another to the name slabinfo shows for both.
type kernelSnapshot struct {
	Sock   Sockstat
	Slabs  map[string]slabCache
	Merged map[string]string
}

// mergedSlabs finds, for each tracked cache slabinfo does not list, the
// listed cache it shares a slab with: SLUB merges caches of like size and
// flags, and /sys/kernel/slab/NAME of each is a link to the same ":A-..."
// directory (e.g. eventpoll_pwq into anon_vma_chain).
func mergedSlabs(sysSlab string, listed map[string]slabCache) map[string]string {
	out := map[string]string{}
	var entries []os.DirEntry
	for _, name := range trackedSlabs {
		if _, ok := listed[name]; ok {
			continue
		}
		target, err := os.Readlink(filepath.Join(sysSlab, name))
		if err != nil {
			continue
		}
		if entries == nil {
			if entries, err = os.ReadDir(sysSlab); err != nil {
				return out
			}
		}
		for _, e := range entries {
			if _, ok := listed[e.Name()]; !ok {
				continue
			}
			if t, err := os.Readlink(filepath.Join(sysSlab, e.Name())); err == nil && filepath.Base(t) == filepath.Base(target) {
				out[name] = e.Name()
				break
			}
		}
	}
	return out
}

// kernelSource reads a snapshot; procKernel reads the live files.
type kernelSource func() (kernelSnapshot, error)

func procKernel(sockstat, slabinfo, sysSlab string) kernelSource {
	return func() (kernelSnapshot, error) {
		b, err := os.ReadFile(sockstat)
		if err != nil {
			return kernelSnapshot{}, err
		}
		var k kernelSnapshot
		if k.Sock, err = parseSockstat(b); err != nil {
			return kernelSnapshot{}, err
		}
		if b, err := os.ReadFile(slabinfo); err == nil {
			if k.Slabs, err = parseSlabinfo(b); err != nil {
				return kernelSnapshot{}, err
			}
			k.Merged = mergedSlabs(sysSlab, k.Slabs)
		}
		return k, nil
	}
}

// SlabDelta is one slab cache's growth while the connections were held.
type SlabDelta struct {
	Name string `json:"name"`
	// MergedInto: the cache slabinfo lists in Name's place (SLUB merged
	// them); its figures include the other caches merged there.
	MergedInto   string  `json:"merged_into,omitempty"`
	ObjSize      int64   `json:"obj_size"`
	ObjsDelta    int64   `json:"objs_delta"`     // active objects
	BytesDelta   int64   `json:"bytes_delta"`    // slab pages × page size
	BytesPerConn float64 `json:"bytes_per_conn"` // BytesDelta / connections
}

// KernelResult is the kernel's share of the connections (idle): deltas
// between before connecting and all connections held, per connection.
type KernelResult struct {
	PageSize int64    `json:"page_size"`
	Before   Sockstat `json:"sockstat_before"`
	After    Sockstat `json:"sockstat_after"`
	// TCP inuse delta / connections: 2 when both ends are on this box (and
	// in this network namespace), 1 when only the server's are.
	SocketsPerConn float64 `json:"tcp_sockets_per_conn"`
	OrphanDelta    int64   `json:"tcp_orphan_delta"`
	TWDelta        int64   `json:"tcp_tw_delta"`
	// (sockstat TCP mem after − before) × page size: socket buffer pages,
	// machine-wide.
	TCPMemBytesDelta   int64   `json:"tcp_mem_bytes_delta"`
	TCPMemBytesPerConn float64 `json:"tcp_mem_bytes_per_conn"`
	// Slabs: the socket caches (trackedSlabs), machine-wide, summed in
	// SlabBytesPerConn. OtherSlabs: any other cache whose active objects
	// grew by moverFraction of the connections, not summed (judge them:
	// a kmalloc-* cache growing by one object per socket is the
	// connections', a proc_inode_cache is someone else's). Both empty when
	// /proc/slabinfo was unreadable.
	Slabs            []SlabDelta `json:"slabs,omitempty"`
	OtherSlabs       []SlabDelta `json:"other_slabs_moved,omitempty"`
	SlabBytesPerConn float64     `json:"slab_bytes_per_conn"`
	// BytesPerConn = TCPMemBytesPerConn + SlabBytesPerConn: both ends when
	// the clients are on this box. BytesPerSocket divides it by
	// SocketsPerConn: one end's share, assuming both ends cost the same.
	BytesPerConn   float64 `json:"kernel_bytes_per_conn"`
	BytesPerSocket float64 `json:"kernel_bytes_per_socket"`

	// With --server-pid: the kernel memory charged to the server's memory
	// cgroup (v1 memory.kmem.usage_in_bytes, v2 memory.stat kernel + sock)
	// per connection, the server's own when it is alone in that cgroup.
	// The accepted sockets' TCP objects are not charged there (allocated
	// at the handshake); everything else per socket is. Shared: wsbench is
	// in the same cgroup, so its client sockets are in the figure too.
	ServerCgroup                   string   `json:"server_cgroup,omitempty"`
	ServerCgroupShared             bool     `json:"server_cgroup_shared_with_wsbench,omitempty"`
	ServerCgroupKernelBytesPerConn *float64 `json:"server_cgroup_kernel_bytes_per_conn,omitempty"`
}

// kernelDelta compares two snapshots over conns connections.
func kernelDelta(before, after kernelSnapshot, conns, page int64) *KernelResult {
	if conns <= 0 {
		return nil
	}
	n := float64(conns)
	k := &KernelResult{PageSize: page, Before: before.Sock, After: after.Sock}
	k.SocketsPerConn = float64(after.Sock.Inuse-before.Sock.Inuse) / n
	k.OrphanDelta = after.Sock.Orphan - before.Sock.Orphan
	k.TWDelta = after.Sock.TW - before.Sock.TW
	k.TCPMemBytesDelta = (after.Sock.MemPages - before.Sock.MemPages) * page
	k.TCPMemBytesPerConn = float64(k.TCPMemBytesDelta) / n
	if before.Slabs != nil && after.Slabs != nil {
		k.Slabs, k.OtherSlabs = slabDeltas(before.Slabs, after.Slabs, after.Merged, conns, page)
		for _, s := range k.Slabs {
			k.SlabBytesPerConn += s.BytesPerConn
		}
	}
	k.BytesPerConn = k.TCPMemBytesPerConn + k.SlabBytesPerConn
	if k.SocketsPerConn > 0 {
		k.BytesPerSocket = k.BytesPerConn / k.SocketsPerConn
	}
	return k
}

// slabDeltas lists trackedSlabs (those present) in order, and apart every
// other cache whose active objects grew by moverFraction of conns, biggest
// first. A tracked cache merged into another (merged) is read from that
// one, which then is not listed apart.
func slabDeltas(before, after map[string]slabCache, merged map[string]string, conns, page int64) (tracked, movers []SlabDelta) {
	delta := func(name, listed string) SlabDelta {
		a, b := after[listed], before[listed]
		d := SlabDelta{Name: name, ObjSize: a.ObjSize, ObjsDelta: a.ActiveObjs - b.ActiveObjs, BytesDelta: a.bytes(page) - b.bytes(page)}
		if listed != name {
			d.MergedInto = listed
		}
		d.BytesPerConn = float64(d.BytesDelta) / float64(conns)
		return d
	}
	isTracked := map[string]bool{}
	for _, name := range trackedSlabs {
		listed := name
		if m, ok := merged[name]; ok {
			listed = m
		}
		if isTracked[listed] {
			continue // two tracked caches merged together: count the slab once
		}
		isTracked[name], isTracked[listed] = true, true
		if _, ok := after[listed]; ok {
			tracked = append(tracked, delta(name, listed))
		}
	}
	for name, a := range after {
		if isTracked[name] {
			continue
		}
		if float64(a.ActiveObjs-before[name].ActiveObjs) >= moverFraction*float64(conns) {
			movers = append(movers, delta(name, name))
		}
	}
	sort.Slice(movers, func(i, j int) bool {
		if movers[i].BytesDelta != movers[j].BytesDelta {
			return movers[i].BytesDelta > movers[j].BytesDelta
		}
		return movers[i].Name < movers[j].Name
	})
	return tracked, movers
}
