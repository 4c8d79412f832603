package pubsub

import "github.com/wsdhq/wsd/internal/wire"

// BinaryPushKind is the first byte of a binary push (see AppendBinaryPush).
// A JSON push starts with '{', so the two never look alike.
const BinaryPushKind = wire.PushKind

// MaxEpochLen bounds an epoch that fits a binary push's header. wsd's
// brokers make epochs of 8 to 20 bytes.
const MaxEpochLen = wire.MaxName

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
	return wire.AppendPush(dst, p.Channel, p.Offset, p.Epoch, p.Data)
}

// BinaryPushSize is len(AppendBinaryPush(nil, p)).
func BinaryPushSize(p *Publication) int { return wire.PushSize(p.Channel, p.Epoch, p.Data) }

// ErrBadBinaryPush: a binary frame that is not a well-formed binary push.
var ErrBadBinaryPush = wire.ErrBadPush

// ParseBinaryPush reads a binary push made by AppendBinaryPush. The
// returned publication's Data aliases b (copy it to keep it past b's
// life); Binary is set and Time is zero.
func ParseBinaryPush(b []byte) (Publication, error) {
	p, err := wire.ParsePush(b)
	if err != nil || p.Latest { // a latest push (0x03) is not AppendBinaryPush's
		return Publication{}, ErrBadBinaryPush
	}
	return Publication{Channel: p.Channel, Offset: p.Offset, Epoch: p.Epoch, Data: p.Data, Binary: true}, nil
}
