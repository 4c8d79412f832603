package codec

import (
	"bytes"
	"io"
	"testing"

	"github.com/gobwas/ws"
)

// FuzzFramesAgainstGobwas checks the frame parser against a reference:
// every frame Reader accepts must read the same — FIN, opcode, length and
// unmasked payload, and the bytes it spans — with gobwas/ws's ReadHeader,
// a separate implementation of the RFC 6455 header. (What Reader refuses
// is the protocol checks' business, tested elsewhere: gobwas reads
// headers without judging them.)
func FuzzFramesAgainstGobwas(f *testing.F) {
	f.Add(masked(OpText, true, []byte("hello")), false)
	f.Add(append(masked(OpText, false, []byte("he")), masked(OpContinuation, true, []byte("llo"))...), false)
	f.Add(append(masked(OpPing, true, []byte("ping")), masked(OpBinary, true, make([]byte, 70000))...), false)
	f.Add(masked(OpBinary, true, make([]byte, 300)), false)
	f.Add(AppendFrame(nil, OpText, true, []byte("server text")), true)
	f.Add(AppendFrame(nil, OpBinary, true, make([]byte, 5000))[:3000], true)
	f.Fuzz(func(t *testing.T, data []byte, client bool) {
		r := Reader{Limits: &Limits{MaxFrame: 1 << 17, MaxMessage: 1 << 18}, Client: client}
		buf := append([]byte{}, data...)
		ref := bytes.NewReader(data)
		var want []byte // the reference frame's payload not yet matched
		for {
			fr, n, err := r.Next(buf)
			if err != nil || fr.Op == 0 {
				return
			}
			buf = buf[n:]
			if len(want) == 0 { // a new frame
				hdr, herr := ws.ReadHeader(ref)
				if herr != nil {
					t.Fatalf("Reader accepted a frame (%+v) whose header gobwas cannot read: %v", fr, herr)
				}
				want = make([]byte, hdr.Length)
				k, _ := io.ReadFull(ref, want)
				if hdr.Masked {
					ws.Cipher(want[:k], hdr.Mask, 0)
				}
				if k < len(want) && len(fr.Payload) > k {
					t.Fatalf("Reader returned %d payload bytes of a frame that has %d", len(fr.Payload), k)
				}
				want = want[:k]
				checkHeader(t, fr, hdr)
			}
			if !bytes.HasPrefix(want, fr.Payload) {
				t.Fatalf("payload differs: Reader %q, gobwas %q", fr.Payload, want)
			}
			want = want[len(fr.Payload):]
		}
	})
}

// checkHeader compares a frame's first piece with the reference header.
func checkHeader(t *testing.T, fr Frame, h ws.Header) {
	t.Helper()
	switch {
	case fr.Op.IsControl():
		if h.OpCode != fr.Op || !h.Fin {
			t.Fatalf("control frame: Reader %v fin=%v, gobwas %v fin=%v", fr.Op, fr.Fin, h.OpCode, h.Fin)
		}
	case fr.First != (h.OpCode != OpContinuation) || fr.First && h.OpCode != fr.Op:
		t.Fatalf("data frame: Reader %v first=%v, gobwas opcode %v", fr.Op, fr.First, h.OpCode)
	}
	if fr.Fin && !h.Fin {
		t.Fatalf("Reader says FIN, gobwas does not")
	}
	if rsv1 := h.Rsv&0x4 != 0; fr.First && fr.Compressed != rsv1 {
		t.Fatalf("RSV1: Reader %v, gobwas %v", fr.Compressed, rsv1)
	}
}
