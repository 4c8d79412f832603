package server

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

const childEnv = "WSD_EMFILE_CHILD"

// emfileChild runs in a re-executed test binary with RLIMIT_NOFILE at 64:
// a server with the default MaxConns, serving until stdin closes.
func emfileChild() int {
	lim := unix.Rlimit{Cur: 64, Max: 64}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Println("setrlimit:", err)
		return 1
	}
	srv := New[struct{}](Options{})
	srv.Handle("/e", echo[struct{}](), Inline())
	addr := os.Getenv(childEnv)
	go func() { _ = srv.ListenAndServe(addr) }()
	<-srv.Ready()
	fmt.Println("ready", srv.Engine().Config().MaxConns)
	buf := make([]byte, 1)
	os.Stdin.Read(buf)
	return 0
}

// With 64 descriptors the server caps itself below the limit, answers the
// excess with 503, and never lets EMFILE stop the engine.
func TestFileLimitNeverStopsEngine(t *testing.T) {
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+addr)
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line := make([]byte, 64)
	n, _ := out.Read(line)
	if !strings.HasPrefix(string(line[:n]), "ready") {
		t.Fatalf("child: %q", line[:n])
	}
	var clients []*wstest.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	refused := 0
	for range 150 {
		c, err := wstest.Dial(addr, "/e")
		var se *wstest.HTTPStatusError
		switch {
		case err == nil:
			clients = append(clients, c)
		case errors.As(err, &se) && se.Status == 503:
			refused++
		default:
			t.Fatalf("after %d conns: %v", len(clients), err)
		}
	}
	if refused == 0 || len(clients) == 0 || len(clients) > 64 {
		t.Fatalf("open=%d refused=%d", len(clients), refused)
	}
	// Still serving: existing conns echo, and freed room is usable again.
	for _, c := range clients[:3] {
		c.WriteMessage(codec.OpText, []byte("alive"))
		if f, err := c.ReadData(); err != nil || string(f.Payload) != "alive" {
			t.Fatalf("echo after the burst: %v", err)
		}
	}
	for _, c := range clients[:10] {
		c.Close()
	}
	clients = clients[10:]
	time.Sleep(200 * time.Millisecond)
	c, err := wstest.Dial(addr, "/e")
	if err != nil {
		t.Fatalf("engine died: %v", err)
	}
	c.Close()
	t.Logf("open=%d refused=%d", len(clients)+10, refused)
}
