package main

import (
	"context"
	"io/fs"
	"math"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// maxMemoryRule is how the default memory budget (--max-memory 0) is
// derived, in this order:
//
//   - GOMEMLIMIT set: 3/4 of it (the runtime's own limit must stay above
//     what clients can make wsd hold, or the GC thrashes before the budget
//     sheds anything);
//   - else half of the smaller of MemTotal and the cgroup's memory limit
//     (memory.max, or memory.limit_in_bytes on cgroup v1);
//   - else (neither readable) no budget.
//
// goMemLimit is debug.SetMemoryLimit(-1): math.MaxInt64 when unset.
func defaultMaxMemory(fsys fs.FS, goMemLimit int64) (budget int64, rule string) {
	if goMemLimit > 0 && goMemLimit < math.MaxInt64 {
		return goMemLimit / 4 * 3, "3/4 of GOMEMLIMIT"
	}
	box, rule := int64(0), ""
	if total, ok := readMeminfo(fsys, "MemTotal"); ok && total > 0 {
		box, rule = total, "1/2 of MemTotal"
	}
	if cg, file, err := cgroupLimit(fsys, "memory", "memory.max", "memory.limit_in_bytes"); err == nil && file != "" && cg > 0 && (box == 0 || cg < box) {
		box, rule = cg, "1/2 of the cgroup limit "+file
	}
	if box == 0 {
		return 0, "none: neither GOMEMLIMIT, MemTotal nor a cgroup limit known"
	}
	return box / 2, rule
}

// softLimitSlack covers what the runtime holds outside the heap's objects
// (stacks, GC metadata, the allocator's free spans) on top of the budget.
const softLimitSlack = 8 << 20

// softLimit is the Go soft memory limit that keeps the process near what
// the budget promises: the live heap that is not the clients' (idle
// connections, the hub), the budget, and softLimitSlack. The budget's
// marks (shed above 90%, down to 80%) leave the rest of it to the garbage
// that growing and shed buffers leave until the next GC. Without
// it, GOGC=100 lets the heap double past the live bytes before a GC, and
// a flood that the budget holds to 58 MiB of 64 grew wsd's RSS by 87 MiB.
func softLimit(heapLive, accounted, budget int64) int64 {
	return max(heapLive-accounted, 0) + budget + softLimitSlack
}

// followBudget sets the runtime's soft memory limit from softLimit once a
// second until ctx ends. Only when the operator did not set GOMEMLIMIT:
// theirs wins.
func followBudget(ctx context.Context, budget int64, accounted func() int64) {
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		metrics.Read(sample)
		debug.SetMemoryLimit(softLimit(int64(sample[0].Value.Uint64()), accounted(), budget))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
