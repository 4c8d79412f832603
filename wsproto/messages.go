package wsproto

import (
	"encoding/json"
	"errors"

	"github.com/wsdhq/wsd/pubsub"
)

// Request is a client → server message.
type Request struct {
	ID       json.RawMessage        `json:"id,omitempty"` // a number or a string, echoed in the reply
	Op       string                 `json:"op"`           // subscribe, unsubscribe, publish, presence, history, presence_stats, rpc, refresh, ping
	Channel  string                 `json:"channel"`
	Since    *pubsub.StreamPosition `json:"since,omitempty"`     // subscribe: recover after this position; history: read after it
	Data     json.RawMessage        `json:"data,omitempty"`      // publish, rpc: any JSON
	Method   string                 `json:"method,omitempty"`    // rpc: the backend's method
	Token    string                 `json:"token,omitempty"`     // refresh: the new connection token; subscribe: a channel token
	Server   bool                   `json:"server,omitempty"`    // subscribe: only restart a server-side subscription
	Latest   bool                   `json:"latest,omitempty"`    // subscribe: push the newest kept publication first (ignored with since)
	Limit    *int                   `json:"limit,omitempty"`     // history: how many publications (0..1000, default 1000)
	SkipSelf bool                   `json:"skip_self,omitempty"` // publish: this connection does not get its own copy
	// IdempotencyKey (publish): a retry with the same key within
	// pubsub.DedupWindow is not published again; its reply has the first
	// one's position.
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// maxKeyLen bounds an idempotency key.
const maxKeyLen = 128

const errBadKey = "idempotency_key: at most 128 printable ASCII characters, no spaces"

// validKey reports whether key is usable as an idempotency key ("" is: no
// key). Printable ASCII only: it travels in a NATS header.
func validKey(key string) bool {
	if len(key) > maxKeyLen {
		return false
	}
	for i := 0; i < len(key); i++ {
		if key[i] <= ' ' || key[i] > '~' {
			return false
		}
	}
	return true
}

// Reply answers a Request: Result on success, Error otherwise.
type Reply struct {
	ID     json.RawMessage `json:"id,omitempty"`
	Result any             `json:"result,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// Error is a reply's error.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// SubscribeResult is the result of subscribe.
type SubscribeResult struct {
	Epoch     string `json:"epoch"`
	Offset    uint64 `json:"offset"`    // the channel's latest offset: live pushes come after it
	Recovered bool   `json:"recovered"` // since was given and every missed publication follows
}

// PublishResult is the result of publish (and of POST /api/publish).
type PublishResult struct {
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// PresenceResult is the result of presence (and of GET /api/presence).
type PresenceResult struct {
	Channel     string   `json:"channel"`
	Count       int      `json:"count"`       // distinct client IDs
	Connections int      `json:"connections"` // subscriptions (a client may hold several)
	Clients     []string `json:"clients"`     // the client IDs, sorted
}

// PresenceStatsResult is the result of presence_stats: presence counted,
// not listed.
type PresenceStatsResult struct {
	Channel     string `json:"channel"`
	Count       int    `json:"count"`       // distinct client IDs per node, summed over the nodes
	Connections int    `json:"connections"` // subscriptions
}

// Error codes, in replies and in the HTTP API's error bodies.
const (
	CodeBadRequest        = "bad_request"            // not JSON, not a text frame, missing or malformed field
	CodeUnknownOp         = "unknown_op"             // op is not one of the known ones
	CodeBadChannel        = "bad_channel"            // not a valid channel name
	CodeUnknownNamespace  = "unknown_namespace"      // namespace not configured (strict namespaces)
	CodeForbidden         = "forbidden"              // the token's channels or the namespace's publish policy do not allow it
	CodeTooLarge          = "too_large"              // data over max_data_bytes
	CodeAlreadySubscribed = "already_subscribed"     // subscribe to a channel this connection is subscribed to
	CodeNotSubscribed     = "not_subscribed"         // unsubscribe from a channel it is not subscribed to
	CodeTooManySubs       = "too_many_subscriptions" // over max_subscriptions
	CodePresenceDisabled  = "presence_disabled"      // presence is off in the channel's namespace
	CodeInternal          = "internal"               // the broker failed
	CodeUnauthorized      = "unauthorized"           // HTTP API: missing or wrong API key
	CodeAPIDisabled       = "api_disabled"           // HTTP API: no API key configured
	CodeMethodNotAllowed  = "method_not_allowed"     // HTTP API
	CodeNotFound          = "not_found"              // HTTP API: no such endpoint
	CodeBadToken          = "bad_token"              // refresh or channel token invalid, expired, or for another client or channel
)

// numCodes is the number of error codes.
const numCodes = 17

// allCodes lists the error codes; it indexes the per-code counters.
func allCodes() [numCodes]string {
	return [numCodes]string{CodeBadRequest, CodeUnknownOp, CodeBadChannel, CodeUnknownNamespace, CodeForbidden,
		CodeTooLarge, CodeAlreadySubscribed, CodeNotSubscribed, CodeTooManySubs, CodePresenceDisabled, CodeInternal,
		CodeUnauthorized, CodeAPIDisabled, CodeMethodNotAllowed, CodeNotFound, CodeBackendUnavailable, CodeBadToken}
}

// codeIndex is code's counter. Codes that are not wsd's own (an rpc
// backend's) count under otherCodes, at index numCodes.
func codeIndex(code string) int {
	for i, c := range allCodes() {
		if c == code {
			return i
		}
	}
	return numCodes
}

// otherCodes names the error replies with a backend's own code in Stats.
const otherCodes = "backend_defined"

// errorFor maps a pubsub error, possibly wrapped, to a reply error.
func errorFor(err error) *Error {
	switch {
	case errors.Is(err, pubsub.ErrBadChannel):
		return &Error{CodeBadChannel, "invalid channel name"}
	case errors.Is(err, pubsub.ErrUnknownNamespace):
		return &Error{CodeUnknownNamespace, "unknown channel namespace"}
	case errors.Is(err, pubsub.ErrBadData):
		return &Error{CodeBadRequest, "data is not valid JSON"}
	case errors.Is(err, pubsub.ErrPresenceDisabled):
		return &Error{CodePresenceDisabled, "presence is off for this channel's namespace"}
	}
	return &Error{CodeInternal, "internal error"}
}
