package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/wsdhq/wsd/codec"
)

var (
	// ErrClosed is returned by requests on (or interrupted by) a closed Client.
	ErrClosed = errors.New("wsd client: closed")
	// ErrNotConnected is returned with Options.FailFast by a request made
	// while disconnected.
	ErrNotConnected = errors.New("wsd client: not connected")
	// ErrConnectionLost is returned by a request whose connection dropped
	// before the reply came: it may or may not have taken effect.
	ErrConnectionLost = errors.New("wsd client: connection lost before the reply")
	// ErrQueueFull is returned by a Publish made while
	// Options.MaxQueuedPublishes publishes already wait for a connection.
	ErrQueueFull = errors.New("wsd client: too many publishes waiting for a connection")
	// ErrUnsubscribed is returned by a Subscribe that Unsubscribe overtook.
	ErrUnsubscribed = errors.New("wsd client: unsubscribed before the subscription completed")
)

// ServerError is an error reply from the server:
// {"id":1,"error":{"code":"...","message":"..."}}.
type ServerError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("wsd server: %s: %s", e.Code, e.Message)
}

// HandshakeError is an upgrade the server answered with a status other
// than 101.
type HandshakeError struct {
	Status int
	Body   string // the start of the response body, if any
	// RetryAfter is the response's Retry-After (whole seconds or an HTTP
	// date), 0 if it had none; the client waits at least this long before
	// its next attempt. Capped at 10 minutes.
	RetryAfter time.Duration
}

func (e *HandshakeError) Error() string {
	if e.Body != "" {
		return fmt.Sprintf("wsd client: upgrade refused with %d: %s", e.Status, e.Body)
	}
	return fmt.Sprintf("wsd client: upgrade refused with %d", e.Status)
}

// Permanent reports whether retrying cannot help: a 4xx other than 408
// (timeout) and 429 (too many requests).
func (e *HandshakeError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 && e.Status != 408 && e.Status != 429
}

// CloseError is a close frame received from the server.
type CloseError struct {
	Code   uint16
	Reason string
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("wsd client: closed by the server: %d %s", e.Code, e.Reason)
}

// Permanent reports whether the protocol asks clients not to reconnect
// after this close: 1008 "rate limit exceeded" (docs/protocol.md).
func (e *CloseError) Permanent() bool {
	return e.Code == 1008 && e.Reason == "rate limit exceeded"
}

// RetryHint returns the wait the server asked for in the close reason
// ("restart; retry=3.250" is 3.25 s; docs/protocol.md), capped at 10
// minutes. ok is false when the reason carries no valid hint.
func (e *CloseError) RetryHint() (d time.Duration, ok bool) {
	return codec.ParseRetryHint(e.Reason)
}

// SubscriptionError is a subscription that failed after a reconnect (see
// Options.OnError): the server refused to subscribe Channel again.
type SubscriptionError struct {
	Channel string
	Err     error
}

func (e *SubscriptionError) Error() string {
	return fmt.Sprintf("wsd client: resubscribing to %q: %v", e.Channel, e.Err)
}

func (e *SubscriptionError) Unwrap() error { return e.Err }
