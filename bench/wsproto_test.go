package bench

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestWSDataRoundTrip(t *testing.T) {
	for _, size := range []int{wsDataMin, 100, 1000, patternLen + 5000} {
		for _, seq := range []uint64{0, 1, 9, 10, 12345, 1 << 40} {
			ts := int64(1764115200123456789)
			d := appendWSData(nil, seq, ts, size)
			if len(d) != size {
				t.Fatalf("size %d seq %d: %d bytes", size, seq, len(d))
			}
			var v struct {
				Seq uint64 `json:"seq"`
				Ts  int64  `json:"ts"`
				Pad string `json:"pad"`
			}
			if err := json.Unmarshal(d, &v); err != nil || v.Seq != seq || v.Ts != ts {
				t.Fatalf("not the JSON it claims: %v %+v", err, v)
			}
			// As a push: the data, then the push's closing brace.
			push := append(append([]byte(`{"channel":"bench","offset":7,"epoch":"Xk2p9QaZ","data":`), d...), '}')
			kind, data, code := classifyWS(push, []byte(`"bench"`))
			if kind != wsPush || code != nil {
				t.Fatalf("push classified as %d", kind)
			}
			s, ts2, n, st := parseWSData(data)
			if st != wsDataOK || s != seq || ts2 != ts || n != size {
				t.Fatalf("parse: seq %d ts %d n %d st %d", s, ts2, n, st)
			}
		}
	}
}

func TestWSDataDetectsDamage(t *testing.T) {
	d := appendWSData(nil, 42, 1764115200123456789, 200)
	bad := bytes.Clone(d)
	bad[150] ^= 1
	if _, _, _, st := parseWSData(bad); st != wsDataBadPad {
		t.Fatalf("flipped pad byte: %d", st)
	}
	// Another seq's data with this seq: the pad is chosen by seq.
	other := appendWSData(nil, 43, 1764115200123456789, 200)
	copy(other[len(`{"seq":`):], "42")
	if _, _, _, st := parseWSData(other); st != wsDataBadPad {
		t.Fatalf("pad of another publication: %d", st)
	}
	for _, s := range []string{`{"text":"hi"}`, `"hello"`, `{"seq":"1"}`, `{"seq":1,"ts":x}`, ``} {
		if _, _, _, st := parseWSData([]byte(s)); st != wsDataBad {
			t.Errorf("%s: %d", s, st)
		}
	}
	if _, _, n, st := parseWSData(d[:len(d)-1]); st == wsDataOK {
		t.Errorf("truncated data verified (n %d)", n)
	}
}

func TestClassifyWS(t *testing.T) {
	q := []byte(`"bench"`)
	for _, c := range []struct {
		msg  string
		kind wsMsgKind
		code string
	}{
		{`{"id":1,"result":{"epoch":"e","offset":0,"recovered":false}}`, wsReply, ""},
		{`{"id":7,"error":{"code":"too_large","message":"data over 65536 bytes"}}`, wsReply, "too_large"},
		{`{"error":{"code":"bad_request","message":"x"}}`, wsReply, "bad_request"},
		{`{"channel":"benchmark","offset":1,"epoch":"e","data":1}`, wsOtherPush, ""},
		{`{"channel":"other","offset":1,"epoch":"e","data":1}`, wsOtherPush, ""},
		{`{"channel":"bench","offset":1,"epoch":"e","data":{"seq":1}}`, wsPush, ""},
		{`{"channel":"bench","offset":1}`, wsUnknown, ""},
		{`hello`, wsUnknown, ""},
	} {
		kind, _, code := classifyWS([]byte(c.msg), q)
		if kind != c.kind || string(code) != c.code {
			t.Errorf("%s: kind %d code %q, want %d %q", c.msg, kind, code, c.kind, c.code)
		}
	}
	if id, ok := replyID([]byte(`{"id":123,"error":{}}`)); !ok || id != 123 {
		t.Fatalf("replyID %d %v", id, ok)
	}
	var sub map[string]any
	if err := json.Unmarshal(wsSubscribe("chat:lobby"), &sub); err != nil || sub["op"] != "subscribe" || sub["channel"] != "chat:lobby" || sub["id"] != 1.0 {
		t.Fatalf("subscribe request: %v %v", sub, err)
	}
	var pub struct {
		ID      uint64          `json:"id"`
		Op      string          `json:"op"`
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(appendWSPublish(nil, "bench", 9, 1, 64), &pub); err != nil || pub.ID != 9 || pub.Op != "publish" || pub.Channel != "bench" || len(pub.Data) != 64 {
		t.Fatalf("publish request: %+v %v", pub, err)
	}
}
