package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// wsd serves /sse: a publication made through the API reaches a stream,
// a silent stream gets --sse-ping's comment, and /metrics counts streams.
func TestSSEServed(t *testing.T) {
	n := startPlainNode(t, "--api-key", "k", "--sse-ping", "1s")
	nc, err := net.DialTimeout("tcp", n.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(nc, "GET /sse?channel=news HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /sse: %v %v", resp, err)
	}
	readUntil := func(want string) {
		t.Helper()
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("waiting for %q: %v", want, err)
			}
			if strings.HasPrefix(line, want) {
				return
			}
		}
	}
	readUntil("event: subscribed")
	readUntil(": ping") // --sse-ping 1s on a silent stream
	req, _ := http.NewRequest("POST", "http://"+n.addr+"/api/publish", strings.NewReader(`{"channel":"news","data":{"text":"hello"}}`))
	req.Header.Set("Authorization", "apikey k")
	r, err := http.DefaultClient.Do(req)
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("publish: %v %v", r, err)
	}
	r.Body.Close()
	readUntil("event: publication")
	readUntil(`data: {"channel":"news","offset":1,`)
	m, err := http.Get("http://" + n.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(m.Body)
	m.Body.Close()
	if !strings.Contains(string(body), "\nwsd_sse_streams 1\n") {
		t.Fatalf("metrics lack wsd_sse_streams 1")
	}
}
