package interop

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// gorillaConn dials /echo with gorilla/websocket v1.5.3.
func gorillaConn(t *testing.T, d *wsdProcess, compress bool, writeBuf int) (*websocket.Conn, *http.Response) {
	t.Helper()
	dialer := websocket.Dialer{
		HandshakeTimeout:  5 * time.Second,
		EnableCompression: compress,
		WriteBufferSize:   writeBuf,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := dialer.DialContext(ctx, d.url("/echo"), nil)
	if err != nil {
		status := "no response"
		if resp != nil {
			status = resp.Status
		}
		t.Fatalf("gorilla dial %s: %v (%s)", d.url("/echo"), err, status)
	}
	t.Cleanup(func() { c.Close() })
	return c, resp
}

// gorillaEcho sends one message and checks that the same message comes back.
func gorillaEcho(t *testing.T, c *websocket.Conn, typ int, msg []byte) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(ioTimeout * time.Second))
	if err := c.WriteMessage(typ, msg); err != nil {
		t.Fatalf("write %d bytes: %v", len(msg), err)
	}
	gorillaExpect(t, c, typ, msg)
}

func gorillaExpect(t *testing.T, c *websocket.Conn, typ int, msg []byte) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(ioTimeout * time.Second))
	gotType, got, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("reading the echo of a %d-byte message: %v", len(msg), err)
	}
	if gotType != typ {
		t.Fatalf("echo has message type %d, want %d", gotType, typ)
	}
	sameMessage(t, "gorilla", got, msg)
}

func TestGorilla(t *testing.T) {
	d := needDaemon(t)

	t.Run("text", func(t *testing.T) {
		c, _ := gorillaConn(t, d, false, 0)
		gorillaEcho(t, c, websocket.TextMessage, []byte(textMsg))
		gorillaEcho(t, c, websocket.TextMessage, []byte{}) // empty message
		gorillaEcho(t, c, websocket.TextMessage, []byte(textMsg+" again"))
	})

	t.Run("binary", func(t *testing.T) {
		c, _ := gorillaConn(t, d, false, 0)
		gorillaEcho(t, c, websocket.BinaryMessage, binaryMsg())
		gorillaEcho(t, c, websocket.BinaryMessage, []byte{})
		// 126 and 65536 cross the 7-bit/16-bit/64-bit length encodings.
		gorillaEcho(t, c, websocket.BinaryMessage, randomBytes(126, 1))
		gorillaEcho(t, c, websocket.BinaryMessage, randomBytes(65536, 2))
	})

	t.Run("1MiB", func(t *testing.T) {
		c, _ := gorillaConn(t, d, false, 0)
		gorillaEcho(t, c, websocket.BinaryMessage, randomBytes(bigSize, 3))
		gorillaEcho(t, c, websocket.TextMessage, []byte(multibyteText(bigSize)))
	})

	t.Run("fragmented", func(t *testing.T) {
		// A 512-byte write buffer makes gorilla flush a frame (FIN=0)
		// every ~500 bytes; the text is multi-byte so frames split runes.
		c, _ := gorillaConn(t, d, false, 512)
		msg := []byte(multibyteText(10_000))
		gorillaFragmented(t, c, websocket.TextMessage, msg, false)
		bin := randomBytes(20_000, 4)
		gorillaFragmented(t, c, websocket.BinaryMessage, bin, false)
	})

	t.Run("fragmented_ping_between", func(t *testing.T) {
		// RFC 6455 5.4: control frames may be injected between fragments.
		c, _ := gorillaConn(t, d, false, 512)
		pongs := make(chan string, 4)
		c.SetPongHandler(func(data string) error { pongs <- data; return nil })
		gorillaFragmented(t, c, websocket.TextMessage, []byte(multibyteText(4000)), true)
		select {
		case p := <-pongs:
			if p != "mid-message" {
				t.Fatalf("pong payload %q, want %q", p, "mid-message")
			}
		default:
			t.Fatal("no pong received for the ping sent between fragments (it should arrive before the echo)")
		}
	})

	t.Run("compressed", func(t *testing.T) {
		c, resp := gorillaConn(t, d, true, 0)
		ext := resp.Header.Get("Sec-WebSocket-Extensions")
		if !strings.Contains(ext, "permessage-deflate") {
			t.Fatalf("permessage-deflate not negotiated (client offered it; --deflate defaults to true): Sec-WebSocket-Extensions: %q", ext)
		}
		t.Logf("negotiated: %s", ext)
		c.EnableWriteCompression(true)
		gorillaEcho(t, c, websocket.TextMessage, []byte("short"))
		gorillaEcho(t, c, websocket.TextMessage, []byte(compressibleText(64<<10)))
		gorillaEcho(t, c, websocket.TextMessage, []byte(compressibleText(64<<10))) // same text again
		gorillaEcho(t, c, websocket.BinaryMessage, []byte(compressibleText(bigSize)))
		gorillaEcho(t, c, websocket.BinaryMessage, randomBytes(100_000, 5)) // incompressible
		c.EnableWriteCompression(false)
		gorillaEcho(t, c, websocket.TextMessage, []byte(compressibleText(10_000))) // RSV1=0 on a deflate conn
	})

	t.Run("compressed_fragmented", func(t *testing.T) {
		c, resp := gorillaConn(t, d, true, 512)
		if ext := resp.Header.Get("Sec-WebSocket-Extensions"); !strings.Contains(ext, "permessage-deflate") {
			t.Fatalf("permessage-deflate not negotiated: %q", ext)
		}
		c.EnableWriteCompression(true)
		gorillaFragmented(t, c, websocket.TextMessage, []byte(compressibleText(50_000)+multibyteText(20_000)), false)
		gorillaFragmented(t, c, websocket.BinaryMessage, randomBytes(30_000, 6), false)
	})

	t.Run("ping", func(t *testing.T) {
		c, _ := gorillaConn(t, d, false, 0)
		pongs := make(chan string, 1)
		c.SetPongHandler(func(data string) error { pongs <- data; return nil })
		if err := c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		// The pong is processed while reading the next echo.
		gorillaEcho(t, c, websocket.TextMessage, []byte("after ping"))
		select {
		case p := <-pongs:
			if p != "are you there" {
				t.Fatalf("pong payload %q, want %q", p, "are you there")
			}
		default:
			t.Fatal("no pong before the echo of the message sent after the ping")
		}
	})

	t.Run("close", func(t *testing.T) {
		c, _ := gorillaConn(t, d, false, 0)
		gorillaEcho(t, c, websocket.TextMessage, []byte("before close"))
		// Record the server's close frame without answering it (gorilla's
		// default handler would send a second close frame).
		c.SetCloseHandler(func(int, string) error { return nil })
		if err := c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, "bye"), time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _, err := c.ReadMessage()
		var ce *websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("after sending close 1000 \"bye\": want a close frame back, got %v", err)
		}
		if ce.Code != websocket.CloseNormalClosure {
			t.Fatalf("server answered close 1000 with close %d %q", ce.Code, ce.Text)
		}
		// RFC 6455 7.1.1: the server closes the TCP connection first.
		nc := c.NetConn()
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := nc.Read(make([]byte, 64))
		if !errIsClosedByPeer(err) {
			t.Fatalf("server did not close TCP within 5s of the close handshake (read %d bytes, err %v)", n, err)
		}
		if n > 0 {
			t.Fatalf("server sent %d bytes after its close frame", n)
		}
	})
}

// gorillaFragmented writes msg through NextWriter in several Write calls of
// uneven sizes (the small write buffer turns them into many frames), with a
// ping between fragments when pingBetween is set, then checks the echo.
func gorillaFragmented(t *testing.T, c *websocket.Conn, typ int, msg []byte, pingBetween bool) {
	t.Helper()
	c.SetWriteDeadline(time.Now().Add(ioTimeout * time.Second))
	w, err := c.NextWriter(typ)
	if err != nil {
		t.Fatal(err)
	}
	parts := splitBytes(msg, 1, 700, 333, 2049, 5)
	for i, p := range parts {
		if _, err := w.Write(p); err != nil {
			t.Fatalf("write part %d: %v", i, err)
		}
		if pingBetween && i == 2 {
			// 700+334 bytes written through a 512-byte buffer: at least
			// one FIN=0 frame is on the wire before this ping.
			if err := c.WriteControl(websocket.PingMessage, []byte("mid-message"), time.Now().Add(5*time.Second)); err != nil {
				t.Fatalf("ping between fragments: %v", err)
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	gorillaExpect(t, c, typ, msg)
}
