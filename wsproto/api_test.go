package wsproto

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
)

type fakeFrame struct{ b []byte }

type nopSub struct{}

func (nopSub) Deliver(*fakeFrame) {}

func apiHub(t *testing.T) *pubsub.Hub[*fakeFrame] {
	t.Helper()
	h, err := pubsub.NewHub(pubsub.NewMemory(pubsub.MemoryOptions{}), pubsub.HubOptions[*fakeFrame]{
		Encode: func(b []byte) *fakeFrame { return &fakeFrame{b} }, Namespaces: defaultNS()})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func do(t *testing.T, h http.Handler, method, target, auth, body string) (int, string) {
	t.Helper()
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	b, _ := io.ReadAll(w.Result().Body)
	if ct := w.Result().Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, target, ct)
	}
	return w.Code, string(b)
}

func TestAPIAuth(t *testing.T) {
	off := NewAPI(apiHub(t), APIConfig{})
	for _, target := range []string{"/api/publish", "/api/channels", "/api/presence?channel=x"} {
		if code, body := do(t, off, "POST", target, "apikey anything", `{}`); code != 403 || !strings.Contains(body, CodeAPIDisabled) {
			t.Fatalf("no key configured, %s: %d %s", target, code, body)
		}
	}
	api := NewAPI(apiHub(t), APIConfig{Key: "k3y"})
	for _, auth := range []string{"", "apikey wrong", "Bearer k3y", "apikey", "apikey k3y2"} {
		if code, body := do(t, api, "GET", "/api/channels", auth, ""); code != 401 || !strings.Contains(body, CodeUnauthorized) {
			t.Fatalf("auth %q: %d %s", auth, code, body)
		}
	}
	if code, _ := do(t, api, "GET", "/api/channels", "APIKEY k3y", ""); code != 200 {
		t.Fatalf("right key: %d", code)
	}
	if st := api.Stats(); st.Rejected != 5 || st.Requests != 6 {
		t.Fatalf("stats %+v", st)
	}
}

func TestAPIEndpoints(t *testing.T) {
	hub := apiHub(t)
	api := NewAPI(hub, APIConfig{Key: "k", MaxDataBytes: 64})
	const auth = "apikey k"
	code, body := do(t, api, "POST", "/api/publish", auth, `{"channel":"news","data":{"a":1}}`)
	var pr PublishResult
	if code != 200 || json.Unmarshal([]byte(body), &pr) != nil || pr.Offset != 1 || pr.Epoch == "" {
		t.Fatalf("publish: %d %s", code, body)
	}
	// "none" means clients may not publish; the server side may.
	if code, body := do(t, api, "POST", "/api/publish", auth, `{"channel":"feed:x","data":1}`); code != 200 {
		t.Fatalf("publish feed: %d %s", code, body)
	}
	for _, c := range []struct {
		method, target, body string
		status               int
		code                 string
	}{
		{"GET", "/api/publish", "", 405, CodeMethodNotAllowed},
		{"POST", "/api/publish", `{"channel":"news"`, 400, CodeBadRequest},
		{"POST", "/api/publish", `{"channel":"news"}`, 400, CodeBadRequest},
		{"POST", "/api/publish", `{"data":1}`, 400, CodeBadRequest},
		{"POST", "/api/publish", `{"channel":"bad name","data":1}`, 400, CodeBadChannel},
		{"POST", "/api/publish", `{"channel":"news","data":"` + strings.Repeat("x", 100) + `"}`, 413, CodeTooLarge},
		{"POST", "/api/publish", `{"channel":"news","data":"` + strings.Repeat("x", 10000) + `"}`, 413, CodeTooLarge},
		{"PUT", "/api/channels", "", 405, CodeMethodNotAllowed},
		{"GET", "/api/batch", "", 405, CodeMethodNotAllowed},
		{"POST", "/api/publish", `{"channel":"news","chanel":"x","data":1}`, 400, CodeBadRequest},
		{"POST", "/api/publish", `{"channel":"news","channels":["a"],"data":1}`, 400, CodeBadRequest},
		{"POST", "/api/publish", `[1]`, 400, CodeBadRequest},
		{"POST", "/api/batch", `{"commands":[]}`, 400, CodeBadRequest},
		{"POST", "/api/history", `{"channel":"news","limit":-1}`, 400, CodeBadRequest},
		{"POST", "/api/disconnect", `{}`, 400, CodeBadRequest},
		{"POST", "/api/disconnect", `{"user":"a","reconnect_after":0}`, 400, CodeBadRequest},
		{"POST", "/api/batch", `{"commands":[{"method":"publish"}],"pad":"` + strings.Repeat("x", 1<<20) + `"}`, 413, CodeTooLarge},
		{"GET", "/api/presence", "", 400, CodeBadRequest},
		{"GET", "/api/presence?channel=bare:x", "", 400, CodePresenceDisabled},
		{"GET", "/api/nothing", "", 404, CodeNotFound},
	} {
		code, body := do(t, api, c.method, c.target, auth, c.body)
		var r Reply
		_ = json.Unmarshal([]byte(body), &r)
		if code != c.status || r.Error == nil || r.Error.Code != c.code {
			t.Errorf("%s %s %.40s: %d %s, want %d %s", c.method, c.target, c.body, code, body, c.status, c.code)
		}
	}

	ctx := context.Background()
	for _, client := range []string{"bob", "alice", "bob"} {
		if _, _, err := hub.Subscribe(ctx, "room:1", nopSub{}, pubsub.SubscribeOptions{ClientID: client}); err != nil {
			t.Fatal(err)
		}
	}
	_, _, _ = hub.Subscribe(ctx, "news", nopSub{}, pubsub.SubscribeOptions{ClientID: "x"})
	code, body = do(t, api, "GET", "/api/channels", auth, "")
	if code != 200 || body != `{"channels":[{"channel":"news","subscribers":1},{"channel":"room:1","subscribers":3}]}`+"\n" {
		t.Fatalf("channels: %d %s", code, body)
	}
	code, body = do(t, api, "GET", "/api/presence?channel=room:1", auth, "")
	if code != 200 || body != `{"channel":"room:1","count":2,"connections":3,"clients":["alice","bob"]}`+"\n" {
		t.Fatalf("presence: %d %s", code, body)
	}
	// Single endpoints work wherever they are mounted.
	if code, _ := do(t, api.Channels(), "GET", "/elsewhere", auth, ""); code != 200 {
		t.Fatalf("mounted alone: %d", code)
	}
}

// TestHTTPPublishReachesWebSocket: the API on the same hub as /ws.
func TestHTTPPublishReachesWebSocket(t *testing.T) {
	e := start(t, Config{}, nil)
	ts := httptest.NewServer(NewAPI(e.hub, APIConfig{Key: "k"}))
	defer ts.Close()
	a := e.dial(t)
	a.ok(`{"id":1,"op":"subscribe","channel":"feed:ticker"}`, nil)
	a.fails(`{"id":2,"op":"publish","channel":"feed:ticker","data":1}`, CodeForbidden)
	req, _ := http.NewRequest("POST", ts.URL+"/api/publish", strings.NewReader(`{"channel":"feed:ticker","data":{"price":101.5}}`))
	req.Header.Set("Authorization", "apikey k")
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if m := a.push("feed:ticker", 1); string(m.Data) != `{"price":101.5}` {
		t.Fatalf("push %s", m.Data)
	}
}

// TestReconnectLosesNothing: a subscriber whose connection drops three
// times while publications go on gets every one, once, in order.
func TestReconnectLosesNothing(t *testing.T) {
	const total = 300
	e := start(t, Config{RateLimit: -1}, pubsub.Namespaces{"": {HistorySize: 1000}})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= total; i++ {
			if _, err := e.hub.Publish(context.Background(), "news", []byte(fmt.Sprint(i))); err != nil {
				panic(err)
			}
			if i%10 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	var seen []uint64
	var since *SubscribeResult
	for round := 0; len(seen) < total; round++ {
		c := e.dial(t)
		req := `{"id":1,"op":"subscribe","channel":"news"}`
		if since != nil {
			req = fmt.Sprintf(`{"id":1,"op":"subscribe","channel":"news","since":{"offset":%d,"epoch":%q}}`, since.Offset, since.Epoch)
		}
		var r SubscribeResult
		c.ok(req, &r)
		if since != nil && !r.Recovered {
			t.Fatalf("round %d: not recovered: %+v", round, r)
		}
		if since == nil {
			since = &SubscribeResult{Epoch: r.Epoch}
			for i := uint64(1); i <= r.Offset; i++ {
				seen = append(seen, i) // published before we first came: history, not the test
			}
			since.Offset = r.Offset
		}
		n := 40
		if round >= 3 {
			n = total
		}
		for range n {
			if len(seen) == total {
				break
			}
			m := c.read()
			seen = append(seen, m.Offset)
			since.Offset = m.Offset
		}
		c.c.Close()
	}
	wg.Wait()
	for i, o := range seen {
		if o != uint64(i+1) {
			t.Fatalf("position %d: offset %d (seen %v)", i, o, seen)
		}
	}
}
