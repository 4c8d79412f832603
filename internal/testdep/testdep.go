// Package testdep is the one rule for tests that need a program from outside
// Go (nginx, node and the npm ws package, chromium, python3-websockets): on a
// developer's machine a missing one skips the test loudly and says how to
// install it; under CI=true it fails the test, because a CI run that skipped
// those tests would pass without testing what they test.
//
// The nested modules test/interop and test/browser do not depend on this
// module, so they carry a verbatim copy of the rule (the block between the
// "rule" markers below); TestCopiesAreVerbatim keeps the copies in step.
package testdep

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// InstallHint says how to get every test dependency.
const InstallHint = "scripts/install-test-deps.sh installs it (as root; make test runs it first)"

// Missing ends the calling test because the dependency what is not
// available; how says what was looked for and how to install it. Outside CI
// the test is skipped with a loud banner on stderr; under CI=true it fails.
// Like t.Fatal it must be called from the test's goroutine.
func Missing(t testing.TB, what, how string) {
	t.Helper()
	missingDep(t, what, how)
}

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
