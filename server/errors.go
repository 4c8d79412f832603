package server

import (
	"errors"
	"strconv"

	"github.com/wsdhq/wsd/codec"
)

// CloseError is how a connection ended: the close code and reason from the
// close frame (sent or received), and why, in words also used in metrics
// ("peer_close", "idle", "slow_consumer", "protocol_error", ...).
type CloseError struct {
	Code   int
	Reason string
	Cause  string
}

func (e *CloseError) Error() string {
	s := "websocket closed: " + strconv.Itoa(e.Code)
	if e.Reason != "" {
		s += " " + e.Reason
	}
	return s + " (" + e.Cause + ")"
}

// CloseStatus returns err's close code, or -1 if err is not a *CloseError.
func CloseStatus(err error) int {
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// ProtocolError is a peer's violation of RFC 6455/7692.
type ProtocolError = codec.ProtocolError

// HTTPError refuses an upgrade with an HTTP status (return it from Accept).
type HTTPError = codec.HTTPError
