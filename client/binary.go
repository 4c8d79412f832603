package client

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wire"
)

// handleData hands a complete message to its reader: text ones are JSON
// (handleMessage), binary ones are binary pushes. On the run goroutine.
func (c *Client) handleData(cn *conn, op codec.OpCode, p []byte) {
	if op == codec.OpText {
		c.handleMessage(cn, p)
		return
	}
	pub, err := wire.ParsePush(p)
	if err != nil {
		c.asyncError(fmt.Errorf("wsd client: bad binary message from the server: %w", err))
		return
	}
	// p is the read buffer's: the callback gets its own copy.
	m := incoming{Channel: pub.Channel, Offset: pub.Offset, Epoch: pub.Epoch, Data: append([]byte(nil), pub.Data...), binary: true, Latest: pub.Latest}
	c.handlePublication(cn, &m)
}

// frame is r on the wire: a JSON text frame, or for PublishBinary a binary
// publish frame whose head carries r's id and idempotency key.
func (r *request) frame() (codec.OpCode, []byte) {
	if r.binary == nil {
		return opText, encode(*r)
	}
	head := append([]byte(`{"id":`), strconv.FormatUint(r.ID, 10)...)
	if r.IdempotencyKey != "" {
		head = append(append(append(head, `,"idempotency_key":"`...), r.IdempotencyKey...), '"') // printable, no quotes: newKey's alphabet
	}
	return codec.OpBinary, wire.AppendPublish(nil, r.Channel, append(head, '}'), r.binary)
}

// PublishBinary publishes data, raw bytes (at least one), to channel as a
// binary publication: subscribers get it in a binary frame (see Binary
// publications in docs/protocol.md; OnBinaryPublication here). It returns
// where the publication landed, in the offsets the channel's JSON
// publications share. Like Publish it is made exactly once across a
// dropped connection and waits for a connection while disconnected. Safe
// from any goroutine.
func (c *Client) PublishBinary(ctx context.Context, channel string, data []byte) (PublishResult, error) {
	if channel == "" || len(channel) > wire.MaxName {
		return PublishResult{}, fmt.Errorf("wsd client: channel name of %d bytes (1 to %d)", len(channel), wire.MaxName)
	}
	if len(data) == 0 {
		return PublishResult{}, fmt.Errorf("wsd client: a binary publication needs at least one byte")
	}
	res, err := c.publishRetrying(ctx, request{Op: opPublish, Channel: channel, binary: data})
	if err != nil {
		return PublishResult{}, err
	}
	var r PublishResult
	if err := json.Unmarshal(res, &r); err != nil {
		return PublishResult{}, fmt.Errorf("wsd client: bad publish result: %w", err)
	}
	return r, nil
}
