package bench

import (
	"bytes"
	"strconv"

	"github.com/wsdhq/wsd/codec"
)

// Server-Sent Events connections (idle --mode sse): a plain GET of the
// target, answered with a 200 head, then a body that is counted and
// dropped.

// appendSSERequest appends the GET that opens a stream at t.
func appendSSERequest(dst []byte, t *Target) []byte {
	dst = append(dst, "GET "...)
	dst = append(dst, t.Path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, t.Host...)
	return append(dst, "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"...)
}

// readSSEHead parses the response head in p: n is its length, or 0 with
// codec.ErrNeedMore while incomplete. A status other than 200 is a
// *codec.ResponseError, as for a refused upgrade.
func readSSEHead(p []byte) (n int, err error) {
	end := bytes.Index(p, []byte("\r\n\r\n"))
	if end < 0 {
		if len(p) > maxResponseHead {
			return 0, &codec.ResponseError{Reason: "response head too large"}
		}
		return 0, codec.ErrNeedMore
	}
	line, _, _ := bytes.Cut(p[:end], []byte("\r\n"))
	f := bytes.Fields(line)
	if len(f) < 2 || !bytes.HasPrefix(f[0], []byte("HTTP/1.")) {
		return 0, &codec.ResponseError{Reason: "not an HTTP response"}
	}
	status, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return 0, &codec.ResponseError{Reason: "bad status line"}
	}
	if status != 200 {
		return 0, &codec.ResponseError{Status: status, Reason: string(line)}
	}
	return end + 4, nil
}
