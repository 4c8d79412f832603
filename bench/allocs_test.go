//go:build !race

// Allocation checks. Under -race sync.Pool drops items at random and the
// counts mean nothing: these tests do not exist there, and make test runs
// them in a separate pass without -race (make test-allocs).

package bench

import "testing"

// Classifying and verifying a push is on every received message of a
// broadcast run: it must not allocate, or the load generator measures its
// own garbage collector.
func TestWSDataParseAllocs(t *testing.T) {
	for _, size := range []int{wsDataMin, 1000, patternLen + 5000} {
		d := appendWSData(nil, 12345, 1764115200123456789, size)
		push := append(append([]byte(`{"channel":"bench","offset":7,"epoch":"Xk2p9QaZ","data":`), d...), '}')
		var st wsDataStatus
		allocs := testing.AllocsPerRun(100, func() {
			_, data, _ := classifyWS(push, []byte(`"bench"`))
			_, _, _, st = parseWSData(data)
		})
		if st != wsDataOK {
			t.Fatalf("size %d: parse status %d", size, st)
		}
		if allocs != 0 {
			t.Errorf("size %d: parsing a push allocates (%v)", size, allocs)
		}
	}
}
