package pubsub

import (
	"strconv"
	"unicode/utf8"
)

// AppendPush appends p as the push a subscriber receives:
//
//	{"channel":"news","offset":42,"epoch":"e1","data":<p.Data>}
//
// p.Data is written as it is (it must be valid JSON; Hub.Publish checks).
func AppendPush(dst []byte, p *Publication) []byte {
	dst = append(dst, `{"channel":`...)
	dst = AppendJSONString(dst, p.Channel)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendUint(dst, p.Offset, 10)
	dst = append(dst, `,"epoch":`...)
	dst = AppendJSONString(dst, p.Epoch)
	dst = append(dst, `,"data":`...)
	dst = append(dst, p.Data...)
	return append(dst, '}')
}

// latestMark ends a latest-on-subscribe push.
const latestMark = `,"latest":true}`

// AppendLatestPush appends p as the push of a subscribe with "latest":
// the channel's newest publication, marked:
//
//	{"channel":"news","offset":42,"epoch":"e1","data":<p.Data>,"latest":true}
func AppendLatestPush(dst []byte, p *Publication) []byte {
	dst = AppendPush(dst, p)
	return append(dst[:len(dst)-1], latestMark...)
}

// PushSize is len(AppendPush(nil, p)) or a little more.
func PushSize(p *Publication) int {
	return len(`{"channel":"","offset":18446744073709551615,"epoch":"","data":}`) +
		2*len(p.Channel) + 2*len(p.Epoch) + len(p.Data)
}

// AppendJoinLeave appends the push that tells a channel's subscribers that
// client joined it (its first subscription there started) or left it (its
// last one ended):
//
//	{"channel":"chat:lobby","join":{"client":"ann"}}
//	{"channel":"chat:lobby","leave":{"client":"ann"}}
func AppendJoinLeave(dst []byte, channel, client string, join bool) []byte {
	dst = append(dst, `{"channel":`...)
	dst = AppendJSONString(dst, channel)
	if join {
		dst = append(dst, `,"join":{"client":`...)
	} else {
		dst = append(dst, `,"leave":{"client":`...)
	}
	dst = AppendJSONString(dst, client)
	return append(dst, '}', '}')
}

// JoinLeaveSize is len(AppendJoinLeave(nil, channel, client, join)) or a
// little more.
func JoinLeaveSize(channel, client string) int {
	return len(`{"channel":"","leave":{"client":""}}`) + 6*len(channel) + 6*len(client)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a JSON string, escaping what JSON requires
// (and <, >, & are left alone: pushes are not embedded in HTML). Invalid
// UTF-8 becomes U+FFFD.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
