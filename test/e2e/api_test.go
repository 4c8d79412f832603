package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

type position struct{ offset, epoch string }

// publish posts data to channel through wsd's HTTP API.
func publish(t *testing.T, addr, key, channel, data string) position {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/publish",
		strings.NewReader(`{"channel":"`+channel+`","data":`+data+`}`))
	req.Header.Set("Authorization", "apikey "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Offset uint64 `json:"offset"`
		Epoch  string `json:"epoch"`
	}
	if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&out) != nil {
		t.Fatalf("publish: %s", resp.Status)
	}
	return position{strconv.FormatUint(out.Offset, 10), out.Epoch}
}
