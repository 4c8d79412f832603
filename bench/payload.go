package bench

import (
	"encoding/binary"
	"math/rand/v2"
)

// patternLen is the length of the fill pattern; payload fill starts at an
// offset derived from the sequence number, so consecutive messages differ.
const patternLen = 1 << 16

// bcastHeader is the broadcast payload prefix: 16 hex digits of sequence
// number, 16 of the publisher's wall clock in ns.
const bcastHeader = 32

// pattern is printable ASCII without space or newline ('!'..'~'), valid as
// text and safe to split broadcast messages on '\n' (gorilla's chat hub joins
// queued messages with newlines). Built once from a fixed seed; read-only.
var pattern = func() []byte {
	r := rand.New(rand.NewPCG(6455, 7692))
	p := make([]byte, patternLen+512)
	for i := range p {
		p[i] = byte('!' + r.IntN('~'-'!'+1))
	}
	return p
}()

const hexDigits = "0123456789abcdef"

func appendHex64(dst []byte, v uint64) []byte {
	for s := 60; s >= 0; s -= 4 {
		dst = append(dst, hexDigits[(v>>uint(s))&15])
	}
	return dst
}

func parseHex64(p []byte) (uint64, bool) {
	if len(p) < 16 {
		return 0, false
	}
	var v uint64
	for _, c := range p[:16] {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// appendFill appends n pattern bytes chosen by seq.
func appendFill(dst []byte, seq uint64, n int) []byte { return appendFillFrom(dst, pattern, seq, n) }

func appendFillFrom(dst, pat []byte, seq uint64, n int) []byte {
	off := int((seq * 7919) % 509)
	for n > 0 {
		k := n
		if k > patternLen {
			k = patternLen
		}
		dst = append(dst, pat[off:off+k]...)
		n -= k
	}
	return dst
}

// fillOK reports whether fill is what appendFillFrom(nil, pat, seq, len(fill)) makes.
func fillOK(fill, pat []byte, seq uint64) bool {
	off := int((seq * 7919) % 509)
	for i := 0; i < len(fill); i += patternLen {
		end := min(len(fill), i+patternLen)
		if string(fill[i:end]) != string(pat[off:off+end-i]) {
			return false
		}
	}
	return true
}

// appendEchoPayload appends the size-byte payload of message seq of
// connection id: 16 hex digits naming both, then fill. Messages shorter
// than 16 bytes are fill only.
func appendEchoPayload(dst []byte, id, seq uint64, size int) []byte {
	if size >= 16 {
		dst = appendHex64(dst, id<<40|seq&(1<<40-1))
		return appendFill(dst, seq, size-16)
	}
	return appendFill(dst, seq, size)
}

// appendBcastPayload appends a broadcast payload: seq, publish time, fill.
func appendBcastPayload(dst []byte, seq uint64, wallNs int64, size int) []byte {
	dst = appendHex64(dst, seq)
	dst = appendHex64(dst, uint64(wallNs))
	return appendFill(dst, seq, size-bcastHeader)
}

// parseBcast returns the sequence number and publish time of a broadcast
// payload and whether its fill is intact.
func parseBcast(p []byte) (seq uint64, wallNs int64, ok bool) {
	if len(p) < bcastHeader {
		return 0, 0, false
	}
	seq, ok1 := parseHex64(p[:16])
	ts, ok2 := parseHex64(p[16:32])
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	return seq, int64(ts), fillOK(p[bcastHeader:], pattern, seq)
}

// pingPayload and pongTime carry a monotonic timestamp in a ping.
func pingPayload(dst []byte, ns int64) []byte { return binary.BigEndian.AppendUint64(dst, uint64(ns)) }

func pongTime(p []byte) (int64, bool) {
	if len(p) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(p)), true
}
