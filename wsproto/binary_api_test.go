package wsproto

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// POST /api/publish with "data_b64" makes a binary publication; history
// gives it back in "data_b64", next to JSON ones in "data".
func TestAPIBinaryPublish(t *testing.T) {
	hub := apiHub(t)
	api := NewAPI(hub, APIConfig{Key: "k", MaxDataBytes: 4})
	const auth = "apikey k"
	if code, body := do(t, api, "POST", "/api/publish", auth, `{"channel":"g","data":1}`); code != 200 {
		t.Fatalf("json publish: %d %s", code, body)
	}
	if code, body := do(t, api, "POST", "/api/publish", auth, `{"channel":"g","data_b64":"AP8Kew=="}`); code != 200 || !strings.HasPrefix(body, `{"offset":2,"epoch":`) {
		t.Fatalf("binary publish: %d %s", code, body)
	}
	pubs, _, err := hub.History(context.Background(), "g", -1)
	if err != nil || len(pubs) != 2 || pubs[0].Binary || !pubs[1].Binary || !bytes.Equal(pubs[1].Data, []byte{0, 0xff, '\n', '{'}) {
		t.Fatalf("history %+v %v", pubs, err)
	}
	code, body := do(t, api, "POST", "/api/history", auth, `{"channel":"g"}`)
	if code != 200 || !strings.HasPrefix(body, `{"publications":[{"offset":1,"data":1},{"offset":2,"data_b64":"AP8Kew=="}],"offset":2,`) {
		t.Fatalf("history: %d %s", code, body)
	}
	for body, want := range map[string]int{
		`{"channel":"g","data":1,"data_b64":"AA=="}`: 400, // both
		`{"channel":"g","data_b64":"not base64!"}`:   400,
		`{"channel":"g","data_b64":"AAAAAAA="}`:      413, // 5 bytes, over MaxDataBytes
		`{"channels":["g","h"],"data_b64":"AA=="}`:   200,
	} {
		if code, got := do(t, api, "POST", "/api/publish", auth, body); code != want {
			t.Errorf("%s: %d %s, want %d", body, code, got, want)
		}
	}
}
