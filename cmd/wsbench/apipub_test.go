package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func TestAPIPubFlagsSpreadAndCPU(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ch, _, _ := strings.Cut(strings.TrimPrefix(string(b), `{"channel":"`), `"`)
		mu.Lock()
		seen[ch] = true
		mu.Unlock()
		w.Write([]byte(`{"offset":1}`))
	}))
	t.Cleanup(srv.Close)
	var out, errOut bytes.Buffer
	rc := run([]string{"apipub", "--url", srv.URL + "/api/publish", "--api-key", "K", "--conns", "2", "--duration", "300ms",
		"--channel", "user#%d", "--channels", "3", "--pick", "random", "--cpu-pid", strconv.Itoa(os.Getpid())}, &out, &errOut)
	if rc != 0 || !strings.Contains(out.String(), "failed 0") || !strings.Contains(out.String(), "µs per publish") {
		t.Fatalf("rc %d\n%s%s", rc, out.String(), errOut.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 3 || !seen["user#0"] || !seen["user#1"] || !seen["user#2"] {
		t.Fatalf("channels published to: %v", seen)
	}
}

func TestAPIPubAndIdleRefuseBadSpreadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apipub", "--pick", "sometimes", "--channels", "3", "--channel", "f:%d"}, `--pick "sometimes"`},
		{[]string{"apipub", "--channels", "3", "--channel", "feed"}, `channel pattern "feed"`},
		{[]string{"apipub", "--pick", "random"}, "--pick random needs --channels"},
		{[]string{"apipub", "stray"}, `unexpected argument "stray"`},
		{[]string{"idle", "--url", "ws://127.0.0.1:1/ws", "--channels", "3"}, "--channels needs --subscribe"},
		{[]string{"idle", "--url", "ws://127.0.0.1:1/ws", "--subscribe", "feed"}, `channel pattern "feed"`},
	} {
		var out, errOut bytes.Buffer
		if rc := run(tc.args, &out, &errOut); rc != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: rc %d, stderr %q, want %q", tc.args, rc, errOut.String(), tc.want)
		}
	}
}
