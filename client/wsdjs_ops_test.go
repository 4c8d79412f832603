package client

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/wsdhq/wsd/internal/testdep"
	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/wsproto"
)

// wsd.js's publish keys, resends, offline queue, skip-self and latest in
// the orders a real node does not produce on demand
// (testdata/wsdjs_ops_unit.js, a scripted WebSocket): a push overtaking a
// skip-self publish's reply is held, not repaired; a failed skip-self
// publish lets the repair go; a latest push before the reply and a
// repeated one are delivered once; a resend keeps its key and goes before
// the publishes queued offline; past 100 s a dropped publish fails;
// closing rejects the queue.
func TestWSDJSOpsScripted(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		testdep.Missing(t, "node (Debian nodejs)", testdep.InstallHint+"; without it wsd.js is not exercised")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "testdata/wsdjs_ops_unit.js", "../web/wsd.js").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("%v: %s", err, out)
	}
}

// startJSUser runs a wsd.js driver against url as user (a token for the
// token node of these tests).
func startJSUser(t *testing.T, url, user string) *jsDriver {
	t.Helper()
	tok, err := wsproto.NewToken(tokenSecret, user, []string{"*"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return startJSEnv(t, url, "WSD_TOKEN="+tok)
}

// jsPublished waits for the publish tagged tag and returns its result, or
// fails the test with its error code.
func jsPublished(t *testing.T, d *jsDriver, tag string) PublishResult {
	t.Helper()
	var r PublishResult
	waitFor(t, "publish "+tag+" settled", func() bool {
		for _, e := range d.events("publish_error") {
			if e.Tag == tag {
				t.Fatalf("publish %s failed: %s", tag, e.Code)
			}
		}
		for _, e := range d.events("published") {
			if e.Tag == tag {
				if err := json.Unmarshal(e.Result, &r); err != nil {
					t.Fatalf("publish %s result %s: %v", tag, e.Result, err)
				}
				return true
			}
		}
		return false
	})
	return r
}

// jsResult waits for the event ev tagged tag and decodes its result into v.
func jsResult(t *testing.T, d *jsDriver, ev, tag string, v any) {
	t.Helper()
	waitFor(t, ev+" "+tag, func() bool {
		for _, e := range d.events(ev + "_error") {
			if e.Tag == tag {
				t.Fatalf("%s %s failed: %s", ev, tag, e.Code)
			}
		}
		for _, e := range d.events(ev) {
			if e.Tag == tag {
				if err := json.Unmarshal(e.Result, v); err != nil {
					t.Fatalf("%s %s result %s: %v", ev, tag, e.Result, err)
				}
				return true
			}
		}
		return false
	})
}

// jsPubData lists the data of ch's publications that reached a subscribe
// handler, in order.
func jsPubData(d *jsDriver, ch string) []string {
	var out []string
	for _, e := range d.events("pub") {
		if e.Channel == ch {
			out = append(out, string(e.Data))
		}
	}
	return out
}

func historyNS() pubsub.Namespaces {
	return pubsub.Namespaces{"": pubsub.DefaultNamespaceOptions()}
}

// wsd.js against a real node: a subscribe with latest gets the channel's
// newest publication once (at the reply's offset, not dropped as a
// repeat), then the live ones; history returns what was published;
// presenceStats counts two users.
func TestWSDJSLatestHistoryPresenceStats(t *testing.T) {
	n, _ := startTokenNodeNS(t, historyNS())
	a := startJSUser(t, n.url(), "alice")
	for i := 1; i <= 3; i++ {
		tag := fmt.Sprint("p", i)
		a.send(map[string]any{"cmd": "publish", "channel": "ticker", "data": i, "tag": tag})
		jsPublished(t, a, tag)
	}
	b := startJSUser(t, n.url(), "bob")
	b.send(map[string]any{"cmd": "subscribe", "channel": "ticker", "latest": true})
	waitFor(t, "bob subscribed", func() bool { return len(b.events("subscribed")) == 1 })
	a.send(map[string]any{"cmd": "publish", "channel": "ticker", "data": 4, "tag": "p4"})
	jsPublished(t, a, "p4")
	waitFor(t, "bob's publication 4", func() bool { o := b.offsets("ticker"); return len(o) > 0 && o[len(o)-1] == 4 })
	if got, data := b.offsets("ticker"), jsPubData(b, "ticker"); !equalU64(got, []uint64{3, 4}) || strings.Join(data, ",") != "3,4" {
		t.Fatalf("bob got offsets %v data %v, want the latest (3) once, then 4", got, data)
	}

	var h struct {
		Publications []struct {
			Offset uint64          `json:"offset"`
			Data   json.RawMessage `json:"data"`
		} `json:"publications"`
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	}
	b.send(map[string]any{"cmd": "history", "channel": "ticker", "limit": 2, "tag": "h1"})
	jsResult(t, b, "history", "h1", &h)
	if len(h.Publications) != 2 || h.Publications[0].Offset != 3 || string(h.Publications[1].Data) != "4" || h.Offset != 4 || h.Epoch == "" {
		t.Fatalf("history limit 2: %+v", h)
	}
	b.send(map[string]any{"cmd": "history", "channel": "ticker", "since": map[string]any{"offset": 1, "epoch": h.Epoch}, "tag": "h2"})
	jsResult(t, b, "history", "h2", &h)
	var offs []uint64
	for _, p := range h.Publications {
		offs = append(offs, p.Offset)
	}
	if !equalU64(offs, []uint64{2, 3, 4}) {
		t.Fatalf("history since 1: offsets %v", offs)
	}

	a.send(map[string]any{"cmd": "subscribe", "channel": "ticker"})
	waitFor(t, "alice subscribed", func() bool { return len(a.events("subscribed")) == 1 })
	var ps struct {
		Channel     string `json:"channel"`
		Count       int    `json:"count"`
		Connections int    `json:"connections"`
	}
	a.send(map[string]any{"cmd": "presenceStats", "channel": "ticker", "tag": "s1"})
	jsResult(t, a, "presenceStats", "s1", &ps)
	if ps.Channel != "ticker" || ps.Count != 2 || ps.Connections != 2 {
		t.Fatalf("presenceStats %+v, want 2 clients on 2 connections", ps)
	}
}

// skip_self from wsd.js: the publisher does not get its own publication,
// another client does, and the hole it leaves in the publisher's sequence
// is not repaired (no replay of its own) when later publications come.
func TestWSDJSSkipSelf(t *testing.T) {
	n, _ := startTokenNodeNS(t, historyNS())
	a := startJSUser(t, n.url(), "alice")
	b := startJSUser(t, n.url(), "bob")
	for _, d := range []*jsDriver{a, b} {
		d.send(map[string]any{"cmd": "subscribe", "channel": "game"})
		waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	}
	a.send(map[string]any{"cmd": "publish", "channel": "game", "data": "own", "skipSelf": true, "tag": "own"})
	if r := jsPublished(t, a, "own"); r.Offset != 1 {
		t.Fatalf("skip-self publish landed at %d", r.Offset)
	}
	waitFor(t, "bob gets alice's", func() bool { return len(b.offsets("game")) == 1 })
	for i := 2; i <= 3; i++ {
		tag := fmt.Sprint("b", i)
		b.send(map[string]any{"cmd": "publish", "channel": "game", "data": tag, "tag": tag})
		jsPublished(t, b, tag)
	}
	// A last publication of alice's own, not skipped: everything before it
	// (a replay included) has reached her when it does.
	a.send(map[string]any{"cmd": "publish", "channel": "game", "data": "end", "tag": "end"})
	jsPublished(t, a, "end")
	waitFor(t, "alice's end", func() bool { o := a.offsets("game"); return len(o) > 0 && o[len(o)-1] == 4 })
	if got := a.offsets("game"); !equalU64(got, []uint64{2, 3, 4}) {
		t.Fatalf("alice got offsets %v (data %v), want 2 3 4: not her own skip-self one", got, jsPubData(a, "game"))
	}
	waitFor(t, "bob's 4", func() bool { return len(b.offsets("game")) == 4 })
	if got := b.offsets("game"); !equalU64(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("bob got offsets %v", got)
	}
}

// A publish whose connection drops after the server made it but before
// its reply reached wsd.js is sent again with its key on the next
// connection: the channel holds it once, the promise resolves with its
// offset, and the subscriber gets it once.
func TestWSDJSPublishExactlyOnceAcrossDrop(t *testing.T) {
	n, h := startTokenNodeNS(t, historyNS())
	px := startCutProxy(t, n.addr)
	px.cutReplyTo(`"once"`)
	d := startJSUser(t, px.url(), "alice")
	d.send(map[string]any{"cmd": "subscribe", "channel": "chat"})
	waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	d.send(map[string]any{"cmd": "publish", "channel": "chat", "data": "once", "tag": "once"})
	r := jsPublished(t, d, "once")
	if px.cuts() != 1 {
		t.Fatalf("the proxy cut %d connections at the publish reply, want 1", px.cuts())
	}
	d.send(map[string]any{"cmd": "publish", "channel": "chat", "data": "after", "tag": "after"})
	if r2 := jsPublished(t, d, "after"); r2.Offset != 2 {
		t.Fatalf("the next publish landed at %d, want 2", r2.Offset)
	}
	pubs, _, err := h.Hub().History(context.Background(), "chat", -1)
	if err != nil {
		t.Fatal(err)
	}
	var data []string
	for _, p := range pubs {
		data = append(data, string(p.Data))
	}
	if strings.Join(data, ",") != `"once","after"` || r.Offset != 1 {
		t.Fatalf("history %v; the publish resolved at %d, want it once at 1", data, r.Offset)
	}
	waitFor(t, "both publications", func() bool { return len(d.offsets("chat")) >= 2 })
	if got := d.offsets("chat"); !equalU64(got, []uint64{1, 2}) {
		t.Fatalf("subscriber got %v", got)
	}
}

// Publishes made while disconnected wait in the bounded queue: the one
// past maxQueuedPublishes is refused with queue_full, the others go out in
// order after the reconnect.
func TestWSDJSOfflineQueue(t *testing.T) {
	n, _ := startTokenNodeNS(t, historyNS())
	px := startCutProxy(t, n.addr)
	d := startJSUser(t, px.url(), "alice")
	d.send(map[string]any{"cmd": "set", "key": "maxQueuedPublishes", "value": 3})
	d.send(map[string]any{"cmd": "subscribe", "channel": "q"})
	waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	// Offline before the cut (the driver acknowledges each command in
	// turn), so that no attempt follows it.
	acks := len(d.events("ack"))
	d.send(map[string]any{"cmd": "offline"})
	waitFor(t, "the offline command taken", func() bool { return len(d.events("ack")) > acks })
	px.cutAll()
	waitFor(t, "offline", func() bool {
		st := d.lastState()
		return st.State == "disconnected" && st.Info["offline"] == true
	})
	for i := 1; i <= 4; i++ {
		d.send(map[string]any{"cmd": "publish", "channel": "q", "data": fmt.Sprint("q", i), "tag": fmt.Sprint("q", i)})
	}
	jsPublishError(t, d, "q4", "queue_full")
	if p := d.events("published"); len(p) != 0 {
		t.Fatalf("published while offline: %+v", p)
	}
	d.send(map[string]any{"cmd": "online"})
	for i := 1; i <= 3; i++ {
		if r := jsPublished(t, d, fmt.Sprint("q", i)); r.Offset != uint64(i) {
			t.Fatalf("q%d landed at %d", i, r.Offset)
		}
	}
	waitFor(t, "3 publications", func() bool { return len(d.offsets("q")) >= 3 })
	if got := strings.Join(jsPubData(d, "q"), ","); got != `"q1","q2","q3"` {
		t.Fatalf("delivered %s", got)
	}
	for _, e := range d.events("publish_error") {
		if e.Tag != "q4" {
			t.Fatalf("publish %s failed: %s", e.Tag, e.Code)
		}
	}
}

// cutProxy is a TCP proxy between wsd.js and a node that reads the
// WebSocket frames going through: it can cut every connection, or cut the
// one that carries the reply to a chosen publish instead of forwarding it.
type cutProxy struct {
	t      *testing.T
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]bool
	marker string // the data of the publish whose reply is cut ("" none)
	cut    int    // connections cut at such a reply
	wg     sync.WaitGroup
}

func startCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cutAll()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) url() string { return "ws://" + p.ln.Addr().String() + "/ws" }

// cutReplyTo arms the proxy: the first publish whose data is marker (JSON)
// gets no reply; its connection is cut when the reply goes by.
func (p *cutProxy) cutReplyTo(marker string) {
	p.mu.Lock()
	p.marker = marker
	p.mu.Unlock()
}

func (p *cutProxy) cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cut
}

// cutAll closes every connection through the proxy, both sides.
func (p *cutProxy) cutAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
}

func (p *cutProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil {
		return false
	}
	p.conns[c] = true
	return true
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		p.track(c)
		p.track(s)
		// The id of the marked publish on this connection, from the
		// client's frames to the server's.
		ids := make(chan json.RawMessage, 1)
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			p.pipe(c, s, true, ids)
		}()
		go func() {
			defer p.wg.Done()
			p.pipe(s, c, false, ids)
		}()
	}
}

// pipe copies the HTTP upgrade, then frame by frame. From the client it
// notes the marked publish's id; from the server it cuts both sides
// instead of forwarding that id's reply.
func (p *cutProxy) pipe(src, dst net.Conn, fromClient bool, ids chan json.RawMessage) {
	defer src.Close()
	defer dst.Close()
	r := bufio.NewReader(src)
	for { // the upgrade request or response, up to its blank line
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		if _, err := io.WriteString(dst, line); err != nil {
			return
		}
		if line == "\r\n" {
			break
		}
	}
	var id json.RawMessage
	for {
		h, err := ws.ReadHeader(r)
		if err != nil {
			return
		}
		payload := make([]byte, h.Length)
		if _, err := io.ReadFull(r, payload); err != nil {
			return
		}
		text := append([]byte(nil), payload...)
		if h.Masked {
			ws.Cipher(text, h.Mask, 0)
		}
		if h.OpCode == ws.OpText {
			var m struct {
				ID     json.RawMessage `json:"id"`
				Op     string          `json:"op"`
				Data   json.RawMessage `json:"data"`
				Result json.RawMessage `json:"result"`
			}
			if json.Unmarshal(text, &m) == nil {
				if fromClient && m.Op == "publish" && p.takeMarker(string(m.Data)) {
					ids <- m.ID
				}
				if !fromClient && id == nil {
					select {
					case id = <-ids:
					default:
					}
				}
				if !fromClient && id != nil && string(m.ID) == string(id) && m.Result != nil {
					p.mu.Lock()
					p.cut++
					p.mu.Unlock()
					return // both sides close: the reply is lost
				}
			}
		}
		if err := ws.WriteHeader(dst, h); err != nil {
			return
		}
		if _, err := dst.Write(payload); err != nil {
			return
		}
	}
}

// takeMarker reports whether data is the armed marker, disarming it.
func (p *cutProxy) takeMarker(data string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marker == "" || data != p.marker {
		return false
	}
	p.marker = ""
	return true
}

// jsPublishError waits until the publish tagged tag failed, and checks its
// error code.
func jsPublishError(t *testing.T, d *jsDriver, tag, code string) {
	t.Helper()
	var got string
	waitFor(t, "publish "+tag+" refused with "+code, func() bool {
		for _, e := range d.events("publish_error") {
			if e.Tag == tag {
				got = e.Code
				return true
			}
		}
		return false
	})
	if got != code {
		t.Fatalf("publish %s refused with %q, want %q", tag, got, code)
	}
}
