package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/wsproto"
)

// startProxiedNode is startNode with the rpc proxy pointing at rpcURL.
func startProxiedNode(t *testing.T, rpcURL string) *wsdNode {
	t.Helper()
	n, _ := startWSNode(t, server.Options{}, nil, wsproto.Config{Proxy: wsproto.ProxyConfig{RPCURL: rpcURL, Timeout: 5 * time.Second}})
	return n
}

func TestRPCOnRealServer(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req wsproto.RPCRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		switch req.Method {
		case "add":
			var in struct{ A, B int }
			_ = json.Unmarshal(req.Data, &in)
			fmt.Fprintf(w, `{"result":{"sum":%d,"user":%q}}`, in.A+in.B, req.User)
		case "void":
			fmt.Fprint(w, `{}`)
		default:
			fmt.Fprint(w, `{"error":{"code":"no_method","message":"unknown method"}}`)
		}
	}))
	t.Cleanup(backend.Close)
	n := startProxiedNode(t, backend.URL)
	c, err := Dial(ctxT(t), n.url(), fast())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())

	res, err := c.RPC(ctxT(t), "add", map[string]int{"a": 2, "b": 3})
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Sum  int
		User string
	}
	if err := json.Unmarshal(res, &out); err != nil || out.Sum != 5 || out.User == "" {
		t.Fatalf("result %s (%v)", res, err)
	}
	if res, err := c.RPC(ctxT(t), "void", nil); err != nil || string(res) != "null" {
		t.Fatalf("void: %s %v", res, err)
	}
	_, err = c.RPC(ctxT(t), "nope", nil)
	var se *ServerError
	if !errors.As(err, &se) || se.Code != "no_method" || se.Message != "unknown method" {
		t.Fatalf("nope: %v", err)
	}
	backend.Close()
	_, err = c.RPC(ctxT(t), "add", nil)
	if !errors.As(err, &se) || se.Code != wsproto.CodeBackendUnavailable {
		t.Fatalf("stopped backend: %v", err)
	}
}

// wsd.js's rpc(method, data) against a real server and backend: the
// result, the backend's refusal, a stopped backend.
func TestWSDJSRPC(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req wsproto.RPCRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Method == "echo" {
			fmt.Fprintf(w, `{"result":{"echo":%s}}`, req.Data)
			return
		}
		fmt.Fprint(w, `{"error":{"code":"no_method","message":"unknown method"}}`)
	}))
	t.Cleanup(backend.Close)
	n := startProxiedNode(t, backend.URL)
	d := startJS(t, n.url())
	d.send(map[string]any{"cmd": "rpc", "tag": "1", "method": "echo", "data": map[string]int{"x": 1}})
	waitFor(t, "the rpc result", func() bool { return len(d.events("rpc")) == 1 })
	if r := d.events("rpc")[0]; r.Tag != "1" || string(r.Result) != `{"echo":{"x":1}}` {
		t.Fatalf("rpc %+v (%s)", r, r.Result)
	}
	d.send(map[string]any{"cmd": "rpc", "tag": "2", "method": "nope"})
	waitFor(t, "the rpc refusal", func() bool { return len(d.events("rpc_error")) == 1 })
	if e := d.events("rpc_error")[0]; e.Tag != "2" || e.Code != "no_method" {
		t.Fatalf("rpc_error %+v", e)
	}
	backend.Close()
	d.send(map[string]any{"cmd": "rpc", "tag": "3", "method": "echo", "data": 1})
	waitFor(t, "the rpc error", func() bool { return len(d.events("rpc_error")) == 2 })
	if e := d.events("rpc_error")[1]; e.Tag != "3" || e.Code != wsproto.CodeBackendUnavailable {
		t.Fatalf("rpc_error %+v", e)
	}
}
