package wsproto

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
)

// maxMethodLen bounds an rpc method name.
const maxMethodLen = 255

// RPCRequest is what the rpc proxy posts to the backend.
type RPCRequest struct {
	ConnInfo
	Method string          `json:"method"`
	Data   json.RawMessage `json:"data,omitempty"`
}

// PublishProxyRequest is what the publish proxy posts to the backend. The
// answer {"result":{"data":...}} replaces the data; {"result":{}} keeps
// it; {"error":{...}} refuses the publication.
type PublishProxyRequest struct {
	ConnInfo
	Channel string          `json:"channel"`
	Data    json.RawMessage `json:"data"`
}

// SubscribeProxyRequest is what the subscribe proxy posts to the backend:
// {"result":{}} allows, {"error":{...}} refuses.
type SubscribeProxyRequest struct {
	ConnInfo
	Channel string `json:"channel"`
}

// connInfo describes c for the backend. Call it on c's callbacks (the
// session's client ID is read there).
func (h *Handler) connInfo(c *server.Conn[Session]) ConnInfo {
	id := strconv.FormatUint(c.ID(), 10)
	if h.cfg.NodeID != "" {
		id = h.cfg.NodeID + "-" + id
	}
	return ConnInfo{Client: id, User: c.Value.s.clientID, RemoteAddr: c.RemoteAddr().String()}
}

// rpc forwards the request to the backend off the worker; the reply comes
// when the backend answers or the call fails, whichever the timeout
// allows. Replies to several rpcs of one connection may come in any order:
// the client matches them by id.
func (h *Handler) rpc(c *server.Conn[Session], req *Request) {
	p := h.px.rpc
	switch {
	case p == nil:
		h.fail(c, req.ID, &Error{CodeUnknownOp, "rpc is not configured on this server"})
		return
	case req.Method == "" || len(req.Method) > maxMethodLen:
		h.fail(c, req.ID, &Error{CodeBadRequest, fmt.Sprintf("rpc needs a method of 1 to %d bytes", maxMethodLen)})
		return
	case len(req.Data) > h.cfg.MaxDataBytes:
		h.fail(c, req.ID, &Error{CodeTooLarge, fmt.Sprintf("data over %d bytes", h.cfg.MaxDataBytes)})
		return
	}
	body := RPCRequest{ConnInfo: h.connInfo(c), Method: req.Method, Data: req.Data}
	id := req.ID
	h.ask(c, p, id, body, nil, func(res json.RawMessage) {
		if len(res) == 0 {
			res = json.RawMessage("null")
		}
		h.reply(c, id, res)
	})
}

// ask sends body to p's backend off the caller's goroutine and hands the
// backend's result to allowed. A refusal is the request's error reply (the
// backend's own code, not counted among wsd's: the proxy's metrics see the
// call), a failure or a full node is backend_unavailable; undo, if not
// nil, runs first in those cases.
func (h *Handler) ask(c *server.Conn[Session], p *proxy, id json.RawMessage, body any, undo func(), allowed func(result json.RawMessage)) {
	if !p.acquire() {
		if undo != nil {
			undo()
		}
		h.fail(c, id, errBusy)
		return
	}
	go func() {
		defer p.release()
		ans, err := p.call(body)
		if (err != nil || ans.Error != nil) && undo != nil {
			undo()
		}
		switch {
		case err != nil:
			h.fail(c, id, err)
		case ans.Error != nil:
			h.send(c, Reply{ID: id, Error: ans.Error})
		default:
			allowed(ans.Result)
		}
	}()
}

// publishProxied asks the backend about a publication that passed the
// local checks, then makes it with the data the backend gave (or the
// original). It reports false when the namespace is not proxied. Off the
// worker, so publications of one connection sent without waiting for
// their replies may land in any order.
func (h *Handler) publishProxied(c *server.Conn[Session], req *Request) bool {
	p := h.px.publish
	if !p.covers(pubsub.NamespaceOf(req.Channel)) {
		return false
	}
	body := PublishProxyRequest{ConnInfo: h.connInfo(c), Channel: req.Channel, Data: req.Data}
	h.ask(c, p, req.ID, body, nil, func(res json.RawMessage) {
		data := body.Data
		var r struct {
			Data json.RawMessage `json:"data"`
		}
		if len(res) > 0 && json.Unmarshal(res, &r) == nil && len(r.Data) > 0 {
			data = r.Data
		}
		h.publishNow(c, req, data, false)
	})
	return true
}

// publishNow publishes data (req's, or the publish proxy's replacement,
// or a binary frame's bytes) as req asks and replies. Safe from any
// goroutine. With skip_self, c's own subscription to the channel does not
// get it.
func (h *Handler) publishNow(c *server.Conn[Session], req *Request, data []byte, binary bool) {
	p := pubsub.PublishParams{IdempotencyKey: req.IdempotencyKey, Binary: binary}
	if req.SkipSelf {
		p.Origin = originOf(c)
	}
	pos, err := h.hub.PublishWith(context.Background(), req.Channel, data, p)
	if err != nil {
		h.fail(c, req.ID, errorFor(err))
		return
	}
	h.reply(c, req.ID, PublishResult{Offset: pos.Offset, Epoch: pos.Epoch})
}
