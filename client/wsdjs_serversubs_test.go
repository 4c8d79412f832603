package client

import (
	"context"
	"fmt"
	"github.com/wsdhq/wsd/internal/testdep"
	"github.com/wsdhq/wsd/pubsub"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/wsdhq/wsd/wsproto"
)

// wsdjsAPI calls the node's HTTP API (in process) and fails the test on
// anything but a 200.
type wsdjsAPI struct {
	t   *testing.T
	api *wsproto.API
}

func (a wsdjsAPI) call(name, body string) {
	a.t.Helper()
	r := httptest.NewRequest("POST", "/api/"+name, strings.NewReader(body))
	r.Header.Set("Authorization", "apikey k")
	w := httptest.NewRecorder()
	a.api.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		a.t.Fatalf("/api/%s %s: %d %s", name, body, w.Code, w.Body.String())
	}
}

// wsdjsPubs lists the offsets of ch that reached wsd.js's 'publication'
// event, in the order they came.
func wsdjsPubs(d *jsDriver, ch string) []uint64 {
	var out []uint64
	for _, e := range d.events("publication") {
		if e.Channel == ch {
			out = append(out, e.Offset)
		}
	}
	return out
}

// wsdjsCut closes alice's connection from the server while the driver's
// browser is offline (so wsd.js waits for 'online' to come back), and
// waits until the node has let go of it.
func wsdjsCut(t *testing.T, d *jsDriver, a wsdjsAPI, h *wsproto.Handler) {
	t.Helper()
	d.send(map[string]any{"cmd": "offline"})
	a.call("disconnect", `{"user":"alice"}`)
	waitFor(t, "offline after the disconnect", func() bool {
		st := d.lastState()
		return st.State == "disconnected" && st.Info["offline"] == true
	})
	waitFor(t, "the node without connections", func() bool { c, _ := h.Connections(); return c == 0 })
}

// wsd.js against a real node with the HTTP API: the backend subscribes
// alice to a channel her token does not allow; wsd.js reports it and
// delivers its publications, resumes it after a reconnect with
// "server":true and since (every offset exactly once, in order, what was
// published while away included), reports the backend's unsubscribe, and
// one made while it was away (the resume's not_subscribed) as such, not
// as an error.
func TestWSDJSServerSubscriptions(t *testing.T) {
	n, h := startTokenNodeNS(t, pubsub.Namespaces{"": pubsub.DefaultNamespaceOptions()}) // with history
	a := wsdjsAPI{t, wsproto.NewAPI(h.Hub(), wsproto.APIConfig{Key: "k", Users: h})}
	tok, err := wsproto.NewToken(tokenSecret, "alice", []string{"news"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	d := startJSEnv(t, n.url(), "WSD_TOKEN="+tok)
	d.send(map[string]any{"cmd": "subscribe", "channel": "news"})
	waitFor(t, "subscribed to news", func() bool { return len(d.events("subscribed")) == 1 })
	waitFor(t, "alice on the node", func() bool { _, u := h.Connections(); return u == 1 })

	a.call("subscribe", `{"user":"alice","channel":"alerts"}`)
	waitFor(t, "serverSubscribe", func() bool { return len(d.events("serverSubscribe")) == 1 })
	if e := d.events("serverSubscribe")[0]; e.Channel != "alerts" || e.Offset != 0 || e.Epoch == "" {
		t.Fatalf("serverSubscribe %+v", e)
	}
	for i := 1; i <= 3; i++ {
		a.call("publish", fmt.Sprintf(`{"channel":"alerts","data":%d}`, i))
	}
	waitFor(t, "alerts 1..3", func() bool { return len(wsdjsPubs(d, "alerts")) >= 3 })

	wsdjsCut(t, d, a, h)
	for i := 4; i <= 6; i++ {
		a.call("publish", fmt.Sprintf(`{"channel":"alerts","data":%d}`, i))
	}
	d.send(map[string]any{"cmd": "online"})
	waitFor(t, "alerts 4..6 after the reconnect", func() bool { return len(wsdjsPubs(d, "alerts")) >= 6 })
	if st := d.lastState(); st.State != "connected" || st.Reconnects != 1 {
		t.Fatalf("state %+v", st)
	}
	rec := d.events("recover")
	if len(rec) == 0 {
		t.Fatal("no recover event for the resumes")
	}
	for _, r := range rec {
		if !r.Recovered {
			t.Fatalf("recover events %+v", rec)
		}
	}
	// A barrier: news comes after everything queued for alerts before it.
	a.call("publish", `{"channel":"news","data":"barrier 1"}`)
	waitFor(t, "the first barrier", func() bool { return len(d.offsets("news")) == 1 })
	if got := wsdjsPubs(d, "alerts"); !equalU64(got, seq(1, 6)) {
		t.Fatalf("alerts offsets %v, want 1..6 once each", got)
	}
	if n := len(d.events("serverSubscribe")); n != 1 {
		t.Fatalf("%d serverSubscribe events: the push after the reconnect must give way to the resume", n)
	}

	a.call("unsubscribe", `{"user":"alice","channel":"alerts"}`)
	waitFor(t, "serverUnsubscribe", func() bool { return len(d.events("serverUnsubscribe")) == 1 })
	a.call("publish", `{"channel":"alerts","data":7}`)
	a.call("publish", `{"channel":"news","data":"barrier 2"}`)
	waitFor(t, "the second barrier", func() bool { return len(d.offsets("news")) == 2 })
	if got := wsdjsPubs(d, "alerts"); len(got) != 6 {
		t.Fatalf("alerts offsets %v after the unsubscribe", got)
	}

	// Subscribed again, then ended while wsd.js is away.
	a.call("subscribe", `{"user":"alice","channel":"alerts"}`)
	waitFor(t, "serverSubscribe again", func() bool { return len(d.events("serverSubscribe")) == 2 })
	if e := d.events("serverSubscribe")[1]; e.Offset != 7 {
		t.Fatalf("second serverSubscribe %+v, want offset 7", e)
	}
	a.call("publish", `{"channel":"alerts","data":8}`)
	waitFor(t, "alerts 8", func() bool { return len(wsdjsPubs(d, "alerts")) == 7 })
	wsdjsCut(t, d, a, h)
	a.call("unsubscribe", `{"user":"alice","channel":"alerts"}`)
	d.send(map[string]any{"cmd": "online"})
	waitFor(t, "serverUnsubscribe after the reconnect", func() bool { return len(d.events("serverUnsubscribe")) == 2 })
	if e := d.events("serverUnsubscribe")[1]; e.Channel != "alerts" {
		t.Fatalf("serverUnsubscribe %+v", e)
	}
	a.call("publish", `{"channel":"alerts","data":9}`)
	a.call("publish", `{"channel":"news","data":"barrier 3"}`)
	waitFor(t, "the third barrier", func() bool { return len(d.offsets("news")) == 3 })
	if got := wsdjsPubs(d, "alerts"); !equalU64(got, append(seq(1, 6), 8)) {
		t.Fatalf("alerts offsets %v", got)
	}
	if errs := d.events("error"); len(errs) != 0 {
		t.Fatalf("error events %+v", errs)
	}
	if st := h.Stats(); st.Errors["forbidden"] != 0 {
		t.Fatalf("stats %+v: a resume went out as a plain subscribe", st)
	}
}

// wsd.js's server-side subscriptions in the cases a real node does not
// produce on demand (testdata/wsdjs_serversubs_unit.js, a scripted
// WebSocket): a push for a channel held live is ignored, a gap restarts
// the subscription in place with "server":true (an unsubscribe would end
// it), unsubscribed ends a subscription of the client's own too, and a
// resume answered not_subscribed is a serverUnsubscribe, not an error.
func TestWSDJSServerSubscriptionsScripted(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testdep.Missing(t, "node (Debian nodejs)", testdep.InstallHint+"; without it wsd.js is not exercised")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "testdata/wsdjs_serversubs_unit.js", "../web/wsd.js").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("%v: %s", err, out)
	}
}
