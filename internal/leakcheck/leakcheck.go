// Package leakcheck ends a test binary's TestMain with a goroutine leak
// check (goleak) for packages whose TestMain has work of its own to do
// around m.Run. Tests only.
package leakcheck

import (
	"fmt"
	"os"

	"go.uber.org/goleak"
)

// gnetGlobals are the two goroutines of gnet's package-level ants pool,
// started at init and never stopped: not a leak of any test's.
var gnetGlobals = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
	goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
}

// After returns code, or 1 when the tests passed but left goroutines
// running (listed on stderr).
func After(code int) int {
	if code != 0 {
		return code
	}
	if err := goleak.Find(gnetGlobals...); err != nil {
		fmt.Fprintln(os.Stderr, "leakcheck: goroutines left running after the tests:", err)
		return 1
	}
	return 0
}
