package wsproto

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/internal/wstest"
)

// syncBuffer is a log sink shared by the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Tokens never reach the logs, even at debug level: not a valid one in
// the URL or the header, not a refused one, not a refresh or a channel
// token. (A token in a log is a credential in a log.)
func TestTokensNeverLogged(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := start(t, Config{TokenSecret: secret, RateLimit: -1, Logger: log}, privateNS())
	good := token(t, "alice", []string{"*"}, time.Hour)
	other, err := NewToken("another secret", "alice", []string{"*"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	forged := good[:len(good)-4] + "AAAA"
	c := e.dialPath(t, "/ws?token="+good)
	c.ok(`{"id":1,"op":"refresh","token":"`+good+`"}`, nil)
	c.fails(`{"id":2,"op":"refresh","token":"`+forged+`"}`, CodeBadToken)
	c.fails(`{"id":3,"op":"subscribe","channel":"priv:x","token":"`+forged+`"}`, CodeBadToken)
	e.dial(t, "Authorization: Bearer "+good).quiet()
	for _, bad := range []string{other, forged} {
		if c, err := wstest.Dial(e.addr, "/ws?token="+bad); err == nil {
			c.Close()
			t.Fatal("a bad token was let in")
		}
	}
	out := logs.String()
	if !strings.Contains(out, "token refused") {
		t.Fatalf("the refusals were not logged at all (is the test's logger in use?):\n%s", out)
	}
	for _, tok := range []string{good, other, forged} {
		for _, part := range strings.Split(tok, ".") {
			if len(part) > 8 && strings.Contains(out, part) {
				t.Fatalf("a token part %q is in the logs:\n%s", part, out)
			}
		}
	}
}
