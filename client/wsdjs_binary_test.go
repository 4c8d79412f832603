package client

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// wsd.js's binary publications against a real node: publishBinary's bytes
// reach another client as an ArrayBuffer marked binary, sharing the
// channel's offsets with JSON publications, in order; skipSelf keeps the
// publisher's own copy away without a gap repair; a subscribe with latest
// gets a binary newest publication (the 0x03 push) once; history decodes
// data_b64 to an ArrayBuffer.
func TestWSDJSBinaryPublications(t *testing.T) {
	n, h := startTokenNodeNS(t, historyNS())
	a := startJSUser(t, n.url(), "alice")
	b := startJSUser(t, n.url(), "bob")
	for _, d := range []*jsDriver{a, b} {
		d.send(map[string]any{"cmd": "subscribe", "channel": "game"})
		waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	}
	pubBin := func(d *jsDriver, tag, hex string, skipSelf bool, want uint64) {
		t.Helper()
		d.send(map[string]any{"cmd": "publishBinary", "channel": "game", "hex": hex, "skipSelf": skipSelf, "tag": tag})
		if r := jsPublished(t, d, tag); r.Offset != want || r.Epoch == "" {
			t.Fatalf("publishBinary %s landed at %+v, want offset %d", tag, r, want)
		}
	}
	pubBin(a, "b1", "00ff10", false, 1)
	a.send(map[string]any{"cmd": "publish", "channel": "game", "data": "json", "tag": "j2"})
	jsPublished(t, a, "j2")
	pubBin(a, "b3", "deadbeef", true, 3) // alice's own copy skipped
	pubBin(b, "b4", "01", false, 4)
	waitFor(t, "bob's 4", func() bool { return len(b.offsets("game")) >= 4 })
	waitFor(t, "alice's 4", func() bool { o := a.offsets("game"); return len(o) > 0 && o[len(o)-1] == 4 })
	if got, data := b.offsets("game"), strings.Join(jsPubData(b, "game"), ","); !equalU64(got, []uint64{1, 2, 3, 4}) ||
		data != `"bin:00ff10","json","bin:deadbeef","bin:01"` {
		t.Fatalf("bob got offsets %v data %s", got, data)
	}
	if got, data := a.offsets("game"), strings.Join(jsPubData(a, "game"), ","); !equalU64(got, []uint64{1, 2, 4}) ||
		data != `"bin:00ff10","json","bin:01"` {
		t.Fatalf("alice got offsets %v data %s, want 1 2 4 (not her skip-self 3)", got, data)
	}
	if subs := a.events("subscribed"); len(subs) != 1 {
		t.Fatalf("alice subscribed %d times: a gap repair for her own skip-self publication?", len(subs))
	}

	// The newest is binary: a latest subscribe gets it once, at the reply's offset.
	c := startJSUser(t, n.url(), "carol")
	c.send(map[string]any{"cmd": "subscribe", "channel": "game", "latest": true})
	waitFor(t, "carol's latest", func() bool { return len(c.offsets("game")) == 1 })
	pubBin(b, "b5", "0505", false, 5)
	waitFor(t, "carol's 5", func() bool { return len(c.offsets("game")) >= 2 })
	if got, data := c.offsets("game"), strings.Join(jsPubData(c, "game"), ","); !equalU64(got, []uint64{4, 5}) || data != `"bin:01","bin:0505"` {
		t.Fatalf("carol got offsets %v data %s, want the latest (4) once then 5", got, data)
	}

	var hist struct {
		Publications []struct {
			Offset uint64 `json:"offset"`
			Data   any    `json:"data"`
		} `json:"publications"`
		Offset uint64 `json:"offset"`
	}
	c.send(map[string]any{"cmd": "history", "channel": "game", "limit": 10, "tag": "h"})
	jsResult(t, c, "history", "h", &hist)
	var got []string
	for _, p := range hist.Publications {
		got = append(got, fmt.Sprintf("%d:%v", p.Offset, p.Data))
	}
	if strings.Join(got, " ") != "1:bin:00ff10 2:json 3:bin:deadbeef 4:bin:01 5:bin:0505" || hist.Offset != 5 {
		t.Fatalf("history %v (offset %d)", got, hist.Offset)
	}

	// The server stored the bytes as binary publications, once each.
	pubs, _, err := h.Hub().History(context.Background(), "game", -1)
	if err != nil {
		t.Fatal(err)
	}
	if len(pubs) != 5 {
		t.Fatalf("the channel holds %d publications, want 5", len(pubs))
	}
}

// A binary publish made while offline waits in the queue and goes out
// once after the reconnect; a publish of no bytes is refused at once.
func TestWSDJSBinaryOfflineQueue(t *testing.T) {
	n, h := startTokenNodeNS(t, historyNS())
	px := startCutProxy(t, n.addr)
	d := startJSUser(t, px.url(), "alice")
	d.send(map[string]any{"cmd": "subscribe", "channel": "q"})
	waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	acks := len(d.events("ack"))
	d.send(map[string]any{"cmd": "offline"})
	waitFor(t, "the offline command taken", func() bool { return len(d.events("ack")) > acks })
	px.cutAll()
	waitFor(t, "offline", func() bool {
		st := d.lastState()
		return st.State == "disconnected" && st.Info["offline"] == true
	})
	d.send(map[string]any{"cmd": "publishBinary", "channel": "q", "hex": "abcd", "tag": "q1"})
	d.send(map[string]any{"cmd": "publishBinary", "channel": "q", "hex": "", "tag": "empty"})
	jsPublishError(t, d, "empty", "bad_request")
	if p := d.events("published"); len(p) != 0 {
		t.Fatalf("published while offline: %+v", p)
	}
	d.send(map[string]any{"cmd": "online"})
	if r := jsPublished(t, d, "q1"); r.Offset != 1 {
		t.Fatalf("q1 landed at %d", r.Offset)
	}
	waitFor(t, "delivered", func() bool { return len(d.offsets("q")) >= 1 })
	if got := strings.Join(jsPubData(d, "q"), ","); got != `"bin:abcd"` {
		t.Fatalf("delivered %s", got)
	}
	pubs, _, err := h.Hub().History(context.Background(), "q", -1)
	if err != nil || len(pubs) != 1 || string(pubs[0].Data) != "\xab\xcd" {
		t.Fatalf("history %+v %v", pubs, err)
	}
}
