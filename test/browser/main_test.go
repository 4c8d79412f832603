package browser

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run when a test leaves goroutines behind: chromedp's
// readers, the test's own proxies and waiters must all end with their
// browser and daemon.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
