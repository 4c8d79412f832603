// Package wire is the byte layout of wsd's binary frames on /ws
// (docs/protocol.md, Binary publications), shared by the server (pubsub,
// wsproto) and the Go client so that each side has one implementation
// and the client does not import the server's packages. It only lays out
// and splits bytes; what the fields mean is the callers' business.
package wire

import (
	"encoding/binary"
	"errors"
)

// Kinds: the first byte of a binary frame. A JSON message starts with
// '{', so the kinds never look like one.
const (
	PushKind       byte = 0x01 // server → client: a publication
	PublishKind    byte = 0x02 // client → server: a publish request
	LatestPushKind byte = 0x03 // server → client: a push, the newest publication a subscribe with latest asked for
)

// MaxName bounds a channel name and an epoch in a header (one length
// byte each).
const MaxName = 255

// pushFixed is a push header's size without the channel and the epoch:
// kind, channel length, offset, epoch length.
const pushFixed = 1 + 1 + 8 + 1

// Push is a binary push, split.
type Push struct {
	Channel string
	Offset  uint64
	Epoch   string
	Data    []byte // aliases the frame
	Latest  bool   // the frame's kind is LatestPushKind
}

// AppendPush appends a binary push:
//
//	byte  0        0x01 (PushKind)
//	byte  1        channel length C (1..255)
//	C bytes        channel
//	8 bytes        offset, unsigned big-endian
//	1 byte         epoch length E (0..255)
//	E bytes        epoch
//	the rest       data
//
// An epoch longer than MaxName is cut to it; the channel must fit.
func AppendPush(dst []byte, channel string, offset uint64, epoch string, data []byte) []byte {
	if len(epoch) > MaxName {
		epoch = epoch[:MaxName]
	}
	dst = append(dst, PushKind, byte(len(channel)))
	dst = append(dst, channel...)
	dst = binary.BigEndian.AppendUint64(dst, offset)
	dst = append(dst, byte(len(epoch)))
	dst = append(dst, epoch...)
	return append(dst, data...)
}

// PushSize is len(AppendPush(nil, channel, _, epoch, data)).
func PushSize(channel, epoch string, data []byte) int {
	return pushFixed + len(channel) + min(len(epoch), MaxName) + len(data)
}

// ErrBadPush: a frame that is not a well-formed binary push.
var ErrBadPush = errors.New("wire: malformed binary push")

// ParsePush splits a frame made by AppendPush.
func ParsePush(b []byte) (Push, error) {
	if len(b) < pushFixed || b[0] != PushKind && b[0] != LatestPushKind {
		return Push{}, ErrBadPush
	}
	c := int(b[1])
	if c == 0 || len(b) < pushFixed+c {
		return Push{}, ErrBadPush
	}
	p := Push{Channel: string(b[2 : 2+c]), Latest: b[0] == LatestPushKind}
	rest := b[2+c:]
	p.Offset = binary.BigEndian.Uint64(rest)
	e := int(rest[8])
	rest = rest[9:]
	if len(rest) < e {
		return Push{}, ErrBadPush
	}
	p.Epoch, p.Data = string(rest[:e]), rest[e:]
	return p, nil
}

// AppendPublish appends a binary publish request:
//
//	byte  0        0x02 (PublishKind)
//	byte  1        channel length C (1..255)
//	C bytes        channel
//	1 byte         head length I (0..255; 0 = none)
//	I bytes        head: JSON text, the request id (7 or "a7") or an
//	               object with the publish's options
//	the rest       data
//
// channel and head must fit their length bytes.
func AppendPublish(dst []byte, channel string, head, data []byte) []byte {
	dst = append(dst, PublishKind, byte(len(channel)))
	dst = append(dst, channel...)
	dst = append(dst, byte(len(head)))
	dst = append(dst, head...)
	return append(dst, data...)
}

// ErrBadPublish: a frame that is not a well-formed binary publish.
var ErrBadPublish = errors.New("wire: malformed binary publish")

// ParsePublish splits a frame made by AppendPublish; head and data alias
// b.
func ParsePublish(b []byte) (channel string, head, data []byte, err error) {
	if len(b) < 2 || b[0] != PublishKind {
		return "", nil, nil, ErrBadPublish
	}
	c := int(b[1])
	if c == 0 || len(b) < 2+c+1 {
		return "", nil, nil, ErrBadPublish
	}
	channel = string(b[2 : 2+c])
	rest := b[2+c:]
	i := int(rest[0])
	rest = rest[1:]
	if len(rest) < i {
		return "", nil, nil, ErrBadPublish
	}
	return channel, rest[:i], rest[i:], nil
}
