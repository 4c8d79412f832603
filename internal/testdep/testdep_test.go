package testdep

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a test was ended instead of
// ending it.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                           {}
func (r *recorder) Fatalf(format string, args ...any) { r.fatal = format }
func (r *recorder) Skipf(format string, args ...any)  { r.skip = format }

func TestMissingFailsUnderCI(t *testing.T) {
	for _, v := range []string{"true", "1", "TRUE"} {
		t.Setenv("CI", v)
		var r recorder
		Missing(&r, "nginx", InstallHint)
		if r.fatal == "" || r.skip != "" {
			t.Errorf("CI=%s: fatal %q, skip %q; want a failure and no skip", v, r.fatal, r.skip)
		}
	}
}

func TestMissingSkipsOutsideCI(t *testing.T) {
	for _, v := range []string{"", "false", "0", "yes-ish"} {
		t.Setenv("CI", v)
		var r recorder
		Missing(&r, "nginx", InstallHint)
		if r.skip == "" || r.fatal != "" {
			t.Errorf("CI=%q: fatal %q, skip %q; want a skip and no failure", v, r.fatal, r.skip)
		}
	}
}

// The nested modules cannot import this package; their copies of the rule
// must not drift from it.
func TestCopiesAreVerbatim(t *testing.T) {
	want := ruleBlock(t, "testdep.go")
	for _, path := range []string{"../../test/interop/testdep_test.go", "../../test/browser/testdep_test.go"} {
		if got := ruleBlock(t, path); !bytes.Equal(got, want) {
			t.Errorf("%s: the rule differs from internal/testdep/testdep.go; copy the block between the markers verbatim", path)
		}
	}
}

func ruleBlock(t *testing.T, path string) []byte {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "// ---- rule: begin", "// ---- rule: end ----"
	i, j := bytes.Index(src, []byte(begin)), bytes.Index(src, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s: no block between %q and %q", path, begin, strings.TrimSpace(end))
	}
	return src[i : j+len(end)]
}
