package pubsub

import (
	"encoding/binary"
	"errors"
)

// BinaryPushKind is the first byte of a binary push (see AppendBinaryPush).
// A JSON push starts with '{', so the two never look alike.
const BinaryPushKind byte = 0x01

// MaxEpochLen bounds an epoch that fits a binary push's header. wsd's
// brokers make epochs of 8 to 20 bytes.
const MaxEpochLen = 255

// binaryPushFixed is the header's size without the channel and epoch:
// kind, channel length, offset, epoch length.
const binaryPushFixed = 1 + 1 + 8 + 1

// AppendBinaryPush appends p, a binary publication, as the push its
// subscribers receive in a binary WebSocket frame:
//
//	byte  0        0x01 (BinaryPushKind)
//	byte  1        channel length C (1..255)
//	bytes 2..      channel (C bytes, ASCII)
//	8 bytes        offset, unsigned big-endian
//	1 byte         epoch length E (0..255)
//	E bytes        epoch
//	the rest       data, as published
//
// An epoch longer than MaxEpochLen is cut to it (no broker of wsd's makes
// one; a cut epoch still compares equal to itself).
func AppendBinaryPush(dst []byte, p *Publication) []byte {
	epoch := p.Epoch
	if len(epoch) > MaxEpochLen {
		epoch = epoch[:MaxEpochLen]
	}
	dst = append(dst, BinaryPushKind, byte(len(p.Channel)))
	dst = append(dst, p.Channel...)
	dst = binary.BigEndian.AppendUint64(dst, p.Offset)
	dst = append(dst, byte(len(epoch)))
	dst = append(dst, epoch...)
	return append(dst, p.Data...)
}

// BinaryPushSize is len(AppendBinaryPush(nil, p)).
func BinaryPushSize(p *Publication) int {
	return binaryPushFixed + len(p.Channel) + min(len(p.Epoch), MaxEpochLen) + len(p.Data)
}

// ErrBadBinaryPush: a binary frame that is not a well-formed binary push.
var ErrBadBinaryPush = errors.New("pubsub: malformed binary push")

// ParseBinaryPush reads a binary push made by AppendBinaryPush. The
// returned publication's Data aliases b (copy it to keep it past b's
// life); Binary is set and Time is zero.
func ParseBinaryPush(b []byte) (Publication, error) {
	if len(b) < binaryPushFixed || b[0] != BinaryPushKind {
		return Publication{}, ErrBadBinaryPush
	}
	c := int(b[1])
	if c == 0 || len(b) < binaryPushFixed+c {
		return Publication{}, ErrBadBinaryPush
	}
	channel := string(b[2 : 2+c])
	rest := b[2+c:]
	offset := binary.BigEndian.Uint64(rest)
	e := int(rest[8])
	rest = rest[9:]
	if len(rest) < e {
		return Publication{}, ErrBadBinaryPush
	}
	return Publication{Channel: channel, Offset: offset, Epoch: string(rest[:e]), Data: rest[e:], Binary: true}, nil
}
