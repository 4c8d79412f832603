package main

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/wsdhq/wsd/internal/wstest"
)

// Without a flag, every accepted socket's kernel send buffer is capped
// (the kernel reports twice the value), and the receive buffer is left to
// the kernel's autotuning.
func TestDefaultSocketSendBuffer(t *testing.T) {
	addr, _ := startRun(t)
	c, err := wstest.Dial(addr, "/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fd, err := wstest.ServerSideFD(c.Conn)
	if err != nil {
		t.Fatal(err)
	}
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF)
	if err != nil {
		t.Fatal(err)
	}
	if got != 2*defaultSocketSendBuffer {
		t.Fatalf("accepted socket's SO_SNDBUF is %d, want %d (twice the default --socket-send-buffer)", got, 2*defaultSocketSendBuffer)
	}
}

// Without a flag, the pending-handshake cap is in force: once
// defaultMaxPendingHandshakes connections sit silent, the next one gets a
// 503 at accept, before it sends a byte.
func TestDefaultPendingHandshakeCap(t *testing.T) {
	// The silent ones must outlive the test's waits.
	addr, srv := startRun(t, "--handshake-timeout", "2m")
	silent := make([]net.Conn, 0, defaultMaxPendingHandshakes)
	defer func() {
		for _, c := range silent {
			c.Close()
		}
	}()
	for range defaultMaxPendingHandshakes {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatalf("after %d silent conns: %v", len(silent), err)
		}
		silent = append(silent, c)
	}
	// The accepts trail the dials: wait until the server holds them all.
	deadline := time.Now().Add(30 * time.Second)
	for srv.Stats().Pending < defaultMaxPendingHandshakes && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the server's counter
	}
	if p := srv.Stats().Pending; p != defaultMaxPendingHandshakes {
		t.Fatalf("server holds %d pending handshakes, want %d", p, defaultMaxPendingHandshakes)
	}
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 503 ") {
		t.Fatalf("conn past the default cap of %d got %q, %v; want a 503 at accept", defaultMaxPendingHandshakes, line, err)
	}
}
