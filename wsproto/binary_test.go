package wsproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/wsdhq/wsd/codec"
)

func (c *client) sendBinary(b []byte) {
	c.t.Helper()
	if err := c.c.WriteMessage(codec.OpBinary, b); err != nil {
		c.t.Fatal(err)
	}
}

// readRaw returns the next data frame as it came.
func (c *client) readRaw() (codec.OpCode, []byte) {
	c.t.Helper()
	f, err := c.c.ReadData()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f.Op, f.Payload
}

func (c *client) expect(op codec.OpCode, want []byte) {
	c.t.Helper()
	gotOp, got := c.readRaw()
	if gotOp != op || !bytes.Equal(got, want) {
		c.t.Fatalf("got op %v %q\nwant op %v %q", gotOp, got, op, want)
	}
}

// binPush is the binary push of offset off (< 256) with a one-byte
// channel name.
func binPush(channel string, off byte, epoch string, data string) []byte {
	b := []byte{0x01, byte(len(channel))}
	b = append(b, channel...)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, off, byte(len(epoch)))
	b = append(b, epoch...)
	return append(b, data...)
}

// Exact bytes on the wire: a binary publish frame, its JSON reply, the
// binary push subscribers get, JSON and binary sharing offsets, and the
// replay of a binary publication on recovery.
func TestBinaryPublishWire(t *testing.T) {
	e := start(t, Config{}, nil)
	a, b := e.dial(t), e.dial(t)
	var sr SubscribeResult
	a.ok(`{"id":1,"op":"subscribe","channel":"g"}`, &sr)
	ep := sr.Epoch

	b.sendBinary([]byte("\x02\x01g\x017\xde\xad\x00"))
	b.expect(codec.OpText, []byte(`{"id":7,"result":{"offset":1,"epoch":"`+ep+`"}}`))
	a.expect(codec.OpBinary, binPush("g", 1, ep, "\xde\xad\x00"))

	b.send(`{"id":8,"op":"publish","channel":"g","data":{"x":1}}`)
	b.expect(codec.OpText, []byte(`{"id":8,"result":{"offset":2,"epoch":"`+ep+`"}}`))
	a.expect(codec.OpText, []byte(`{"channel":"g","offset":2,"epoch":"`+ep+`","data":{"x":1}}`))

	// A string id, then none at all.
	b.sendBinary(AppendBinaryPublish(nil, "g", json.RawMessage(`"k"`), []byte("{")))
	b.expect(codec.OpText, []byte(`{"id":"k","result":{"offset":3,"epoch":"`+ep+`"}}`))
	b.sendBinary(AppendBinaryPublish(nil, "g", nil, []byte{0}))
	b.expect(codec.OpText, []byte(`{"result":{"offset":4,"epoch":"`+ep+`"}}`))
	a.expect(codec.OpBinary, binPush("g", 3, ep, "{"))
	a.expect(codec.OpBinary, binPush("g", 4, ep, "\x00"))

	// Recovery replays binary publications as binary frames.
	c := e.dial(t)
	c.send(`{"id":2,"op":"subscribe","channel":"g","since":{"offset":0,"epoch":"` + ep + `"}}`)
	c.expect(codec.OpText, []byte(`{"id":2,"result":{"epoch":"`+ep+`","offset":4,"recovered":true}}`))
	c.expect(codec.OpBinary, binPush("g", 1, ep, "\xde\xad\x00"))
	c.expect(codec.OpText, []byte(`{"channel":"g","offset":2,"epoch":"`+ep+`","data":{"x":1}}`))
	c.expect(codec.OpBinary, binPush("g", 3, ep, "{"))
	c.expect(codec.OpBinary, binPush("g", 4, ep, "\x00"))
}

// Binary publishes are checked like JSON ones: the frame's layout, the
// channel, the namespace's publish policy, the data's size.
func TestBinaryPublishErrors(t *testing.T) {
	e := start(t, Config{MaxDataBytes: 4}, nil)
	a := e.dial(t)
	for _, tc := range []struct {
		frame []byte
		id    string
		code  string
	}{
		{[]byte("\x02"), ``, CodeBadRequest},
		{[]byte("\x02\x00\x00x"), ``, CodeBadRequest},             // empty channel
		{[]byte("\x02\x01g\x00"), ``, CodeBadRequest},             // no data
		{[]byte("\x02\x01g\x05\"ab\x00x"), ``, CodeBadRequest},    // id longer than the frame
		{[]byte("\x02\x01g\x09{\"id\":{}}x"), ``, CodeBadRequest}, // id not a number or string
		{[]byte("\x02\x01g\x02[]x"), ``, CodeBadRequest},          // a head neither an id nor options
		{[]byte("\x02\x01g\x04nullx"), ``, CodeBadRequest},        // null id
		{[]byte("\x03\x01g\x00x"), ``, CodeBadRequest},            // unknown kind
		{AppendBinaryPublish(nil, "a b", json.RawMessage(`1`), []byte("x")), `1`, CodeBadChannel},
		{AppendBinaryPublish(nil, "feed:x", json.RawMessage(`2`), []byte("x")), `2`, CodeForbidden},
		{AppendBinaryPublish(nil, "room:x", json.RawMessage(`3`), []byte("x")), `3`, CodeForbidden},
		{AppendBinaryPublish(nil, "g", json.RawMessage(`4`), []byte("12345")), `4`, CodeTooLarge},
	} {
		a.sendBinary(tc.frame)
		m := a.read()
		if m.Error == nil || m.Error.Code != tc.code || string(m.ID) != tc.id {
			t.Errorf("%q: got id %s error %+v, want id %q %s", tc.frame, m.ID, m.Error, tc.id, tc.code)
		}
	}
	// Subscribed, the room takes it; the connection still works.
	a.ok(`{"id":1,"op":"subscribe","channel":"room:x"}`, nil)
	a.sendBinary(AppendBinaryPublish(nil, "room:x", json.RawMessage(`5`), []byte("1234")))
	if op, p := a.readRaw(); op != codec.OpBinary || !bytes.HasSuffix(p, []byte("1234")) {
		t.Fatalf("own push: %v %q", op, p)
	}
	if m := a.read(); m.Error != nil || string(m.ID) != "5" {
		t.Fatalf("reply %+v", m)
	}
	if st := e.h.Stats(); st.Errors[CodeBadRequest] != 8 || st.Errors[CodeForbidden] != 2 || st.Errors[CodeTooLarge] != 1 {
		t.Fatalf("stats %+v", st.Errors)
	}
}

func TestParseBinaryPublishRoundTrip(t *testing.T) {
	f := AppendBinaryPublish(nil, "chat:x", json.RawMessage(`"r-1"`), []byte{1, 2})
	if want := "\x02\x06chat:x\x05\"r-1\"\x01\x02"; string(f) != want {
		t.Fatalf("frame %q, want %q", f, want)
	}
	p, err := ParseBinaryPublish(f)
	if err != nil || p.Channel != "chat:x" || string(p.ID) != `"r-1"` || !bytes.Equal(p.Data, []byte{1, 2}) {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := ParseBinaryPublish([]byte(`{"op":"publish"}`)); !errors.Is(err, ErrBadBinaryPublish) {
		t.Fatalf("JSON: %v", err)
	}
}

// FuzzParseBinaryPublish: any frame parses or fails cleanly; what parses
// has a JSON id (or none), and encoding it again (its options as an
// object head) parses back to the same request. (A head that is an
// options object has many spellings: the round trip is of meaning, not
// bytes.)
func FuzzParseBinaryPublish(f *testing.F) {
	f.Add([]byte("\x02\x01g\x017\xde\xad"))
	f.Add([]byte("\x02\x06chat:x\x05\"r-1\"\x01\x02"))
	f.Add([]byte("\x02\x01g\x00x"))
	f.Add([]byte(`{"op":"publish"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseBinaryPublish(b)
		if err != nil {
			return
		}
		if p.ID != nil && !json.Valid(p.ID) || len(p.Data) == 0 || p.Channel == "" {
			t.Fatalf("%q parsed as %+v", b, p)
		}
		head := []byte(p.ID)
		if p.IdempotencyKey != "" || p.SkipSelf || len(b) > 2+len(p.Channel) && b[2+len(p.Channel)] > 0 && b[3+len(p.Channel)] == '{' {
			head, _ = json.Marshal(binaryOptions{ID: p.ID, IdempotencyKey: p.IdempotencyKey, SkipSelf: p.SkipSelf})
		}
		if len(head) > 255 {
			return // a longer spelling than the frame's own: not encodable in one length byte
		}
		out := AppendBinaryPublish(nil, p.Channel, head, p.Data)
		q, err := ParseBinaryPublish(out)
		if err != nil || q.Channel != p.Channel || string(q.ID) != string(p.ID) || q.IdempotencyKey != p.IdempotencyKey ||
			q.SkipSelf != p.SkipSelf || !bytes.Equal(q.Data, p.Data) {
			t.Fatalf("%q parsed as %+v, encodes back as %q, which parses as %+v (%v)", b, p, out, q, err)
		}
	})
}

// The head may be an object with the publish's options: a retried binary
// publish with its idempotency key is made once.
func TestBinaryPublishOptionsHead(t *testing.T) {
	e := start(t, Config{RateLimit: -1}, nil)
	sub, pub := e.dial(t), e.dial(t)
	sub.ok(`{"id":1,"op":"subscribe","channel":"g"}`, nil)
	for range 2 {
		pub.sendBinary(AppendBinaryPublish(nil, "g", json.RawMessage(`{"id":7,"idempotency_key":"b-1"}`), []byte{1, 2}))
		if m := pub.read(); m.Error != nil || string(m.ID) != "7" || !bytes.Contains(m.Result, []byte(`"offset":1`)) {
			t.Fatalf("reply %+v %s", m, m.Result)
		}
	}
	if op, p := sub.readRaw(); op != codec.OpBinary || !bytes.HasSuffix(p, []byte{1, 2}) {
		t.Fatalf("push %v %q", op, p)
	}
	sub.quiet() // one push only
	p, err := ParseBinaryPublish(AppendBinaryPublish(nil, "g", json.RawMessage(`{"skip_self":true}`), []byte{1}))
	if err != nil || !p.SkipSelf || p.ID != nil {
		t.Fatalf("%+v %v", p, err)
	}
	if _, err := ParseBinaryPublish(AppendBinaryPublish(nil, "g", json.RawMessage(`{"idempotency_key":"a b"}`), []byte{1})); err == nil {
		t.Fatal("a bad key in the head was taken")
	}
}
