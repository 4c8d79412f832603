package server

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// syncBuffer is a log sink safe for the loop and worker goroutines.
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

// Conn.Close sends the codes RFC 6455 §7.4 lets an endpoint send; any
// other code is a programming error: the conn closes with 1011 and the
// server logs the bad code.
func TestCloseValidatesCode(t *testing.T) {
	var logs syncBuffer
	srv := New[struct{}](Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	srv.Handle("/close", Funcs[struct{}]{Message: func(c *Conn[struct{}], m Message) {
		code, _ := strconv.Atoi(string(m.Data))
		c.Close(code, "bye")
	}})
	addr := start(t, srv)
	cases := map[int]uint16{
		1000: 1000, 1001: 1001, 1003: 1003, 1007: 1007, 1014: 1014, 3000: 3000, 4999: 4999,
		0: 1011, 999: 1011, 1004: 1011, 1005: 1011, 1006: 1011, 1015: 1011, 2999: 1011, 5000: 1011, -1: 1011, 66536: 1011,
	}
	for code, want := range cases {
		c, err := wstest.Dial(addr, "/close")
		if err != nil {
			t.Fatal(err)
		}
		c.WriteMessage(codec.OpText, []byte(strconv.Itoa(code)))
		got, _, err := c.ExpectClose()
		c.Close()
		if err != nil || got != want {
			t.Errorf("Close(%d): peer got %d %v, want %d", code, got, err, want)
		}
	}
	if !strings.Contains(logs.String(), "invalid close code") || !strings.Contains(logs.String(), "code=1005") {
		t.Errorf("invalid codes not logged:\n%s", logs.String())
	}
}

func TestCloseStatus(t *testing.T) {
	ce := &CloseError{Code: 1008, Reason: "slow consumer", Cause: "slow_consumer"}
	if got := CloseStatus(fmt.Errorf("read: %w", ce)); got != 1008 {
		t.Fatalf("CloseStatus(wrapped) = %d, want 1008", got)
	}
	if got := CloseStatus(errors.New("other")); got != -1 {
		t.Fatalf("CloseStatus(other) = %d, want -1", got)
	}
	if got := CloseStatus(nil); got != -1 {
		t.Fatalf("CloseStatus(nil) = %d, want -1", got)
	}
}
