package interop

import (
	"os"
	"path/filepath"
	"testing"
)

// TestNodeWs runs node/client.js (npm `ws`, installed into node/node_modules
// by scripts/install-test-deps.sh) against /echo.
func TestNodeWs(t *testing.T) {
	d := needDaemon(t)
	nodeName := "node"
	if n := os.Getenv("WSD_NODE"); n != "" {
		nodeName = n
	}
	node, ok := lookPath(nodeName)
	if !ok {
		missingDep(t, "node (Debian nodejs)", installHint)
	}
	dir := absDir(t, "node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws", "package.json")); err != nil {
		missingDep(t, "npm package ws in "+dir, installHint+" (it runs `npm ci` there)")
	}
	out, ok := probe(dir, node, "-e", "process.stdout.write(process.version + ' ws ' + require('ws/package.json').version)")
	if !ok {
		missingDep(t, "a ws that "+node+" can load from "+dir, out+"; "+installHint)
	}
	t.Logf("node %s", out)
	runExternalChecks(t, d, dir, node, "client.js")
}
