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

// CloseStatus returns the close code of err if it is (or wraps) a
// *CloseError, and -1 otherwise. Safe from any goroutine.
func CloseStatus(err error) int {
	if ce, ok := errors.AsType[*CloseError](err); ok {
		return ce.Code
	}
	return -1
}

// HTTPError refuses an upgrade with an HTTP status (return it from Accept).
type HTTPError = codec.HTTPError
