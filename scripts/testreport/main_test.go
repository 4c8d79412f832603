package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A throwaway module whose tests pass, skip, fail, panic, and one package
// that does not compile: the real go test -json of this Go version.
var sample = map[string]string{
	"go.mod": "module example.com/sample\n\ngo 1.22\n",
	"ok/ok_test.go": `package ok
import "testing"
func TestPasses(t *testing.T) { t.Log("quiet when passing") }
func TestSkips(t *testing.T) { t.Skip("SKIP (LOUD): nginx is missing") }
func TestSub(t *testing.T) {
	t.Run("fine", func(t *testing.T) {})
	t.Run("skipped", func(t *testing.T) { t.Skipf("no %s here", "chromium") })
}
`,
	"bad/bad_test.go": `package bad
import "testing"
func TestFails(t *testing.T) { t.Error("the assertion that bit") }
func TestPanics(t *testing.T) { t.Log("before the panic"); panic("boom") }
`,
	"broken/broken_test.go": `package broken
import "testing"
func TestNothing(t *testing.T) { undefinedThing() }
`,
}

func sampleJSON(t *testing.T) []byte {
	t.Helper()
	dir := t.TempDir()
	for name, src := range sample {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", "test", "-count=1", "-json", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err == nil {
		t.Fatalf("go test of the sample module passed; it must fail\n%s", out)
	}
	return append(out, stderr.Bytes()...)
}

func TestFilterAndSummary(t *testing.T) {
	js := sampleJSON(t)

	var human bytes.Buffer
	if err := filter(bytes.NewReader(js), &human); err != errFailed {
		t.Errorf("filter: %v, want errFailed", err)
	}
	h := human.String()
	for _, want := range []string{
		"the assertion that bit",          // a failed test's output
		"before the panic", "panic: boom", // a test cut short by a panic
		"nginx is missing", "--- SKIP: TestSkips", // a skipped test and its reason
		"no chromium here",
		"undefinedThing",              // the build error
		"ok  \texample.com/sample/ok", // a package line
		"FAIL\texample.com/sample/bad",
	} {
		if !strings.Contains(h, want) {
			t.Errorf("filter output lacks %q:\n%s", want, h)
		}
	}
	if strings.Contains(h, "quiet when passing") {
		t.Errorf("filter printed a passing test's log:\n%s", h)
	}

	var r result
	if err := r.add(bytes.NewReader(js)); err != nil {
		t.Fatal(err)
	}
	var sum bytes.Buffer
	if err := r.print(&sum, false); err != nil {
		t.Errorf("summary without -ci: %v", err)
	}
	s := sum.String()
	for _, want := range []string{
		"skipped tests (2):",
		"example.com/sample/ok TestSkips: SKIP (LOUD): nginx is missing",
		"example.com/sample/ok TestSub/skipped: no chromium here",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	if r.failed < 2 || r.passed < 3 {
		t.Errorf("counted %d passed, %d failed; want ≥3 and ≥2", r.passed, r.failed)
	}
	if err := r.print(&sum, true); err == nil {
		t.Error("summary -ci with skipped tests succeeded")
	}
}

func TestSummaryNone(t *testing.T) {
	var r result
	js := `{"Action":"run","Package":"p","Test":"TestA"}
{"Action":"output","Package":"p","Test":"TestA","Output":"=== RUN   TestA\n"}
{"Action":"pass","Package":"p","Test":"TestA"}
{"Action":"skip","Package":"q"}
`
	if err := r.add(strings.NewReader(js)); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := r.print(&out, true); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "skipped tests: none") || r.passed != 1 {
		t.Errorf("%d passed:\n%s", r.passed, out.String())
	}
}
