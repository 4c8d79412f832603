package poller

import "testing"

func TestDefaultMaxConns(t *testing.T) {
	cases := []struct {
		limit uint64
		loops int
		want  int
	}{
		{20000, 4, 20000 - 400 - 4*fdsPerLoop},
		{20000, 0, 20000 - 400 - fdsPerLoop}, // at least one loop
		{1 << 20, 16, 1<<20 - (1<<20)/50 - 16*fdsPerLoop},
		{128, 8, 128 - 32 - 8*fdsPerLoop},
		{40, 8, 1}, // never 0: that would refuse every conn
		{0, 8, 1 << 30},
		{1 << 40, 8, 1 << 30},
	}
	for _, c := range cases {
		if got := DefaultMaxConns(c.limit, c.loops); got != c.want {
			t.Errorf("DefaultMaxConns(%d, %d) = %d, want %d", c.limit, c.loops, got, c.want)
		}
	}
}
