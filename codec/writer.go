package codec

import (
	"encoding/binary"

	"github.com/gobwas/ws"
)

// HeaderLen is the size of a frame header for a payload of n bytes.
func HeaderLen(n int, masked bool) int {
	h := 2
	switch {
	case n > 0xffff:
		h += 8
	case n > 125:
		h += 2
	}
	if masked {
		h += 4
	}
	return h
}

// AppendHeader appends an unmasked (server-to-client) frame header for a
// payload of n bytes. rsv1 marks the first frame of a compressed message.
func AppendHeader(dst []byte, op OpCode, fin, rsv1 bool, n int) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	if rsv1 {
		b0 |= 0x40
	}
	switch {
	case n > 0xffff:
		dst = append(dst, b0, 127)
		dst = binary.BigEndian.AppendUint64(dst, uint64(n))
	case n > 125:
		dst = append(dst, b0, 126)
		dst = binary.BigEndian.AppendUint16(dst, uint16(n))
	default:
		dst = append(dst, b0, byte(n))
	}
	return dst
}

// AppendFrame appends a whole unmasked frame. The bytes it produces can be
// shared read-only by every connection they are sent to.
func AppendFrame(dst []byte, op OpCode, fin bool, payload []byte) []byte {
	dst = AppendHeader(dst, op, fin, false, len(payload))
	return append(dst, payload...)
}

// AppendMaskedFrame appends a client-to-server frame, masked with key.
// rsv1 marks the first frame of a compressed message.
func AppendMaskedFrame(dst []byte, op OpCode, fin, rsv1 bool, key [4]byte, payload []byte) []byte {
	dst = AppendHeader(dst, op, fin, rsv1, len(payload))
	dst[len(dst)-HeaderLen(len(payload), false)+1] |= 0x80
	dst = append(dst, key[:]...)
	start := len(dst)
	dst = append(dst, payload...)
	ws.Cipher(dst[start:], key, 0)
	return dst
}
