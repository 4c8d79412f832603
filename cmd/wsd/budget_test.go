package main

import (
	"math"
	"testing"
	"testing/fstest"
)

func TestDefaultMaxMemory(t *testing.T) {
	meminfo := &fstest.MapFile{Data: []byte("MemTotal:       8388608 kB\nMemAvailable:   4194304 kB\n")}
	cgroup := &fstest.MapFile{Data: []byte("0::/wsd.service\n")}
	for _, tc := range []struct {
		name  string
		fsys  fstest.MapFS
		limit int64
		want  int64
	}{
		{"GOMEMLIMIT wins", fstest.MapFS{"proc/meminfo": meminfo}, 4 << 30, 3 << 30},
		{"MemTotal", fstest.MapFS{"proc/meminfo": meminfo}, math.MaxInt64, 4 << 30},
		{"cgroup below MemTotal", fstest.MapFS{"proc/meminfo": meminfo, "proc/self/cgroup": cgroup,
			"sys/fs/cgroup/wsd.service/memory.max": {Data: []byte("2147483648\n")}}, math.MaxInt64, 1 << 30},
		{"cgroup max is no limit", fstest.MapFS{"proc/meminfo": meminfo, "proc/self/cgroup": cgroup,
			"sys/fs/cgroup/wsd.service/memory.max": {Data: []byte("max\n")}}, math.MaxInt64, 4 << 30},
		{"nothing known", fstest.MapFS{}, math.MaxInt64, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, rule := defaultMaxMemory(tc.fsys, tc.limit)
			if got != tc.want {
				t.Fatalf("budget %d (%s), want %d", got, rule, tc.want)
			}
		})
	}
}
