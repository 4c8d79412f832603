package client

import (
	"context"
	"encoding/json"
	"fmt"
)

const opRPC = "rpc"

// RPC calls method on the application's backend through the server (its
// rpc proxy) and returns the backend's result as raw JSON ("null" when it
// gave none). A refusal by the backend is a *ServerError with the
// backend's code and message; a slow or unreachable backend is a
// *ServerError with code "backend_unavailable". data is encoded with
// encoding/json (nil: no data). Like Publish, it waits for a connection
// and gives up with ctx; a call cut by a dropped connection returns
// ErrConnectionLost and may or may not have reached the backend. Safe from
// any goroutine.
func (c *Client) RPC(ctx context.Context, method string, data any) (json.RawMessage, error) {
	var raw json.RawMessage
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			return nil, fmt.Errorf("wsd client: encoding the rpc data: %w", err)
		}
		raw = b
	}
	res, err := c.do(ctx, request{Op: opRPC, Method: method, Data: raw})
	if err != nil {
		return nil, err
	}
	if len(res) == 0 {
		res = json.RawMessage("null")
	}
	return res, nil
}
