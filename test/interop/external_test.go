package interop

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The checks every external client script implements; the script takes
// `URL CHECK`, exits 0 on success and prints "FAIL: reason" otherwise.
var externalChecks = []string{"text", "binary", "big", "fragmented", "compressed", "close"}

const (
	externalTimeout = 60 * time.Second
	installHint     = "run scripts/install-test-deps.sh (or `make test`, which runs it)"
)

// runExternalChecks runs `argv... URL CHECK` for every check as a subtest.
func runExternalChecks(t *testing.T, d *wsdProcess, dir string, argv ...string) {
	for _, check := range externalChecks {
		t.Run(check, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), externalTimeout)
			defer cancel()
			args := append(append([]string{}, argv[1:]...), d.url("/echo"), check)
			cmd := exec.CommandContext(ctx, argv[0], args...)
			cmd.Dir = dir
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if out := strings.TrimSpace(stdout.String()); out != "" {
				t.Log(out)
			}
			if ctx.Err() != nil {
				t.Fatalf("%s %s: no result within %v\nstderr:\n%s", filepath.Base(argv[len(argv)-1]), check, externalTimeout, stderr.String())
			}
			if err != nil {
				t.Fatalf("%s check %q against %s: %v\n%s", filepath.Base(argv[len(argv)-1]), check, d.url("/echo"), err, strings.TrimSpace(stderr.String()))
			}
		})
	}
}

// probe runs a command that must exit 0 quickly; it returns its combined
// output and whether it succeeded.
func probe(dir string, name string, args ...string) (string, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err == nil
}

func absDir(t *testing.T, rel string) string {
	t.Helper()
	dir, err := filepath.Abs(rel)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	return dir
}

// lookPath is exec.LookPath for a name or an absolute path.
func lookPath(name string) (string, bool) {
	p, err := exec.LookPath(name)
	if err != nil && !errors.Is(err, exec.ErrDot) {
		return "", false
	}
	return p, p != ""
}
