package wsproto

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
)

type sseEnv struct {
	*env
	sse *SSE
}

// startSSE is start with /sse routed too.
func startSSE(t testing.TB, cfg Config, ns pubsub.Namespaces, opts server.Options) *sseEnv {
	t.Helper()
	if ns == nil {
		ns = pubsub.Namespaces{"": {HistorySize: 1000, Presence: true}, "priv": {HistorySize: 10, Private: true}}
	}
	var x *SSE
	e := startWith(t, cfg, ns, opts, func(srv *server.Server[Session], h *Handler) {
		x = h.SSE()
		srv.HandleStream("/sse", SSEContentType, x)
	})
	return &sseEnv{env: e, sse: x}
}

type sseEv struct {
	event, id, data string
	raw             []byte
	hasID           bool
}

type sseClient struct {
	t      testing.TB
	nc     net.Conn
	br     *bufio.Reader
	status int
	lastID string // as a browser keeps it
}

// openSSE sends GET target with extra header lines and reads the head.
func (e *sseEnv) openSSE(t testing.TB, target string, headers ...string) *sseClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", e.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	req := "GET " + target + " HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
	for _, h := range headers {
		req += h + "\r\n"
	}
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("head: %v", err)
	}
	if resp.StatusCode == 200 && resp.Header.Get("Content-Type") != SSEContentType {
		t.Fatalf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	return &sseClient{t: t, nc: nc, br: br, status: resp.StatusCode}
}

// next returns the next dispatched event (comments skipped), updating
// lastID as EventSource does.
func (c *sseClient) next() sseEv {
	c.t.Helper()
	var ev sseEv
	var data []string
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			c.t.Fatalf("reading the stream: %v (partial %q)", err, ev.raw)
		}
		ev.raw = append(ev.raw, line...)
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if ev.hasID {
				c.lastID = ev.id
			}
			if len(data) == 0 {
				ev = sseEv{}
				continue
			}
			ev.data = strings.Join(data, "\n")
			return ev
		case strings.HasPrefix(line, ":"):
			ev.raw = ev.raw[:len(ev.raw)-len(line)-1]
		case strings.HasPrefix(line, "event: "):
			ev.event = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			ev.id, ev.hasID = line[len("id: "):], true
		case strings.HasPrefix(line, "data: "):
			data = append(data, line[len("data: "):])
		default:
			c.t.Fatalf("unexpected line %q", line)
		}
	}
}

func (c *sseClient) expect(event string) sseEv {
	c.t.Helper()
	ev := c.next()
	if ev.event != event {
		c.t.Fatalf("got event %q (%q), want %q", ev.event, ev.data, event)
	}
	return ev
}

func (e *sseEnv) publish(t testing.TB, channel, data string) pubsub.StreamPosition {
	t.Helper()
	pos, err := e.hub.Publish(context.Background(), channel, []byte(data))
	if err != nil {
		t.Fatalf("publish %s: %v", channel, err)
	}
	return pos
}

type subscribedEv struct {
	Channels map[string]SubscribeResult `json:"channels"`
}

// A publication's event, byte for byte: the id with every channel's
// position in the query's order, the event type, the push JSON split into
// data lines at its line breaks.
func TestSSEPublicationBytes(t *testing.T) {
	e := startSSE(t, Config{}, nil, server.Options{})
	c := e.openSSE(t, "/sse?channel=news&channel=ticker")
	if c.status != 200 {
		t.Fatalf("status %d", c.status)
	}
	sub := c.expect("subscribed")
	var s subscribedEv
	if err := json.Unmarshal([]byte(sub.data), &s); err != nil || len(s.Channels) != 2 {
		t.Fatalf("subscribed data %q: %v", sub.data, err)
	}
	en, et := s.Channels["news"].Epoch, s.Channels["ticker"].Epoch
	if sub.id != en+":0,"+et+":0" {
		t.Fatalf("subscribed id %q", sub.id)
	}
	e.publish(t, "news", `{"a":1}`)
	want := fmt.Sprintf("id: %s:1,%s:0\nevent: publication\ndata: {\"channel\":\"news\",\"offset\":1,\"epoch\":\"%s\",\"data\":{\"a\":1}}\n\n", en, et, en)
	if ev := c.next(); string(ev.raw) != want {
		t.Fatalf("event bytes\n got %q\nwant %q", ev.raw, want)
	}
	e.publish(t, "ticker", "{\"p\":\r\n2,\n\"q\":3}")
	want = fmt.Sprintf("id: %s:1,%s:1\nevent: publication\ndata: {\"channel\":\"ticker\",\"offset\":1,\"epoch\":\"%s\",\"data\":{\"p\":\ndata: 2,\ndata: \"q\":3}}\n\n", en, et, et)
	ev := c.next()
	if string(ev.raw) != want {
		t.Fatalf("event bytes\n got %q\nwant %q", ev.raw, want)
	}
	var push struct{ Data struct{ P, Q int } }
	if err := json.Unmarshal([]byte(ev.data), &push); err != nil || push.Data.P != 2 || push.Data.Q != 3 {
		t.Fatalf("joined data lines %q do not parse back: %v", ev.data, err)
	}
	if st := e.sse.Stats(); st.Open != 1 || st.Opened != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A browser's reconnect with Last-Event-ID, while publications continue
// on both channels, gets every publication exactly once and in order.
func TestSSEResumeExactlyOnce(t *testing.T) {
	e := startSSE(t, Config{}, nil, server.Options{})
	const n = 300
	seen := map[string][]uint64{}
	record := func(t *testing.T, ev sseEv) {
		var p struct {
			Channel string
			Offset  uint64
		}
		if err := json.Unmarshal([]byte(ev.data), &p); err != nil {
			t.Fatalf("publication %q: %v", ev.data, err)
		}
		seen[p.Channel] = append(seen[p.Channel], p.Offset)
	}
	c := e.openSSE(t, "/sse?channel=a&channel=b")
	c.expect("subscribed")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range n {
			for _, ch := range []string{"a", "b"} {
				if _, err := e.hub.Publish(context.Background(), ch, fmt.Appendf(nil, "%d", i)); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
			if i%20 == 0 {
				time.Sleep(time.Millisecond) // spread the publications over the reconnects
			}
		}
	}()
	defer wg.Wait()
	got := 0
	for cut := 0; got < 2*n; cut++ {
		// Read a few, drop the conn (unread bytes are lost, as on a cut
		// link), reconnect with the last id seen.
		for i := 0; i < 37 && got < 2*n; i++ {
			ev := c.next()
			switch ev.event {
			case "subscribed": // once every channel is in: may follow publications
				i--
				continue
			case "publication":
			default:
				t.Fatalf("event %q %q (want no reset)", ev.event, ev.data)
			}
			record(t, ev)
			got++
		}
		if got >= 2*n || cut > 40 {
			break
		}
		last := c.lastID
		c.nc.Close()
		c = e.openSSE(t, "/sse?channel=a&channel=b", "Last-Event-ID: "+last)
		if c.status != 200 {
			t.Fatalf("reconnect: %d", c.status)
		}
	}
	for _, ch := range []string{"a", "b"} {
		offs := seen[ch]
		if len(offs) != n {
			t.Errorf("channel %s: %d publications, want %d", ch, len(offs), n)
		}
		for i, o := range offs {
			if o != uint64(i+1) {
				t.Fatalf("channel %s: publication %d has offset %d: lost or doubled", ch, i, o)
			}
		}
	}
	if st := e.sse.Stats(); st.Resets != 0 || st.Recovered == 0 {
		t.Fatalf("stats %+v: want recoveries and no reset", st)
	}
}

// A Last-Event-ID from another epoch, or one that does not fit the URL's
// channels, cannot be resumed: a reset event says where the stream starts.
func TestSSEResetEvent(t *testing.T) {
	e := startSSE(t, Config{}, nil, server.Options{})
	e.publish(t, "news", `1`)
	pos := e.publish(t, "news", `2`)
	c := e.openSSE(t, "/sse?channel=news&channel=other", "Last-Event-ID: oldepoch:7,")
	r := c.expect("reset")
	want := fmt.Sprintf(`{"channel":"news","epoch":"%s","offset":2}`, pos.Epoch)
	if r.data != want || r.id != pos.Epoch+":2," {
		t.Fatalf("reset %q id %q, want %q id %q", r.data, r.id, want, pos.Epoch+":2,")
	}
	sub := c.expect("subscribed")
	if !strings.Contains(sub.data, `"recovered":false`) {
		t.Fatalf("subscribed %q", sub.data)
	}
	e.publish(t, "news", `3`)
	if ev := c.expect("publication"); !strings.Contains(ev.data, `"offset":3`) {
		t.Fatalf("live after reset: %q", ev.data)
	}

	// Two positions for one channel: the id is another URL's.
	c2 := e.openSSE(t, "/sse?channel=news", "Last-Event-ID: "+pos.Epoch+":1,x:1")
	c2.expect("reset")
	c2.expect("subscribed")
	if st := e.sse.Stats(); st.Resets != 2 {
		t.Fatalf("resets %d, want 2", st.Resets)
	}

	// The right epoch resumes: the publication after the id, no reset.
	c3 := e.openSSE(t, "/sse?channel=news", "Last-Event-ID: "+pos.Epoch+":2")
	if ev := c3.next(); ev.event != "publication" || !strings.Contains(ev.data, `"offset":3`) {
		t.Fatalf("resumed: %q %q", ev.event, ev.data)
	}
}

// Auth and channel checks: the token in the query or the cookie, 401
// without or with a bad one, 403 for a channel the token does not allow,
// 400 for bad channels, duplicates and too many.
func TestSSERefusals(t *testing.T) {
	const secret = "sse-secret"
	e := startSSE(t, Config{TokenSecret: secret, MaxSubscriptions: 2}, nil, server.Options{})
	tok, err := NewToken(secret, "ann", []string{"news", "chat:*"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target string
		header string
		status int
	}{
		{"/sse?channel=news", "", 401},
		{"/sse?channel=news&token=bad", "", 401},
		{"/sse?channel=news&token=" + tok, "", 200},
		{"/sse?channel=news", "Cookie: other=1; " + SSETokenCookie + "=" + tok, 200},
		{"/sse?channel=news", "Authorization: Bearer " + tok, 200},
		{"/sse?channel=secret&token=" + tok, "", 403},
		{"/sse?channel=priv:x&token=" + tok, "", 403},
		{"/sse?channel=bad*name&token=" + tok, "", 400},
		{"/sse?token=" + tok, "", 400},
		{"/sse?channel=news&channel=news&token=" + tok, "", 400},
		{"/sse?channel=news&channel=chat:a&channel=chat:b&token=" + tok, "", 400},
	} {
		var hs []string
		if tc.header != "" {
			hs = append(hs, tc.header)
		}
		c := e.openSSE(t, tc.target, hs...)
		if c.status != tc.status {
			t.Errorf("%s %q: status %d, want %d", tc.target, tc.header, c.status, tc.status)
		}
		if c.status == 200 {
			c.expect("subscribed")
		}
		c.nc.Close()
	}
	if st := e.h.Stats(); st.AuthRejected != 2 {
		t.Errorf("AuthRejected %d, want 2", st.AuthRejected)
	}
}

// Join and leave pushes reach a stream as their own events, without an id.
func TestSSEJoinLeave(t *testing.T) {
	e := startSSE(t, Config{}, pubsub.Namespaces{"": {HistorySize: 10, Presence: true, JoinLeave: true}}, server.Options{})
	c := e.openSSE(t, "/sse?channel=room")
	c.expect("subscribed")
	other := e.dial(t)
	other.send(`{"op":"subscribe","id":1,"channel":"room"}`)
	ev := c.expect("join")
	if ev.hasID || !strings.Contains(ev.data, `"join":{"client":"anon-`) {
		t.Fatalf("join event %q (id %v)", ev.raw, ev.hasID)
	}
}

// Streams close with the server: Shutdown ends them (EOF) after what was
// queued.
func TestSSEShutdownEndsStream(t *testing.T) {
	e := startSSE(t, Config{}, nil, server.Options{})
	c := e.openSSE(t, "/sse?channel=news")
	c.expect("subscribed")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	defer func() {
		if err := <-done; err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	}()
	rest, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatalf("after shutdown: %v", err)
	}
	if len(bytes.TrimSpace(bytes.ReplaceAll(rest, SSEPing, nil))) != 0 {
		t.Fatalf("unexpected bytes %q", rest)
	}
}

// A stream whose token has an exp ends at it (the refresh notice a /ws
// connection would get has no place on a stream and is not written).
func TestSSETokenExpiryEndsStream(t *testing.T) {
	const secret = "sse-secret"
	e := startSSE(t, Config{TokenSecret: secret}, nil, server.Options{})
	tok, err := NewToken(secret, "ann", []string{"news"}, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := e.openSSE(t, "/sse?channel=news&token="+tok)
	c.expect("subscribed")
	start := time.Now()
	rest, err := io.ReadAll(c.br)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("bytes before the end: %q", rest)
	}
	if waited := time.Since(start); waited > 8*time.Second {
		t.Fatalf("ended %v after subscribing, the token had 2 s", waited)
	}
	if st := e.h.Stats(); st.TokenExpired != 1 {
		t.Fatalf("TokenExpired %d, want 1", st.TokenExpired)
	}
}

// A binary publication reaches SSE streams too, as a publication event
// whose data is base64 ("data_b64", as the HTTP API's history gives it),
// and advances the stream's position like any other.
func TestSSEBinaryPublication(t *testing.T) {
	e := startSSE(t, Config{}, nil, server.Options{})
	c := e.openSSE(t, "/sse?channel=news")
	var s subscribedEv
	if err := json.Unmarshal([]byte(c.expect("subscribed").data), &s); err != nil {
		t.Fatal(err)
	}
	ep := s.Channels["news"].Epoch
	if _, err := e.hub.PublishBinary(context.Background(), "news", []byte{0xde, 0xad}); err != nil {
		t.Fatal(err)
	}
	e.publish(t, "news", `2`)
	want := fmt.Sprintf("id: %s:1\nevent: publication\ndata: {\"channel\":\"news\",\"offset\":1,\"epoch\":\"%s\",\"data_b64\":\"3q0=\"}\n\n", ep, ep)
	if ev := c.next(); string(ev.raw) != want {
		t.Fatalf("event bytes\n got %q\nwant %q", ev.raw, want)
	}
	if ev := c.next(); ev.id != ep+":2" {
		t.Fatalf("next event %q", ev.raw)
	}
}

// The API's disconnect ends the user's SSE streams too (the body ends);
// a server-side subscription does not touch a stream (it has its own
// channels).
func TestSSEDisconnectUserAndServerSubs(t *testing.T) {
	e := startSSE(t, Config{TokenSecret: secret, RateLimit: -1}, nil, server.Options{})
	api := NewAPI(e.hub, APIConfig{Key: "k", Users: e.h})
	c := e.openSSE(t, "/sse?channel=news&token="+token(t, "alice", []string{"*"}, time.Hour))
	c.expect("subscribed")
	waitConns(t, e.h, 1, 1)
	apiCall(t, api, "/api/subscribe", `{"user":"alice","channel":"vip"}`)
	e.publish(t, "vip", `1`)
	e.publish(t, "news", `2`)
	if ev := c.next(); ev.event != "publication" || !strings.Contains(ev.data, `"channel":"news"`) {
		t.Fatalf("after a server-side subscribe: %q %q", ev.event, ev.data)
	}
	if got := apiCall(t, api, "/api/disconnect", `{"user":"alice"}`); got != `{"disconnected":1}` {
		t.Fatalf("disconnect: %s", got)
	}
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if rest, err := io.ReadAll(c.br); err != nil {
		t.Fatalf("the stream did not end: %v (read %q)", err, rest)
	}
	waitConns(t, e.h, 0, 0)
}
