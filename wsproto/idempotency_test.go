package wsproto

import (
	"strings"
	"testing"
)

// A publish retried with its idempotency_key (a client whose link dropped
// before the reply) is published once: the retry's reply has the first
// position and subscribers get one push. Over /ws and the HTTP API alike.
func TestIdempotentPublish(t *testing.T) {
	e := start(t, Config{RateLimit: -1}, nil)
	api := NewAPI(e.hub, APIConfig{Key: "k"})
	sub, pub := e.dial(t), e.dial(t)
	sub.ok(`{"id":1,"op":"subscribe","channel":"news"}`, nil)

	var first, again PublishResult
	pub.ok(`{"id":1,"op":"publish","channel":"news","data":1,"idempotency_key":"k-1"}`, &first)
	pub.ok(`{"id":2,"op":"publish","channel":"news","data":1,"idempotency_key":"k-1"}`, &again)
	if first.Offset != 1 || again != first {
		t.Fatalf("first %+v, retry %+v", first, again)
	}
	if got := apiCall(t, api, "/api/publish", `{"channel":"news","data":1,"idempotency_key":"k-1"}`); !strings.Contains(got, `"offset":1`) {
		t.Fatalf("the API's retry: %s", got)
	}
	pub.ok(`{"id":3,"op":"publish","channel":"news","data":2,"idempotency_key":"k-2"}`, &again)
	if again.Offset != 2 {
		t.Fatalf("another key: %+v", again)
	}
	sub.push("news", 1)
	sub.push("news", 2) // and no second 1
	sub.quiet()

	pub.fails(`{"id":4,"op":"publish","channel":"news","data":3,"idempotency_key":"has space"}`, CodeBadRequest)
	pub.fails(`{"id":5,"op":"publish","channel":"news","data":3,"idempotency_key":"`+strings.Repeat("x", 129)+`"}`, CodeBadRequest)
	if code, body := do(t, api, "POST", "/api/publish", "apikey k", `{"channel":"news","data":1,"idempotency_key":"\n"}`); code != 400 {
		t.Fatalf("API with a bad key: %d %s", code, body)
	}
}
