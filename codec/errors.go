package codec

import (
	"errors"
	"strconv"
)

// ErrNeedMore reports that the input ends before the item being parsed does.
// The caller keeps the bytes and calls again with more appended.
var ErrNeedMore = errors.New("codec: need more bytes")

// Close codes (RFC 6455 §7.4.1, IANA registry) that the codec itself decides on.
const (
	CloseNormal          uint16 = 1000
	CloseGoingAway       uint16 = 1001
	CloseProtocolError   uint16 = 1002
	CloseUnsupported     uint16 = 1003
	CloseNoStatus        uint16 = 1005 // never on the wire
	CloseAbnormal        uint16 = 1006 // never on the wire
	CloseInvalidPayload  uint16 = 1007
	ClosePolicyViolation uint16 = 1008
	CloseTooBig          uint16 = 1009
	CloseMandatoryExt    uint16 = 1010
	CloseInternalError   uint16 = 1011
	CloseServiceRestart  uint16 = 1012
	CloseTryAgainLater   uint16 = 1013
)

// ProtocolError is a violation of RFC 6455/7692 by the peer. Code is the close
// code the connection must be failed with (1002, 1007 or 1009); Reason is a
// short text safe to put in the close frame (≤ 123 bytes, ASCII).
type ProtocolError struct {
	Code   uint16
	Reason string
}

func (e *ProtocolError) Error() string {
	return "websocket: " + e.Reason + " (close " + strconv.Itoa(int(e.Code)) + ")"
}

// Errors are values, not allocations: the parser returns these shared
// pointers so that failing a connection costs nothing.
var (
	ErrReservedOpcode     = &ProtocolError{CloseProtocolError, "reserved opcode"}
	ErrRSVNotNegotiated   = &ProtocolError{CloseProtocolError, "reserved bit set without a negotiated extension"}
	ErrRSV1OnContinuation = &ProtocolError{CloseProtocolError, "compression bit on a control or continuation frame"}
	ErrControlTooLong     = &ProtocolError{CloseProtocolError, "control frame payload over 125 bytes"}
	ErrControlFragmented  = &ProtocolError{CloseProtocolError, "fragmented control frame"}
	ErrUnmasked           = &ProtocolError{CloseProtocolError, "client frame not masked"}
	ErrMaskedFromServer   = &ProtocolError{CloseProtocolError, "server frame masked"}
	ErrUnexpectedCont     = &ProtocolError{CloseProtocolError, "continuation frame without a message to continue"}
	ErrExpectedCont       = &ProtocolError{CloseProtocolError, "new data frame inside a fragmented message"}
	ErrBadLength          = &ProtocolError{CloseProtocolError, "non-minimal or negative payload length"}
	ErrCloseBody          = &ProtocolError{CloseProtocolError, "close frame with a 1-byte body"}
	ErrCloseCode          = &ProtocolError{CloseProtocolError, "invalid close code"}
	ErrCloseReasonUTF8    = &ProtocolError{CloseInvalidPayload, "close reason is not valid UTF-8"}
	ErrInvalidUTF8        = &ProtocolError{CloseInvalidPayload, "text message is not valid UTF-8"}
	ErrFrameTooBig        = &ProtocolError{CloseTooBig, "frame exceeds the size limit"}
	ErrMessageTooBig      = &ProtocolError{CloseTooBig, "message exceeds the size limit"}
	ErrCorruptCompression = &ProtocolError{CloseInvalidPayload, "invalid permessage-deflate data"}
)
