package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
	"github.com/wsdhq/wsd/wsproto"
)

// docExample is one curl example of docs/api.md and its documented answer.
type docExample struct {
	line   int // of the curl command in the page
	curl   string
	status int
	body   string
}

// docExamples reads every ```sh block starting with curl and the ```http
// block that follows it.
func docExamples(t *testing.T, path string) []docExample {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []docExample
	var block []string
	var fence string
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case fence == "" && strings.HasPrefix(line, "```"):
			fence, block, start = strings.TrimPrefix(line, "```"), nil, n
		case fence != "" && strings.TrimSpace(line) == "```":
			switch {
			case fence == "sh" && len(block) > 0 && strings.HasPrefix(block[0], "curl "):
				out = append(out, docExample{line: start + 1, curl: strings.ReplaceAll(strings.Join(block, "\n"), "\\\n", " ")})
			case fence == "http" && len(out) > 0 && out[len(out)-1].status == 0:
				ex := &out[len(out)-1]
				status := strings.Fields(block[0])
				if len(status) < 2 || len(block) < 3 {
					t.Fatalf("%s:%d: the answer needs a status line, a blank line and a body", path, start)
				}
				ex.status, _ = strconv.Atoi(status[1])
				ex.body = strings.Join(block[2:], "\n")
			}
			fence = ""
		case fence != "":
			block = append(block, strings.TrimLeft(line, " "))
		}
	}
	for _, ex := range out {
		if ex.status == 0 {
			t.Fatalf("%s:%d: a curl example without its answer", path, ex.line)
		}
	}
	return out
}

// shellWords splits a command line with '…' and "…" quoting (what the
// examples use; no escapes inside quotes).
func shellWords(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	in, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			cur.WriteByte(c)
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if in {
		out = append(out, cur.String())
	}
	return out, nil
}

// curlRequest builds the request a curl command line makes (-s, -H, -d,
// -X; -d makes it a POST).
func curlRequest(cmd, base string) (*http.Request, error) {
	words, err := shellWords(cmd)
	if err != nil {
		return nil, err
	}
	method, target, body := "", "", ""
	var hdr []string
	hasBody := false
	for i := 1; i < len(words); i++ {
		switch w := words[i]; w {
		case "-s":
		case "-H", "-d", "-X":
			if i+1 == len(words) {
				return nil, fmt.Errorf("%s without a value", w)
			}
			i++
			switch w {
			case "-H":
				hdr = append(hdr, words[i])
			case "-d":
				body, hasBody = words[i], true
			case "-X":
				method = words[i]
			}
		default:
			if strings.HasPrefix(w, "-") || target != "" {
				return nil, fmt.Errorf("unsupported curl argument %q", w)
			}
			target = w
		}
	}
	if method == "" {
		method = http.MethodGet
		if hasBody {
			method = http.MethodPost
		}
	}
	const doc = "http://127.0.0.1:8080"
	if !strings.HasPrefix(target, doc) {
		return nil, fmt.Errorf("URL %q is not on %s", target, doc)
	}
	req, err := http.NewRequest(method, base+strings.TrimPrefix(target, doc), strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if hasBody {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
	}
	return req, nil
}

// jsonMatches compares a documented answer with the real one; the string
// "..." in want matches any value.
func jsonMatches(want, got any) bool {
	if s, ok := want.(string); ok && s == "..." {
		return true
	}
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k, v := range w {
			gv, ok := g[k]
			if !ok || !jsonMatches(v, gv) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !jsonMatches(w[i], g[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(want, got)
}

// startPlainNode runs wsd (memory broker) with args until the test ends.
func startPlainNode(t *testing.T, args ...string) *node {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	n := &node{t: t, addr: addr, args: append([]string{"--listen", addr, "--loops", "1", "--workers", "4"}, args...)}
	n.start()
	t.Cleanup(func() {
		n.stop()
		if t.Failed() {
			n.mu.Lock()
			t.Logf("wsd log:\n%s", n.log.String())
			n.mu.Unlock()
		}
	})
	return n
}

// TestAPIDocExamples runs every curl example of docs/api.md, in order,
// against a live wsd set up as the page says, and checks each answer.
func TestAPIDocExamples(t *testing.T) {
	examples := docExamples(t, "../../docs/api.md")
	if len(examples) < 10 {
		t.Fatalf("only %d curl examples found in docs/api.md", len(examples))
	}
	n := startPlainNode(t, "--api-key", "KEY", "--token-secret", "SECRET", "--rate-limit", "-1")

	// alice, connected twice, both subscribed to chat.
	tok, err := wsproto.NewToken("SECRET", "alice", []string{"chat"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var alice []*wstest.Client
	for range 2 {
		c, err := wstest.Dial(n.addr, "/ws", "Authorization: Bearer "+tok)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.WriteMessage(codec.OpText, []byte(`{"id":1,"op":"subscribe","channel":"chat"}`)); err != nil {
			t.Fatal(err)
		}
		if f, err := c.ReadData(); err != nil || !strings.Contains(string(f.Payload), `"result"`) {
			t.Fatalf("subscribe: %q %v", f.Payload, err)
		}
		alice = append(alice, c)
	}

	// One keep-alive connection for every example, as a backend would.
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 1}}
	t.Cleanup(client.CloseIdleConnections)
	epoch := ""
	for _, ex := range examples {
		cmd := ex.curl
		if epoch != "" {
			cmd = strings.ReplaceAll(cmd, "EPOCH", epoch)
		}
		req, err := curlRequest(cmd, "http://"+n.addr)
		if err != nil {
			t.Fatalf("docs/api.md:%d: %v", ex.line, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("docs/api.md:%d: %v", ex.line, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var want, got any
		if err := json.Unmarshal([]byte(ex.body), &want); err != nil {
			t.Fatalf("docs/api.md:%d: the documented answer is not JSON: %v", ex.line, err)
		}
		if err := json.Unmarshal(b, &got); err != nil || resp.StatusCode != ex.status || !jsonMatches(want, got) {
			t.Errorf("docs/api.md:%d: %s\n got %d %s\nwant %d %s", ex.line, cmd, resp.StatusCode, b, ex.status, ex.body)
		}
		if m, ok := got.(map[string]any); ok && epoch == "" {
			epoch, _ = m["epoch"].(string)
		}
	}

	// The disconnect example closed both of alice's connections with its hint.
	for i, c := range alice {
		code, reason, err := c.ExpectClose()
		if err != nil || code != wsproto.CloseDisconnectedRetry || reason != "disconnected; retry=2.500" {
			t.Errorf("alice's connection %d: close %d %q %v, want 1012 \"disconnected; retry=2.500\"", i, code, reason, err)
		}
	}
}
