package wsproto

import (
	"encoding/json"
	"fmt"

	"github.com/wsdhq/wsd/internal/wire"
	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
)

// BinaryPublishKind is the first byte of a client's binary publish frame
// (see AppendBinaryPublish).
const BinaryPublishKind = wire.PublishKind

// BinaryPublish is a client's binary publish request, read from a binary
// WebSocket frame.
type BinaryPublish struct {
	Channel        string
	ID             json.RawMessage // the request id's JSON text (a number or a string); nil: none
	IdempotencyKey string          // as a JSON publish's idempotency_key
	SkipSelf       bool            // as a JSON publish's skip_self
	Data           []byte          // aliases the frame
}

// binaryOptions is the object form of a binary publish's head.
type binaryOptions struct {
	ID             json.RawMessage `json:"id"`
	IdempotencyKey string          `json:"idempotency_key"`
	SkipSelf       bool            `json:"skip_self"`
}

// ErrBadBinaryPublish: a binary frame that is not a well-formed publish.
var ErrBadBinaryPublish = wire.ErrBadPublish

// AppendBinaryPublish appends a binary publish request, the frame a client
// sends to publish raw bytes over /ws:
//
//	byte  0        0x02 (BinaryPublishKind)
//	byte  1        channel length C (1..255)
//	C bytes        channel
//	1 byte         head length I (0..255; 0 = no id)
//	I bytes        the id as JSON text: 7 or "a7"; or an object with the
//	               publish's options: {"id":7,"idempotency_key":"k1","skip_self":true}
//	the rest       data (at least one byte)
//
// The server answers with an ordinary JSON reply carrying the id. head
// must be at most 255 bytes of JSON text, channel at most 255 bytes.
func AppendBinaryPublish(dst []byte, channel string, head json.RawMessage, data []byte) []byte {
	return wire.AppendPublish(dst, channel, head, data)
}

// ParseBinaryPublish reads a frame made by AppendBinaryPublish. It checks
// the layout, that the id is a JSON number or string and the options
// well-formed; the channel's name and the data's size are the handler's to
// check.
func ParseBinaryPublish(b []byte) (BinaryPublish, error) {
	channel, head, data, err := wire.ParsePublish(b)
	if err != nil || len(data) == 0 {
		return BinaryPublish{}, ErrBadBinaryPublish
	}
	p := BinaryPublish{Channel: channel, Data: data}
	if len(head) == 0 {
		return p, nil
	}
	p.ID = json.RawMessage(head)
	if head[0] == '{' {
		var o binaryOptions
		if json.Unmarshal(head, &o) != nil || !validKey(o.IdempotencyKey) {
			return BinaryPublish{}, ErrBadBinaryPublish
		}
		p.ID, p.IdempotencyKey, p.SkipSelf = o.ID, o.IdempotencyKey, o.SkipSelf
		if string(p.ID) == "null" {
			p.ID = nil
		}
	}
	if len(p.ID) > 0 && (!validID(p.ID) || string(p.ID) == "null" || !json.Valid(p.ID)) {
		return BinaryPublish{}, ErrBadBinaryPublish
	}
	return p, nil
}

// binaryPublish serves a binary frame: a publish of raw bytes, answered
// like a JSON publish (PublishResult or an error, with the frame's id).
func (h *Handler) binaryPublish(c *server.Conn[Session], data []byte) {
	p, err := ParseBinaryPublish(data)
	if err != nil {
		h.fail(c, p.ID, &Error{CodeBadRequest, "binary frames are publishes: 0x02, channel length, channel, id length, id, data (see the protocol)"})
		return
	}
	req := &Request{ID: p.ID, Op: "publish", Channel: p.Channel, IdempotencyKey: p.IdempotencyKey, SkipSelf: p.SkipSelf}
	if !h.mayPublish(c, req) {
		return
	}
	if len(p.Data) > h.cfg.MaxDataBytes {
		h.fail(c, req.ID, &Error{CodeTooLarge, fmt.Sprintf("data over %d bytes", h.cfg.MaxDataBytes)})
		return
	}
	if h.px.publish.covers(pubsub.NamespaceOf(req.Channel)) {
		// The publish proxy's backend speaks JSON data only.
		h.fail(c, req.ID, &Error{CodeForbidden, "binary publications are not taken in a namespace with a publish proxy"})
		return
	}
	h.publishNow(c, req, p.Data, true)
}

// mayPublish checks the channel, the client's access and the namespace's
// publish policy, as publish does for JSON publications, replying the
// error when one fails.
func (h *Handler) mayPublish(c *server.Conn[Session], req *Request) bool {
	if !h.checkChannel(c, req) {
		return false
	}
	o, err := h.hub.Namespace(req.Channel)
	if err != nil {
		h.fail(c, req.ID, errorFor(err))
		return false
	}
	switch o.Publish {
	case pubsub.PublishNone:
		h.fail(c, req.ID, &Error{CodeForbidden, "clients may not publish to " + req.Channel})
		return false
	case pubsub.PublishSubscribers:
		if !c.Value.s.subscribed(req.Channel) {
			h.fail(c, req.ID, &Error{CodeForbidden, "subscribe to " + req.Channel + " before publishing"})
			return false
		}
	}
	return true
}
