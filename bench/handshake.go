package bench

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"strconv"
)

const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxResponseHead bounds the upgrade response we are willing to buffer.
const maxResponseHead = 8192

// appendUpgradeRequest appends the client's upgrade request for key (24
// bytes of base64).
func appendUpgradeRequest(dst []byte, t *Target, key []byte, deflate bool) []byte {
	dst = append(dst, "GET "...)
	dst = append(dst, t.Path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, t.Host...)
	dst = append(dst, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "...)
	dst = append(dst, key...)
	if deflate {
		dst = append(dst, "\r\nSec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover"...)
	}
	return append(dst, "\r\n\r\n"...)
}

// acceptFor is the Sec-WebSocket-Accept value a server must answer key with.
func acceptFor(key []byte) string {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte(wsGUID))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// upgradeResponse is what we need from the server's answer.
type upgradeResponse struct {
	status  int
	accept  string
	deflate bool
}

// parseUpgradeResponse parses a complete response head (through CRLFCRLF).
func parseUpgradeResponse(head []byte) (upgradeResponse, bool) {
	var r upgradeResponse
	line, rest, ok := bytes.Cut(head, []byte("\r\n"))
	if !ok || !bytes.HasPrefix(line, []byte("HTTP/1.")) || len(line) < 12 {
		return r, false
	}
	st, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return r, false
	}
	r.status = st
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			r.accept = string(value)
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Extensions")):
			if bytes.Contains(bytes.ToLower(value), []byte("permessage-deflate")) {
				r.deflate = true
			}
		}
	}
	return r, true
}
