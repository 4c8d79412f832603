package bench

import (
	"bytes"
	"strconv"
)

// The /ws mode of the broadcast scenario speaks wsd's JSON protocol
// (docs/protocol.md). Everything here works on the raw bytes without
// allocating: a push is recognised by its prefix, which is how wsd encodes
// it ({"channel":...,"offset":...,"epoch":...,"data":...}), and the data
// object is the one appendWSData wrote, passed through verbatim.

// wsDataMin is the smallest data size in /ws mode: the fixed part of
// {"seq":N,"ts":T,"pad":""} with the longest numbers.
const wsDataMin = 64

// jsonPattern is pattern without the two bytes a JSON string must escape,
// so that the fill can travel as a JSON string as it is.
var jsonPattern = func() []byte {
	p := bytes.Clone(pattern)
	for i, c := range p {
		if c == '"' || c == '\\' {
			p[i] = '_'
		}
	}
	return p
}()

const (
	wsPushPrefix = `{"channel":`
	wsDataKey    = `"data":`
	wsSeqKey     = `{"seq":`
	wsTsKey      = `,"ts":`
	wsPadKey     = `,"pad":"`
)

// appendWSData appends the data of publication seq, exactly size bytes
// (size ≥ wsDataMin): {"seq":N,"ts":UNIX_NANOS,"pad":"<fill chosen by seq>"}.
func appendWSData(dst []byte, seq uint64, wallNs int64, size int) []byte {
	start := len(dst)
	dst = append(dst, wsSeqKey...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, wsTsKey...)
	dst = strconv.AppendInt(dst, wallNs, 10)
	dst = append(dst, wsPadKey...)
	dst = appendFillFrom(dst, jsonPattern, seq, max(0, size-(len(dst)-start)-2))
	return append(dst, `"}`...)
}

// appendWSPublish appends a publish request with id seq carrying
// publication seq's data.
func appendWSPublish(dst []byte, channel string, seq uint64, wallNs int64, size int) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"op":"publish","channel":"`...)
	dst = append(dst, channel...) // checkChannel: nothing to escape
	dst = append(dst, `","data":`...)
	dst = appendWSData(dst, seq, wallNs, size)
	return append(dst, '}')
}

// wsSubscribe is the subscribe request every subscriber sends (id 1).
func wsSubscribe(channel string) []byte {
	return []byte(`{"id":1,"op":"subscribe","channel":"` + channel + `"}`)
}

// wsDataStatus is what parseWSData found.
type wsDataStatus uint8

const (
	wsDataOK     wsDataStatus = iota
	wsDataBadPad              // seq and ts read, but the pad or the length is wrong
	wsDataBad                 // not our data at all
)

// parseWSData reads data written by appendWSData at the start of p and
// returns its seq, ts and length.
func parseWSData(p []byte) (seq uint64, ts int64, n int, st wsDataStatus) {
	if !bytes.HasPrefix(p, []byte(wsSeqKey)) {
		return 0, 0, 0, wsDataBad
	}
	i := len(wsSeqKey)
	seq, k := parseUint(p[i:])
	if k == 0 {
		return 0, 0, 0, wsDataBad
	}
	i += k
	if !bytes.HasPrefix(p[i:], []byte(wsTsKey)) {
		return 0, 0, 0, wsDataBad
	}
	i += len(wsTsKey)
	t, k := parseUint(p[i:])
	if k == 0 {
		return 0, 0, 0, wsDataBad
	}
	i += k
	if !bytes.HasPrefix(p[i:], []byte(wsPadKey)) {
		return seq, int64(t), 0, wsDataBadPad
	}
	i += len(wsPadKey)
	end := bytes.IndexByte(p[i:], '"')
	if end < 0 || i+end+1 >= len(p) || p[i+end+1] != '}' {
		return seq, int64(t), 0, wsDataBadPad
	}
	if !fillOK(p[i:i+end], jsonPattern, seq) {
		return seq, int64(t), i + end + 2, wsDataBadPad
	}
	return seq, int64(t), i + end + 2, wsDataOK
}

// parseUint reads a decimal number at the start of p (at most 19 digits)
// and returns it and the digits read (0: none).
func parseUint(p []byte) (uint64, int) {
	var v uint64
	i := 0
	for i < len(p) && i < 19 && p[i] >= '0' && p[i] <= '9' {
		v = v*10 + uint64(p[i]-'0')
		i++
	}
	return v, i
}

// wsMsgKind classifies a message from /ws.
type wsMsgKind uint8

const (
	wsPush      wsMsgKind = iota + 1 // a push on our channel
	wsOtherPush                      // a push on another channel
	wsReply                          // a reply (result or error)
	wsUnknown                        // neither
)

// classifyWS tells pushes from replies. For a push on our channel
// (quotedChannel is the channel as a JSON string) it returns the bytes from
// the data value on; for a reply, whether it is an error and its code.
func classifyWS(p, quotedChannel []byte) (kind wsMsgKind, data []byte, errCode []byte) {
	if bytes.HasPrefix(p, []byte(wsPushPrefix)) {
		rest := p[len(wsPushPrefix):]
		if !bytes.HasPrefix(rest, quotedChannel) {
			return wsOtherPush, nil, nil
		}
		rest = rest[len(quotedChannel):]
		i := bytes.Index(rest, []byte(wsDataKey))
		if i < 0 {
			return wsUnknown, nil, nil
		}
		return wsPush, rest[i+len(wsDataKey):], nil
	}
	if bytes.HasPrefix(p, []byte(`{"id":`)) || bytes.HasPrefix(p, []byte(`{"result":`)) || bytes.HasPrefix(p, []byte(`{"error":`)) {
		if i := bytes.Index(p, []byte(`"error":`)); i >= 0 && !bytes.Contains(p[:i], []byte(`"result":`)) {
			code := p[i:]
			if j := bytes.Index(code, []byte(`"code":"`)); j >= 0 {
				code = code[j+len(`"code":"`):]
				if k := bytes.IndexByte(code, '"'); k >= 0 {
					return wsReply, nil, code[:k]
				}
			}
			return wsReply, nil, []byte("?")
		}
		return wsReply, nil, nil
	}
	return wsUnknown, nil, nil
}

// replyID reads the numeric id of a reply ({"id":N,...}).
func replyID(p []byte) (uint64, bool) {
	if !bytes.HasPrefix(p, []byte(`{"id":`)) {
		return 0, false
	}
	v, k := parseUint(p[len(`{"id":`):])
	return v, k > 0
}

// Binary publications (docs/protocol.md, "Binary publications"): with
// Config.Binary the publisher sends binary publish frames carrying the raw
// broadcast payload (appendBcastPayload), and subscribers get binary
// pushes: 0x01, channel length, channel, 8-byte offset, epoch length,
// epoch, data.

// appendWSBinaryPublish appends a binary publish frame with id seq
// carrying publication seq's data (size bytes, ≥ bcastHeader).
func appendWSBinaryPublish(dst []byte, channel string, seq uint64, wallNs int64, size int) []byte {
	dst = append(dst, 0x02, byte(len(channel)))
	dst = append(dst, channel...)
	n := len(dst)
	dst = append(dst, 0)
	dst = strconv.AppendUint(dst, seq, 10)
	dst[n] = byte(len(dst) - n - 1)
	return appendBcastPayload(dst, seq, wallNs, size)
}

// splitWSBinaryPush returns a binary push's data, or ok false when p is
// not a binary push on channel (other: it is one, on another channel).
func splitWSBinaryPush(p []byte, channel string) (data []byte, ok, other bool) {
	if len(p) < 2 || p[0] != 0x01 {
		return nil, false, false
	}
	c := int(p[1])
	if len(p) < 2+c+9 {
		return nil, false, false
	}
	if string(p[2:2+c]) != channel {
		return nil, false, true
	}
	rest := p[2+c+8:]
	e := int(rest[0])
	if len(rest) < 1+e {
		return nil, false, false
	}
	return rest[1+e:], true, false
}
