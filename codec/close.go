package codec

import "encoding/binary"

// ValidCloseCode reports whether code may appear in a close frame on the
// wire (RFC 6455 §7.4, plus 1012–1014 from the IANA registry). 1005, 1006
// and 1015 are for reporting only and are rejected.
func ValidCloseCode(code uint16) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// ParseClose validates a close frame payload and returns its code and
// reason. An empty payload means "no status" (1005). A 1-byte body and
// invalid codes are protocol errors (1002); a reason that is not UTF-8 is
// 1007. reason aliases payload.
func ParseClose(payload []byte) (code uint16, reason []byte, err error) {
	switch len(payload) {
	case 0:
		return CloseNoStatus, nil, nil
	case 1:
		return 0, nil, ErrCloseBody
	}
	code = binary.BigEndian.Uint16(payload)
	if !ValidCloseCode(code) {
		return 0, nil, ErrCloseCode
	}
	reason = payload[2:]
	if !ValidUTF8(reason) {
		return 0, nil, ErrCloseReasonUTF8
	}
	return code, reason, nil
}

// AppendClose appends an unmasked close frame with code and reason. The
// reason is cut to fit the 125-byte control payload, at a UTF-8 boundary.
// Code 1005 (no status) produces an empty body.
func AppendClose(dst []byte, code uint16, reason string) []byte {
	if code == CloseNoStatus || code == 0 {
		return AppendHeader(dst, OpClose, true, false, 0)
	}
	reason = truncateUTF8(reason, MaxControlPayload-2)
	dst = AppendHeader(dst, OpClose, true, false, 2+len(reason))
	dst = binary.BigEndian.AppendUint16(dst, code)
	return append(dst, reason...)
}

// truncateUTF8 cuts s to at most n bytes without splitting a code point.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n]
}
