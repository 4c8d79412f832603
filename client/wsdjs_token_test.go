package client

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/wsproto"
)

// tokenEndpoint is a backend's token endpoint for wsd.js's getToken: every
// call gets a fresh 2 s token for "alice", except the calls listed in fail
// (1-based), which get a 500.
func tokenEndpoint(t *testing.T, fail ...int32) (url string, calls *atomic.Int32) {
	t.Helper()
	calls = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		n := calls.Add(1)
		for _, f := range fail {
			if n == f {
				http.Error(w, "token backend down", http.StatusInternalServerError)
				return
			}
		}
		tok, err := wsproto.NewToken(tokenSecret, "alice", []string{"*"}, 2*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(tok))
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

// wsd.js with getToken against a real node: 2 s tokens refreshed on the
// server's notices keep the connection.
func TestWSDJSTokenRefresh(t *testing.T) {
	n, h := startTokenNode(t)
	url, _ := tokenEndpoint(t)
	d := startJSEnv(t, n.url(), "WSD_TOKEN_URL="+url)
	d.send(map[string]any{"cmd": "subscribe", "channel": "news"})
	waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	waitFor(t, "two refreshes", func() bool { return len(d.events("refresh")) >= 2 })
	for _, e := range d.events("state") {
		if e.State == "disconnected" {
			t.Fatalf("disconnected: %+v", e.Info)
		}
	}
	if st := h.Stats(); st.Refreshes < 2 || st.TokenExpired != 0 {
		t.Fatalf("stats %+v", st)
	}
	if exp, ok := d.events("refresh")[0].Info["exp"].(float64); !ok || exp < float64(time.Now().Unix()-5) {
		t.Fatalf("refresh event %+v", d.events("refresh")[0].Info)
	}
}

// When getToken fails on the notice, the server closes with 3000 at exp and
// wsd.js reconnects with a fresh token, its subscription resumed.
func TestWSDJSTokenExpiredReconnects(t *testing.T) {
	n, h := startTokenNode(t)
	url, _ := tokenEndpoint(t, 2)
	d := startJSEnv(t, n.url(), "WSD_TOKEN_URL="+url)
	d.send(map[string]any{"cmd": "subscribe", "channel": "news"})
	waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	waitFor(t, "the refresh error", func() bool { return len(d.events("error")) == 1 })
	waitFor(t, "the reconnect", func() bool { s := d.lastState(); return s.State == "connected" && s.Reconnects == 1 })
	var closed []jsEvent
	for _, e := range d.events("state") {
		if e.State == "disconnected" {
			closed = append(closed, e)
		}
	}
	if len(closed) != 1 || closed[0].Info["code"] != float64(wsproto.CloseTokenExpired) || closed[0].Info["reason"] != "token expired" {
		t.Fatalf("disconnects %+v", closed)
	}
	if st := h.Stats(); st.TokenExpired != 1 {
		t.Fatalf("stats %+v", st)
	}
	d.send(map[string]any{"cmd": "publish", "channel": "news", "data": "after", "tag": "p"})
	waitFor(t, "the publication", func() bool { return len(d.offsets("news")) == 1 })
}

// wsd.js's getChannelToken: a private channel is subscribed with a channel
// token, and again after the connection expired and came back (with a
// fresh one: each is valid 2 s and checked at subscribe).
func TestWSDJSChannelToken(t *testing.T) {
	ns := pubsub.Namespaces{"": pubsub.DefaultNamespaceOptions(), "team": {HistorySize: 10, Presence: true, Private: true}}
	n, h := startTokenNodeNS(t, ns)
	url, _ := tokenEndpoint(t, 2)
	var chanCalls atomic.Int32
	chanSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chanCalls.Add(1)
		tok, err := wsproto.NewChannelToken(tokenSecret, "alice", r.URL.Query().Get("channel"), 2*time.Second)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(tok))
	}))
	t.Cleanup(chanSrv.Close)
	d := startJSEnv(t, n.url(), "WSD_TOKEN_URL="+url, "WSD_CHANNEL_TOKEN_URL="+chanSrv.URL)
	d.send(map[string]any{"cmd": "subscribe", "channel": "team:x"})
	waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	waitFor(t, "the reconnect", func() bool { s := d.lastState(); return s.State == "connected" && s.Reconnects == 1 })
	d.send(map[string]any{"cmd": "publish", "channel": "team:x", "data": "after", "tag": "p"})
	waitFor(t, "the publication", func() bool { return len(d.offsets("team:x")) == 1 })
	if st := h.Stats(); st.TokenExpired != 1 || st.Errors["bad_token"] != 0 || st.Errors["forbidden"] != 0 || chanCalls.Load() < 2 {
		t.Fatalf("stats %+v, channel token calls %d", st, chanCalls.Load())
	}
}
