package pubsub

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
)

func TestAppendBinaryPushBytes(t *testing.T) {
	p := &Publication{Channel: "g:b", Offset: 0x0102030405060708, Epoch: "e1", Data: []byte{0, 0xff, 'x'}}
	got := AppendBinaryPush([]byte("prefix"), p)
	want := []byte("prefix\x01\x03g:b\x01\x02\x03\x04\x05\x06\x07\x08\x02e1\x00\xffx")
	if !bytes.Equal(got, want) {
		t.Fatalf("got  %q\nwant %q", got, want)
	}
	if n := BinaryPushSize(p); n != len(want)-len("prefix") {
		t.Fatalf("BinaryPushSize %d, push is %d bytes", n, len(want)-len("prefix"))
	}
	back, err := ParseBinaryPush(got[len("prefix"):])
	if err != nil || back.Channel != p.Channel || back.Offset != p.Offset || back.Epoch != p.Epoch || !bytes.Equal(back.Data, p.Data) || !back.Binary {
		t.Fatalf("parsed back %+v, %v", back, err)
	}
}

func TestAppendBinaryPushLongEpochIsCut(t *testing.T) {
	p := &Publication{Channel: "c", Offset: 1, Epoch: string(bytes.Repeat([]byte{'e'}, 300)), Data: []byte("d")}
	b := AppendBinaryPush(nil, p)
	if len(b) != BinaryPushSize(p) {
		t.Fatalf("size %d, BinaryPushSize %d", len(b), BinaryPushSize(p))
	}
	back, err := ParseBinaryPush(b)
	if err != nil || back.Epoch != p.Epoch[:MaxEpochLen] || string(back.Data) != "d" {
		t.Fatalf("%+v %v", back, err)
	}
}

func TestParseBinaryPushRejects(t *testing.T) {
	for _, b := range [][]byte{
		nil,
		[]byte(`{"channel":"c"}`), // a JSON push
		[]byte("\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00"),    // empty channel
		[]byte("\x01\x05abc\x00\x00\x00\x00\x00\x00\x00\x01\x00"), // channel longer than the frame
		[]byte("\x01\x01c\x00\x00\x00\x00\x00\x00\x00\x01\x09e"),  // epoch longer than the frame
		[]byte("\x01\x01c\x00\x00\x00\x00\x00\x00\x01"),           // offset cut short
	} {
		if _, err := ParseBinaryPush(b); !errors.Is(err, ErrBadBinaryPush) {
			t.Errorf("%q: err %v, want ErrBadBinaryPush", b, err)
		}
	}
}

// kframe is a frame that remembers which encoder made it.
type kframe struct {
	binary bool
	b      []byte
}

type kframes struct {
	mu  sync.Mutex
	got []*kframe
}

func (k *kframes) Deliver(f *kframe) {
	k.mu.Lock()
	k.got = append(k.got, f)
	k.mu.Unlock()
}

func (k *kframes) frames() []*kframe {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.got)
}

func newKHub(t *testing.T, m *Memory) *Hub[*kframe] {
	t.Helper()
	h, err := NewHub(m, HubOptions[*kframe]{
		Encode:       func(b []byte) *kframe { return &kframe{b: b} },
		EncodeBinary: func(b []byte) *kframe { return &kframe{binary: true, b: b} },
		Namespaces:   Namespaces{"": {HistorySize: 10}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// A binary publication reaches subscribers through EncodeBinary, encoded
// once, between JSON ones on the same offsets; recovery replays it as
// binary too.
func TestHubBinaryPublications(t *testing.T) {
	m := NewMemory(MemoryOptions{NewEpoch: func() string { return "ep" }})
	h := newKHub(t, m)
	ctx := context.Background()
	var live, late kframes
	if _, _, err := h.Subscribe(ctx, "g", &live, SubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Publish(ctx, "g", []byte(`1`)); err != nil {
		t.Fatal(err)
	}
	raw := []byte{0xde, 0xad, 0xbe, 0xef}
	pos, err := h.PublishBinary(ctx, "g", raw)
	if err != nil || pos != (StreamPosition{Offset: 2, Epoch: "ep"}) {
		t.Fatalf("PublishBinary: %+v %v", pos, err)
	}
	if _, err := h.PublishBinary(ctx, "bad channel", raw); !errors.Is(err, ErrBadChannel) {
		t.Fatalf("bad channel: %v", err)
	}
	binPush := "\x01\x01g\x00\x00\x00\x00\x00\x00\x00\x02\x02ep\xde\xad\xbe\xef"
	check := func(who string, got []*kframe) {
		t.Helper()
		if len(got) != 2 || got[0].binary || string(got[0].b) != `{"channel":"g","offset":1,"epoch":"ep","data":1}` ||
			!got[1].binary || string(got[1].b) != binPush {
			t.Fatalf("%s got %d frames: %+v", who, len(got), got)
		}
	}
	check("live", live.frames())
	if _, _, err := h.Subscribe(ctx, "g", &late, SubscribeOptions{Since: &StreamPosition{Offset: 0, Epoch: "ep"}}); err != nil {
		t.Fatal(err)
	}
	check("recovered", late.frames())
	if st := h.Stats(); st.Encodes != 4 || st.Published != 2 {
		t.Fatalf("stats %+v: want 4 encodes (2 live, 2 replayed), 2 published", st)
	}
	pubs, _, err := h.History(ctx, "g", -1)
	if err != nil || len(pubs) != 2 || pubs[0].Binary || !pubs[1].Binary || !bytes.Equal(pubs[1].Data, raw) {
		t.Fatalf("history %+v %v", pubs, err)
	}
}

// Without EncodeBinary, Encode gets binary pushes, told apart by their
// first byte.
func TestHubBinaryWithoutEncodeBinary(t *testing.T) {
	h := newHub(t, nil, Namespaces{"": {HistorySize: 1}})
	var r recorder
	sub(t, h, "g", &r, nil)
	if _, err := h.PublishBinary(context.Background(), "g", []byte("x")); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.frames) != 1 || r.frames[0].b[0] != BinaryPushKind {
		t.Fatalf("frames %v", r.frames)
	}
}
