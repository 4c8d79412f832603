package bench

import (
	"errors"
	"strconv"

	"github.com/wsdhq/wsd/codec"
)

// deflateOffer is what wsbench offers with Config.Deflate: no context
// takeover either way, so that neither side keeps flate state per
// connection and a run measures the server's per-message cost.
const deflateOffer = "permessage-deflate; client_no_context_takeover; server_no_context_takeover"

// maxResponseHead bounds the upgrade response we are willing to buffer.
const maxResponseHead = 8192

// clientHandshake is the upgrade every connection to t makes.
func clientHandshake(t *Target, deflate bool) codec.ClientHandshake {
	h := codec.ClientHandshake{Host: t.Host, Path: t.Path, MaxHeaderBytes: maxResponseHead}
	if deflate {
		h.Extensions = deflateOffer
	}
	return h
}

// handshakeFailure names why the upgrade failed, for the report's reason
// counts: a few distinct strings, not one per connection.
func handshakeFailure(err error) string {
	var re *codec.ResponseError
	if errors.As(err, &re) {
		if re.Status != 0 {
			return "handshake: HTTP " + strconv.Itoa(re.Status)
		}
		return "handshake: " + re.Reason
	}
	return "handshake: " + err.Error()
}
