package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

func TestMetricsAndHealth(t *testing.T) {
	d := startWSD(t, "--api-key", "k")
	c, err := wstest.Dial(d.Addr, "/ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(codec.OpText, []byte(`{"id":1,"op":"subscribe","channel":"news"}`))
	c.ReadData()
	publish(t, d.Addr, "k", "news", `{"n":1}`)
	c.ReadData()

	get := func(path string) string {
		resp, err := http.Get("http://" + d.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		return string(b)
	}
	if h := get("/healthz"); !strings.HasPrefix(h, "ok") {
		t.Fatalf("healthz: %q", h)
	}
	m := get("/metrics")
	for _, want := range []string{
		"wsd_connections ", `wsd_handshakes_total{result="upgraded"} 1`, `wsd_closes_total{cause="slow_consumer"}`,
		"wsd_messages_received_total 1", "wsd_sent_bytes_total", "wsd_fanout_deliveries_total 1",
		"wsd_worker_queue_depth", "wsd_slow_consumers_total 0", "wsd_history_entries 1", "wsd_subscriptions 1",
		"wsd_join_leave_pushes_total 0", "wsd_join_leave_capped_total 0", `wsd_closes_total{cause="accept_rate"} 0`,
		"go_goroutines",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
