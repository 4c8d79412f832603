package main

import (
	"io/fs"
	"math"
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
