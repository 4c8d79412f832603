package wsproto

import (
	"encoding/json"
	"slices"
	"testing"
)

// FuzzRequest: any bytes a client sends as a /ws message decode to a
// request or to an error reply with one of wsd's codes, never a panic; a
// request's id is one a reply can echo (a number or a string), and what
// decodes survives a round trip through encoding.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"id":1,"op":"subscribe","channel":"news","since":{"offset":41,"epoch":"e1"}}`,
		`{"id":"a","op":"publish","channel":"chat","data":{"text":"hi"}}`,
		`{"id":null,"op":"rpc","method":"move","data":[1,2]}`,
		`{"id":{},"op":"ping"}`, `{"id":[1]}`, `[]`, `"x"`, `{"op":"refresh","token":"t"}`,
		`{"id":1,"op":"subscribe","channel":"x","server":true}`, `{"id":-1e400}`, "\xff",
	} {
		f.Add([]byte(s))
	}
	codes := allCodes()
	f.Fuzz(func(t *testing.T, data []byte) {
		req, e := decodeRequest(data, 1<<16)
		if e != nil {
			if !slices.Contains(codes[:], e.Code) || req != nil {
				t.Fatalf("error %+v with request %+v", e, req)
			}
			return
		}
		if !validID(req.ID) || string(req.ID) == "null" {
			t.Fatalf("id %q", req.ID)
		}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("a decoded request does not encode: %v", err)
		}
		again, e := decodeRequest(b, 1<<17)
		if e != nil {
			t.Fatalf("re-decoding %s: %+v", b, e)
		}
		b2, _ := json.Marshal(again)
		if string(b) != string(b2) {
			t.Fatalf("round trip: %s then %s", b, b2)
		}
		if _, err := json.Marshal(Reply{ID: req.ID, Result: struct{}{}}); err != nil {
			t.Fatalf("a reply to id %q does not encode: %v", req.ID, err)
		}
	})
}
