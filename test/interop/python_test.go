package interop

import (
	"os"
	"strings"
	"testing"
)

// pythonWithWebsockets finds an interpreter that can import websockets:
// $WSD_PYTHON, then Debian's /usr/bin/python3 (where python3-websockets
// installs), then python3 on PATH.
func pythonWithWebsockets(t *testing.T) (python, version string) {
	t.Helper()
	candidates := []string{"/usr/bin/python3", "python3"}
	if p := os.Getenv("WSD_PYTHON"); p != "" {
		candidates = []string{p}
	}
	var tried []string
	for _, c := range candidates {
		p, ok := lookPath(c)
		if !ok {
			tried = append(tried, c+": not found")
			continue
		}
		out, ok := probe(".", p, "-c", "import websockets; print(websockets.__version__)")
		if ok {
			return p, out
		}
		lines := strings.Split(out, "\n")
		tried = append(tried, p+": "+lines[len(lines)-1])
	}
	missingDep(t, "python3-websockets", "tried "+strings.Join(tried, "; ")+"; "+installHint)
	return "", ""
}

// TestPythonWebsockets runs python/client.py (the `websockets` library,
// Debian's python3-websockets) against /echo.
func TestPythonWebsockets(t *testing.T) {
	d := needDaemon(t)
	python, version := pythonWithWebsockets(t)
	t.Logf("%s, websockets %s", python, version)
	dir := absDir(t, "python")
	runExternalChecks(t, d, dir, python, "client.py")
}
