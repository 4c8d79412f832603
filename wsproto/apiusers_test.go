package wsproto

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// waitConns waits until the handler counts conns connections of clients
// distinct users.
func waitConns(t *testing.T, h *Handler, conns, clients int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, u := h.Connections()
		if c == conns && u == clients {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connections %d of %d clients, want %d of %d", c, u, conns, clients)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, bounded by the deadline
	}
}

func TestAPIDisconnectClosesEveryConnectionOfTheUser(t *testing.T) {
	e := start(t, Config{TokenSecret: secret, RateLimit: -1}, nil)
	api := NewAPI(e.hub, APIConfig{Key: "k", Users: e.h})
	auth := "apikey k"
	alice1 := e.dial(t, "Authorization: Bearer "+token(t, "alice", []string{"*"}, time.Hour))
	alice2 := e.dial(t, "Authorization: Bearer "+token(t, "alice", []string{"*"}, time.Hour))
	bob := e.dial(t, "Authorization: Bearer "+token(t, "bob", []string{"*"}, time.Hour))
	for _, c := range []*client{alice1, alice2, bob} {
		c.ok(`{"id":1,"op":"subscribe","channel":"news"}`, nil) // a round trip: the conn is counted
	}
	if code, body := do(t, api, "GET", "/api/info", auth, ""); code != 200 || !strings.Contains(body, `"connections":3,"clients":2`) {
		t.Fatalf("info: %d %s", code, body)
	}

	if code, body := do(t, api, "POST", "/api/disconnect", auth, `{"user":"alice"}`); code != 200 || strings.TrimSpace(body) != `{"disconnected":2}` {
		t.Fatalf("disconnect: %d %s", code, body)
	}
	for i, c := range []*client{alice1, alice2} {
		code, reason, err := c.c.ExpectClose()
		if err != nil || code != CloseDisconnected || reason != "disconnected" {
			t.Fatalf("alice %d: close %d %q %v", i, code, reason, err)
		}
	}
	bob.ok(`{"id":2,"op":"unsubscribe","channel":"news"}`, nil) // bob's connection is untouched
	waitConns(t, e.h, 1, 1)
	if code, body := do(t, api, "POST", "/api/disconnect", auth, `{"user":"alice"}`); code != 200 || strings.TrimSpace(body) != `{"disconnected":0}` {
		t.Fatalf("disconnect again: %d %s", code, body)
	}
}

func TestAPIPublishManyBatchAndHistory(t *testing.T) {
	api := NewAPI(apiHub(t), APIConfig{Key: "k"})
	auth := "apikey k"
	code, body := do(t, api, "POST", "/api/publish", auth, `{"channels":["a","b","a"],"data":{"n":1}}`)
	var many PublishResults
	if err := json.Unmarshal([]byte(body), &many); err != nil || code != 200 || len(many.Results) != 3 ||
		many.Results[0].Offset != 1 || many.Results[1].Offset != 1 || many.Results[2].Offset != 2 {
		t.Fatalf("publish to many: %d %s", code, body)
	}
	epoch := many.Results[0].Epoch
	batch := `{"commands":[` +
		`{"method":"publish","params":{"channel":"a","data":3}},` +
		`{"method":"history","params":{"channel":"a","since":{"offset":1,"epoch":"` + epoch + `"}}},` +
		`{"method":"history","params":{"channel":"a","limit":1}},` +
		`{"method":"history","params":{"channel":"a","since":{"offset":1,"epoch":"other"}}},` +
		`{"method":"publish","params":{"channel":"a"}},` +
		`{"method":"nope"}]}`
	code, body = do(t, api, "POST", "/api/batch", auth, batch)
	var res struct {
		Replies []struct {
			Result json.RawMessage `json:"result"`
			Error  *Error          `json:"error"`
		} `json:"replies"`
	}
	if err := json.Unmarshal([]byte(body), &res); err != nil || code != 200 || len(res.Replies) != 6 {
		t.Fatalf("batch: %d %s", code, body)
	}
	want := []string{
		`{"offset":3,"epoch":"` + epoch + `"}`,
		`{"publications":[{"offset":2,"data":{"n":1}},{"offset":3,"data":3}],"offset":3,"epoch":"` + epoch + `"}`,
		`{"publications":[{"offset":3,"data":3}],"offset":3,"epoch":"` + epoch + `"}`,
		`{"publications":[],"offset":3,"epoch":"` + epoch + `"}`,
	}
	for i, w := range want {
		if string(res.Replies[i].Result) != w {
			t.Errorf("reply %d: %s, want %s", i, res.Replies[i].Result, w)
		}
	}
	if e := res.Replies[4].Error; e == nil || e.Code != CodeBadRequest {
		t.Errorf("publish without data in a batch: %+v", res.Replies[4])
	}
	if e := res.Replies[5].Error; e == nil || e.Code != CodeUnknownOp {
		t.Errorf("unknown method: %+v", res.Replies[5])
	}
}
