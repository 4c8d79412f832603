package interop

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// A verbatim copy of the rule in internal/testdep (this module does not
// depend on the main one); internal/testdep's TestCopiesAreVerbatim fails
// when the two differ.

// ---- rule: begin (keep the copies in test/interop and test/browser identical) ----

// ciMode reports whether CI is set to a true value (CI=true).
func ciMode() bool {
	ci, err := strconv.ParseBool(os.Getenv("CI"))
	return err == nil && ci
}

// missingDep fails the test under CI=true and skips it loudly otherwise:
// a skipped dependency must never let a CI run pass untested.
func missingDep(t testing.TB, what, how string) {
	t.Helper()
	msg := what + " is missing: " + how
	if ciMode() {
		t.Fatalf("CI=true, so a missing test dependency is a failure: %s", msg)
		return // only reached with a fake testing.TB
	}
	bar := strings.Repeat("#", 78)
	fmt.Fprintf(os.Stderr, "\n%s\n## TEST NOT RUN: %s\n%s\n\n", bar, msg, bar)
	t.Skipf("SKIP (LOUD): %s (under CI=true this is a failure)", msg)
}

// ---- rule: end ----
