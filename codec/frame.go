// Package codec implements the WebSocket wire format: RFC 6455 frames and
// handshake, RFC 7692 permessage-deflate, close codes and incremental UTF-8
// validation. It works on byte slices and small per-connection structs and
// never touches a socket, so the event loop can parse straight out of its
// read buffer and tests can feed it any byte split they like.
package codec

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// OpCode is a frame opcode (RFC 6455 §5.2).
type OpCode = ws.OpCode

// Opcodes.
const (
	OpContinuation = ws.OpContinuation
	OpText         = ws.OpText
	OpBinary       = ws.OpBinary
	OpClose        = ws.OpClose
	OpPing         = ws.OpPing
	OpPong         = ws.OpPong
)

// MaxControlPayload is the largest payload a control frame may carry.
const MaxControlPayload = 125

// MaxHeaderLen is the longest frame header: 2 + 8 (length) + 4 (mask).
const MaxHeaderLen = 14

// waitBelow: a data frame shorter than this whose payload is still in flight
// is left unconsumed until it is whole. Small frames then arrive in one piece
// (zero copies), and what stays behind in the loop's buffer is small.
const waitBelow = 4096

// Limits bounds what a peer may send. Zero fields mean "no limit"; the server
// always fills them in. Safe to share between connections (read-only).
type Limits struct {
	MaxFrame   int64 // largest single frame payload
	MaxMessage int64 // largest message, after decompression
}

// Frame is one piece of a message, as returned by Reader.Next.
//
// For data, Op is the message's opcode (OpText or OpBinary) on every piece,
// including continuation frames; First marks the first piece of a message and
// Fin the last. A message that arrived as one whole frame comes back as one
// piece with First and Fin set. For control frames, Op is OpPing, OpPong or
// OpClose and Payload is the whole, unmasked payload.
//
// Payload aliases the slice given to Next and is unmasked in place.
type Frame struct {
	Op         OpCode
	First      bool
	Fin        bool
	Compressed bool // the message has RSV1 set (permessage-deflate)
	Payload    []byte
}

// Reader is the incremental frame parser of one connection. Its zero value
// parses client-to-server frames (masked) without extensions; set Client to
// parse server frames and Deflate once permessage-deflate was negotiated.
// It holds no buffer: 40 bytes of state, fields ordered to pack. Not safe for concurrent use.
type Reader struct {
	Limits *Limits // nil means no limits

	remaining int64   // payload bytes of the current data frame still to come
	msgLen    int64   // payload bytes of the current message so far
	mask      [4]byte //
	utf8      uint32  // UTF-8 DFA state of the text message in progress

	Client  bool // parse server-to-client frames (unmasked)
	Deflate bool // RSV1 allowed on the first frame of a data message

	maskOff  uint8  // bytes of the current frame already unmasked, mod 4
	inFrame  bool   // a data frame's header was consumed, payload pending
	frameFin bool   // FIN bit of the current data frame
	msgOp    OpCode // opcode of the message in progress, 0 if none
	compress bool   // message in progress is compressed
}

// InMessage reports whether a fragmented message is in progress.
func (r *Reader) InMessage() bool { return r.msgOp != 0 }

// Reset forgets any frame and message in progress.
func (r *Reader) Reset() {
	r.remaining, r.msgLen, r.maskOff, r.inFrame, r.frameFin = 0, 0, 0, false, false
	r.msgOp, r.compress, r.utf8 = 0, false, 0
}

// Next parses the next piece of p. It returns the piece, how many bytes of p
// it consumed (the caller discards exactly those), and a *ProtocolError when
// the peer broke the protocol; the connection must then be failed with
// err.Code. When p does not yet hold enough to make progress, Next returns
// n == 0 and a zero Frame (f.Op == 0): read more and call again with the
// unconsumed bytes followed by the new ones.
//
// Payload bytes are unmasked in place in p.
func (r *Reader) Next(p []byte) (f Frame, n int, err error) {
	if r.inFrame {
		if len(p) == 0 {
			return Frame{}, 0, nil
		}
		f = r.payload(p)
		if err := r.account(&f); err != nil {
			return Frame{}, 0, err
		}
		return f, len(f.Payload), nil
	}
	if len(p) < 2 {
		return Frame{}, 0, nil
	}
	b0, b1 := p[0], p[1]
	fin := b0&0x80 != 0
	rsv := (b0 >> 4) & 7
	op := OpCode(b0 & 0x0f)
	masked := b1&0x80 != 0
	length := int64(b1 & 0x7f)

	// Everything decidable from the first two bytes is decided before
	// waiting for more, so a bad frame fails fast.
	if op.IsReserved() {
		return Frame{}, 0, ErrReservedOpcode
	}
	if rsv&^4 != 0 || (rsv != 0 && !r.Deflate) {
		return Frame{}, 0, ErrRSVNotNegotiated
	}
	control := op.IsControl()
	if control {
		if !fin {
			return Frame{}, 0, ErrControlFragmented
		}
		if length > MaxControlPayload {
			return Frame{}, 0, ErrControlTooLong
		}
		if rsv != 0 {
			return Frame{}, 0, ErrRSV1OnContinuation
		}
	} else if op == OpContinuation {
		if r.msgOp == 0 {
			return Frame{}, 0, ErrUnexpectedCont
		}
		if rsv != 0 {
			return Frame{}, 0, ErrRSV1OnContinuation
		}
	} else if r.msgOp != 0 {
		return Frame{}, 0, ErrExpectedCont
	}
	if masked == r.Client {
		if r.Client {
			return Frame{}, 0, ErrMaskedFromServer
		}
		return Frame{}, 0, ErrUnmasked
	}

	hl := 2
	switch length {
	case 126:
		hl += 2
	case 127:
		hl += 8
	}
	if masked {
		hl += 4
	}
	if len(p) < hl {
		return Frame{}, 0, nil
	}
	switch length {
	case 126:
		length = int64(binary.BigEndian.Uint16(p[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(p[2:10])
		if u>>63 != 0 {
			return Frame{}, 0, ErrBadLength
		}
		length = int64(u)
	}
	if !control {
		if lim := r.Limits; lim != nil {
			if lim.MaxFrame > 0 && length > lim.MaxFrame {
				return Frame{}, 0, ErrFrameTooBig
			}
			// A compressed message is checked again after inflating; its
			// compressed size can never legitimately exceed the limit either.
			if lim.MaxMessage > 0 && r.msgLen+length > lim.MaxMessage {
				return Frame{}, 0, ErrMessageTooBig
			}
		}
	}
	total := int64(hl) + length
	if control || total < waitBelow {
		if int64(len(p)) < total {
			if op == OpText || (op == OpContinuation && r.msgOp == OpText && !r.compress) {
				var key []byte
				if masked {
					key = p[hl-4 : hl]
				}
				if rsv == 0 && !r.prefixValid(p[hl:], key, op == OpText) {
					// Fail fast even while the rest of a small frame is
					// still in flight (Autobahn 6.4.3/6.4.4).
					return Frame{}, 0, ErrInvalidUTF8
				}
			}
			return Frame{}, 0, nil
		}
	}
	if masked {
		copy(r.mask[:], p[hl-4:hl])
	}
	r.maskOff = 0
	if control {
		payload := p[hl:total]
		if masked {
			ws.Cipher(payload, r.mask, 0)
		}
		return Frame{Op: op, First: true, Fin: true, Payload: payload}, int(total), nil
	}

	first := op != OpContinuation
	if first {
		r.msgOp = op
		r.compress = rsv != 0
		r.msgLen = 0
		r.utf8 = utf8Accept
	}
	r.msgLen += length
	r.remaining = length
	r.frameFin = fin
	r.inFrame = true
	f = r.payload(p[hl:])
	f.First = first
	if err := r.account(&f); err != nil {
		return Frame{}, 0, err
	}
	return f, hl + len(f.Payload), nil
}

// payload returns the next available bytes of the current data frame,
// unmasked, and advances the frame and message state.
func (r *Reader) payload(p []byte) Frame {
	k := int64(len(p))
	if k > r.remaining {
		k = r.remaining
	}
	chunk := p[:k]
	if !r.Client {
		ws.Cipher(chunk, r.mask, int(r.maskOff))
		r.maskOff = uint8((int64(r.maskOff) + k) & 3)
	}
	r.remaining -= k
	f := Frame{Op: r.msgOp, Compressed: r.compress, Payload: chunk}
	if r.remaining == 0 {
		r.inFrame = false
		if r.frameFin {
			f.Fin = true
		}
	}
	return f
}

// account validates a data piece as text where it must be and closes the
// message on its last piece. Compressed text is validated after inflating,
// by the caller (ValidUTF8), since the wire bytes are not the text.
func (r *Reader) account(f *Frame) error {
	if f.Op == OpText && !f.Compressed {
		if f.First && f.Fin {
			// A whole message: the standard library's validator is several
			// times faster than the DFA on non-ASCII text.
			if !utf8.Valid(f.Payload) {
				return ErrInvalidUTF8
			}
			r.msgOp, r.compress, r.msgLen = 0, false, 0
			return nil
		}
		r.utf8 = utf8Step(r.utf8, f.Payload)
		if r.utf8 == utf8Reject || (f.Fin && r.utf8 != utf8Accept) {
			return ErrInvalidUTF8
		}
	}
	if f.Fin {
		r.msgOp, r.compress, r.msgLen = 0, false, 0
	}
	return nil
}

// prefixValid reports whether the masked bytes of a text frame that has
// arrived so far can still be valid UTF-8, without consuming or unmasking
// them in place (they are parsed again when the frame is whole).
func (r *Reader) prefixValid(p, mask []byte, first bool) bool {
	state := r.utf8
	if first {
		state = utf8Accept
	}
	var tmp [256]byte
	for off := 0; off < len(p); off += len(tmp) {
		chunk := p[off:min(off+len(tmp), len(p))]
		n := copy(tmp[:], chunk)
		if mask != nil {
			for i := range n {
				tmp[i] ^= mask[(off+i)&3]
			}
		}
		if state = utf8Step(state, tmp[:n]); state == utf8Reject {
			return false
		}
	}
	return true
}
