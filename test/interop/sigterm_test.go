package interop

import (
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDaemonSIGTERM checks the daemon's shutdown contract (README.md) as a
// gorilla client sees it: on SIGTERM every open connection gets a close
// frame 1001 (going away) and the process exits 0 within its deadline.
func TestDaemonSIGTERM(t *testing.T) {
	needDaemon(t)
	const shutdown = 5 * time.Second
	d, err := startDaemon(daemonBin, "--shutdown-timeout", shutdown.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.alive() {
			d.kill()
		}
		if !t.Failed() {
			d.removeLog()
		}
	})

	var conns []*websocket.Conn
	for i := range 3 {
		c, _ := gorillaConn(t, d, i == 0, 0)
		gorillaEcho(t, c, websocket.TextMessage, []byte("before SIGTERM"))
		c.SetCloseHandler(func(int, string) error { return nil })
		conns = append(conns, c)
	}

	sent := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(shutdown + 2*time.Second))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Errorf("conn %d: want a close frame 1001 after SIGTERM, got %v", i, err)
			continue
		}
		if ce.Code != websocket.CloseGoingAway {
			t.Errorf("conn %d: close code %d %q after SIGTERM, want 1001 (going away)", i, ce.Code, ce.Text)
		}
		// Complete the close handshake as a well-behaved client does.
		c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(ce.Code, ""), time.Now().Add(time.Second))
	}

	select {
	case <-d.exited:
		if d.waitErr != nil {
			t.Fatalf("wsd exited with %v after SIGTERM, want status 0; log:\n%s", d.waitErr, d.logTail(30))
		}
		t.Logf("wsd exited 0, %v after SIGTERM", time.Since(sent).Round(time.Millisecond))
	case <-time.After(shutdown + 5*time.Second):
		t.Fatalf("wsd still running %v after SIGTERM (--shutdown-timeout %v); log:\n%s", shutdown+5*time.Second, shutdown, d.logTail(30))
	}
}
