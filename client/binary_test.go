package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/wsproto"
)

// mixedLog records JSON and binary publications in one sequence.
type mixedLog struct {
	mu   sync.Mutex
	pubs []string // "<channel>#<offset> json|bin <data>"
}

func (l *mixedLog) add(channel string, offset uint64, kind string, data []byte) {
	l.mu.Lock()
	l.pubs = append(l.pubs, fmt.Sprintf("%s#%d %s %q", channel, offset, kind, data))
	l.mu.Unlock()
}

func (l *mixedLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.pubs...)
}

func (l *mixedLog) options(o Options) Options {
	o.OnPublication = func(ch string, off uint64, _ string, d json.RawMessage) { l.add(ch, off, "json", d) }
	o.OnBinaryPublication = func(ch string, off uint64, _ string, d []byte) { l.add(ch, off, "bin", d) }
	return o
}

// Against a real server: binary and JSON publications share a channel's
// offsets, arrive in order, and are recovered exactly once after a drop.
func TestRealServerBinaryPublications(t *testing.T) {
	n, h := startTokenNodeNS(t, pubsub.Namespaces{"": {HistorySize: 100}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dialAs := func(user string, o Options) *Client {
		o.TokenFunc = func(context.Context) (string, error) {
			return wsproto.NewToken(tokenSecret, user, []string{"g"}, time.Hour)
		}
		c, err := Dial(ctx, n.url(), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}
	var log mixedLog
	alice := dialAs("alice", log.options(fast()))
	bob := dialAs("bob", fast())
	// carol takes JSON only: binary offsets still count as delivered, so
	// they are no gap to repair.
	var carolLog mixedLog
	co := carolLog.options(fast())
	co.OnBinaryPublication = nil
	carol := dialAs("carol", co)
	for _, c := range []*Client{alice, carol} {
		if _, err := c.Subscribe(ctx, "g"); err != nil {
			t.Fatal(err)
		}
	}
	raw := func(i int) []byte { return []byte{0, byte(i), 0xff} }
	pubBin := func(i int) {
		t.Helper()
		r, err := bob.PublishBinary(ctx, "g", raw(i))
		if err != nil || r.Offset != uint64(i) {
			t.Fatalf("PublishBinary %d: %+v %v", i, r, err)
		}
	}
	pubJSON := func(i int) {
		t.Helper()
		if r, err := bob.Publish(ctx, "g", i); err != nil || r.Offset != uint64(i) {
			t.Fatalf("Publish %d: %+v %v", i, r, err)
		}
	}
	pubJSON(1)
	pubBin(2)
	waitFor(t, "1..2", func() bool { return len(log.list()) == 2 })

	h.DisconnectUser("alice", 100*time.Millisecond)
	waitFor(t, "alice away", func() bool { return alice.State() != StateConnected })
	pubBin(3)
	pubJSON(4)
	waitFor(t, "alice back", func() bool { return alice.Reconnects() == 1 && alice.State() == StateConnected })
	waitFor(t, "3..4 recovered", func() bool { return len(log.list()) == 4 })
	pubBin(5)
	waitFor(t, "5 live", func() bool { return len(log.list()) == 5 })

	want := []string{`g#1 json "1"`, `g#2 bin "\x00\x02\xff"`, `g#3 bin "\x00\x03\xff"`, `g#4 json "4"`, `g#5 bin "\x00\x05\xff"`}
	if got := log.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}

	if _, err := carol.Publish(ctx, "g", 6); err != nil { // 6 comes back before the reply
		t.Fatal(err)
	}
	waitFor(t, "carol's 6", func() bool { return len(carolLog.list()) == 3 })
	if got, want := carolLog.list(), []string{`g#1 json "1"`, `g#4 json "4"`, `g#6 json "6"`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("carol got %q, want %q", got, want)
	}
	if st := h.Hub().Stats(); st.Recovered != 1 { // alice's reconnect; a gap repair would add one
		t.Fatalf("recoveries %d, want 1: %+v", st.Recovered, st)
	}

	// Errors come back as for JSON publishes.
	if _, err := bob.PublishBinary(ctx, "other", []byte{1}); !isCode(err, wsproto.CodeForbidden) {
		t.Fatalf("forbidden channel: %v", err)
	}
	if _, err := bob.PublishBinary(ctx, "g", nil); err == nil {
		t.Fatal("empty data accepted")
	}
	if _, err := bob.PublishBinary(ctx, string(bytes.Repeat([]byte{'c'}, 256)), []byte{1}); err == nil {
		t.Fatal("256-byte channel accepted")
	}
}

func isCode(err error, code string) bool {
	se, ok := err.(*ServerError)
	return ok && se.Code == code
}

// A binary newest publication is what a subscribe with latest gets
// (delivered once, as binary), history returns binary publications as
// bytes, and a binary publish carries an idempotency key like a JSON one.
func TestRealServerBinaryLatestHistoryAndKey(t *testing.T) {
	n, _ := startTokenNodeNS(t, pubsub.Namespaces{"": {HistorySize: 100}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var log mixedLog
	o := log.options(fast())
	o.TokenFunc = func(context.Context) (string, error) {
		return wsproto.NewToken(tokenSecret, "ann", []string{"*"}, time.Hour)
	}
	c, err := Dial(ctx, n.url(), o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Publish(ctx, "g", "one"); err != nil {
		t.Fatal(err)
	}
	if res, err := c.PublishBinary(ctx, "g", []byte{7, 7}); err != nil || res.Offset != 2 {
		t.Fatalf("binary publish: %+v %v", res, err)
	}
	if _, err := c.SubscribeWith(ctx, "g", SubscribeOptions{Latest: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Publish(ctx, "g", "three"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "latest and 3", func() bool { return len(log.list()) >= 2 })
	if got, want := log.list(), []string{`g#2 bin "\a\a"`, `g#3 json "\"three\""`}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	h, err := c.History(ctx, "g", HistoryOptions{})
	if err != nil || len(h.Publications) != 3 || !bytes.Equal(h.Publications[1].DataB64, []byte{7, 7}) || string(h.Publications[0].Data) != `"one"` {
		t.Fatalf("history %+v %v", h, err)
	}
	var r request
	r.ID, r.Channel, r.binary, r.IdempotencyKey = 9, "g", []byte{1}, "kkk"
	if op, b := r.frame(); op != 2 || !bytes.Contains(b, []byte(`{"id":9,"idempotency_key":"kkk"}`)) {
		t.Fatalf("binary publish frame %v %q", op, b)
	}
}
