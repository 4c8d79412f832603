package bench

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// idle --mode sse holds streams: GETs answered 200, bodies read and
// dropped, nothing pinged; a refused GET counts as a failed handshake.
func TestIdleSSE(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/sse" || r.Header.Get("Upgrade") != "" {
			http.Error(w, "no", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = w.Write([]byte(": hello\n\n"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(func() {
		close(stop)
		srv.CloseClientConnections()
		srv.Close()
	})
	addr := strings.TrimPrefix(srv.URL, "http://")
	res := quickRun(t, Config{Scenario: ScenarioIdle, Mode: ModeSSE, URL: "ws://" + addr + "/sse?channel=x", Conns: 50,
		Duration: time.Second, ServerPID: os.Getpid()})
	if res.ConnsUp != 50 || res.Errors != 0 || res.Lost != 0 || res.Totals.Pongs != 0 {
		t.Fatalf("%+v %v", res.Totals, res.ErrorReasons)
	}
	if res.ServerRSSBytesPerConn == nil {
		t.Fatal("RSS not sampled")
	}
	bad := quickRun(t, Config{Scenario: ScenarioIdle, Mode: ModeSSE, URL: "ws://" + addr + "/nothing", Conns: 5})
	if bad.ConnsUp != 0 || bad.ErrorReasons["handshake: HTTP 404"] != 5 {
		t.Fatalf("refused streams: up %d, reasons %v", bad.ConnsUp, bad.ErrorReasons)
	}
}
