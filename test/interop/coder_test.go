package interop

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// coderConn dials /echo with coder/websocket v1.8.15.
func coderConn(t *testing.T, d *wsdProcess, mode websocket.CompressionMode) (*websocket.Conn, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, d.url("/echo"), &websocket.DialOptions{CompressionMode: mode})
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("coder dial %s: %v (%s)", d.url("/echo"), err, status)
	}
	c.SetReadLimit(4 * bigSize)
	t.Cleanup(func() { c.CloseNow() })
	return c, resp
}

func coderCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func coderEcho(t *testing.T, c *websocket.Conn, typ websocket.MessageType, msg []byte) {
	t.Helper()
	ctx := coderCtx(t)
	if err := c.Write(ctx, typ, msg); err != nil {
		t.Fatalf("write %d bytes: %v", len(msg), err)
	}
	coderExpect(t, ctx, c, typ, msg)
}

func coderExpect(t *testing.T, ctx context.Context, c *websocket.Conn, typ websocket.MessageType, msg []byte) {
	t.Helper()
	gotType, got, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("reading the echo of a %d-byte message: %v", len(msg), err)
	}
	if gotType != typ {
		t.Fatalf("echo has message type %v, want %v", gotType, typ)
	}
	sameMessage(t, "coder", got, msg)
}

// coderFragmented writes msg with Conn.Writer in several Write calls; without
// compression each Write is one frame (FIN=0), with it the flate stream is
// cut into frames as the compressor flushes.
func coderFragmented(t *testing.T, c *websocket.Conn, typ websocket.MessageType, msg []byte) {
	t.Helper()
	ctx := coderCtx(t)
	w, err := c.Writer(ctx, typ)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range splitBytes(msg, 700, 1, 333, 2049, 5) {
		if _, err := w.Write(p); err != nil {
			t.Fatalf("write part %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	coderExpect(t, ctx, c, typ, msg)
}

func TestCoder(t *testing.T) {
	d := needDaemon(t)

	t.Run("text", func(t *testing.T) {
		c, _ := coderConn(t, d, websocket.CompressionDisabled)
		coderEcho(t, c, websocket.MessageText, []byte(textMsg))
		coderEcho(t, c, websocket.MessageText, []byte{})
	})

	t.Run("binary", func(t *testing.T) {
		c, _ := coderConn(t, d, websocket.CompressionDisabled)
		coderEcho(t, c, websocket.MessageBinary, binaryMsg())
		coderEcho(t, c, websocket.MessageBinary, randomBytes(125, 7))
		coderEcho(t, c, websocket.MessageBinary, randomBytes(65535, 8))
	})

	t.Run("1MiB", func(t *testing.T) {
		c, _ := coderConn(t, d, websocket.CompressionDisabled)
		coderEcho(t, c, websocket.MessageBinary, randomBytes(bigSize, 9))
		coderEcho(t, c, websocket.MessageText, []byte(multibyteText(bigSize)))
	})

	t.Run("fragmented", func(t *testing.T) {
		c, _ := coderConn(t, d, websocket.CompressionDisabled)
		msg := []byte(multibyteText(5000))
		if !splitsRune(splitBytes(msg, 700, 1, 333, 2049, 5)) {
			t.Fatal("test bug: fragment boundaries split no rune")
		}
		coderFragmented(t, c, websocket.MessageText, msg)
		coderFragmented(t, c, websocket.MessageBinary, randomBytes(8000, 10))
	})

	for _, tc := range []struct {
		name string
		mode websocket.CompressionMode
	}{
		{"compressed_context_takeover", websocket.CompressionContextTakeover},
		{"compressed_no_context_takeover", websocket.CompressionNoContextTakeover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, resp := coderConn(t, d, tc.mode)
			ext := resp.Header.Get("Sec-WebSocket-Extensions")
			if !strings.Contains(ext, "permessage-deflate") {
				t.Fatalf("permessage-deflate not negotiated (client offered it; --deflate defaults to true): Sec-WebSocket-Extensions: %q", ext)
			}
			t.Logf("negotiated: %s", ext)
			coderEcho(t, c, websocket.MessageText, []byte("short")) // below coder's threshold: RSV1=0
			coderEcho(t, c, websocket.MessageText, []byte(compressibleText(64<<10)))
			coderEcho(t, c, websocket.MessageText, []byte(compressibleText(64<<10)))
			coderEcho(t, c, websocket.MessageBinary, []byte(compressibleText(bigSize)))
			coderEcho(t, c, websocket.MessageBinary, randomBytes(100_000, 11))
			coderFragmented(t, c, websocket.MessageText, []byte(compressibleText(40_000)+multibyteText(20_000)))
		})
	}

	t.Run("ping", func(t *testing.T) {
		c, _ := coderConn(t, d, websocket.CompressionDisabled)
		// Ping needs a concurrent reader to see the pong.
		ctx := coderCtx(t)
		c.CloseRead(ctx)
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
	})

	t.Run("close", func(t *testing.T) {
		c, _ := coderConn(t, d, websocket.CompressionDisabled)
		coderEcho(t, c, websocket.MessageText, []byte("before close"))
		// Close returns nil only when the server answers with the same
		// code (1000) within 5 s and the connection then shuts down.
		if err := c.Close(websocket.StatusNormalClosure, "bye"); err != nil {
			t.Fatalf("close handshake 1000 \"bye\": %v", err)
		}
	})
}
