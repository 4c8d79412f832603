// Package wstest is a raw WebSocket client for wsd's own tests: it can send
// any bytes (malformed frames, frames split anywhere) and reads frames with
// the codec. Not for production use.
package wstest

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/wsdhq/wsd/codec"
)

// Client is one raw connection. Not safe for concurrent use.
type Client struct {
	Conn      net.Conn
	Response  string // the upgrade response head
	rd        codec.Reader
	buf       []byte
	wbuf      []byte
	frag      []byte
	fragOp    codec.OpCode
	Timeout   time.Duration
	closeSent bool // a close frame went out through WriteFrame
}

// Dial connects to addr and upgrades on path with extra header lines
// ("Name: value"). A non-101 answer is returned as *HTTPStatusError.
func Dial(addr, path string, headers ...string) (*Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return Upgrade(conn, addr, path, headers...)
}

// Upgrade performs the handshake over an established conn (TLS, say); addr
// goes in the Host header. Sec-WebSocket-Protocol and
// Sec-WebSocket-Extensions lines among headers are the offer the response
// is checked against (codec.ClientHandshake.ReadResponse, accept key
// included); a 101 that fails a check is that *codec.ResponseError, and
// any other status an *HTTPStatusError. conn is closed on error.
func Upgrade(conn net.Conn, addr, path string, headers ...string) (*Client, error) {
	c := &Client{Conn: conn, rd: codec.Reader{Client: true}, Timeout: 10 * time.Second}
	h := handshake(addr, path, headers)
	key := codec.NewKey()
	if _, err := conn.Write(h.AppendRequest(nil, key)); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(c.Timeout))
	var buf []byte
	for {
		var tmp [4096]byte
		k, rerr := conn.Read(tmp[:])
		buf = append(buf, tmp[:k]...)
		resp, n, err := h.ReadResponse(buf, key)
		switch {
		case err == nil:
			c.Response = string(buf[:n])
			c.buf = append(c.buf, buf[n:]...)
			c.rd.Deflate = resp.Deflate
			return c, nil
		case resp != nil: // a refusal
			body := readBody(conn, buf[n:])
			conn.Close()
			return nil, &HTTPStatusError{Status: resp.Status, Head: string(buf[:n]), Body: body}
		case !errors.Is(err, codec.ErrNeedMore):
			conn.Close()
			return nil, err
		case rerr != nil:
			conn.Close()
			return nil, fmt.Errorf("reading upgrade response: %w", rerr)
		}
	}
}

// handshake builds the offer from Upgrade's arguments.
func handshake(addr, path string, headers []string) *codec.ClientHandshake {
	h := &codec.ClientHandshake{Host: addr, Path: path}
	for _, line := range headers {
		name, value, _ := strings.Cut(line, ":")
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case strings.EqualFold(name, "Sec-WebSocket-Protocol"):
			for _, p := range strings.Split(value, ",") {
				if p = strings.TrimSpace(p); p != "" {
					h.Protocols = append(h.Protocols, p)
				}
			}
		case strings.EqualFold(name, "Sec-WebSocket-Extensions"):
			if h.Extensions != "" {
				h.Extensions += ", "
			}
			h.Extensions += value
		default:
			h.Header = append(h.Header, codec.HeaderField{Name: name, Value: value})
		}
	}
	return h
}

// readBody returns a refusal's body: what came with the head, then more
// until the server closes, 4 KiB or the read deadline.
func readBody(conn net.Conn, got []byte) string {
	body := append([]byte(nil), got...)
	for len(body) < 4096 {
		var tmp [4096]byte
		k, err := conn.Read(tmp[:4096-len(body)])
		body = append(body, tmp[:k]...)
		if err != nil {
			break
		}
	}
	return string(body)
}

// HTTPStatusError is a refused upgrade.
type HTTPStatusError struct {
	Status     int
	Head, Body string
}

func (e *HTTPStatusError) Error() string { return fmt.Sprintf("upgrade refused: %d", e.Status) }

// WriteFrame writes one masked frame. After a close frame, ExpectClose
// waits for the server's answer instead of answering itself.
func (c *Client) WriteFrame(op codec.OpCode, fin bool, payload []byte) error {
	if op == codec.OpClose {
		c.closeSent = true
	}
	c.wbuf = codec.AppendMaskedFrame(c.wbuf[:0], op, fin, false, [4]byte{1, 2, 3, 4}, payload)
	_, err := c.Conn.Write(c.wbuf)
	return err
}

// WriteMessage writes a whole message in one frame.
func (c *Client) WriteMessage(op codec.OpCode, payload []byte) error {
	return c.WriteFrame(op, true, payload)
}

// WriteRaw writes bytes as they are (a close frame written this way is not
// noticed by ExpectClose).
func (c *Client) WriteRaw(p []byte) error {
	_, err := c.Conn.Write(p)
	return err
}

// Frame is a received control frame or whole data message.
type Frame struct {
	Op         codec.OpCode
	Payload    []byte
	Compressed bool
}

// Read returns the next control frame or whole data message. io.EOF means
// the server closed the TCP connection.
func (c *Client) Read() (Frame, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.Timeout))
	for {
		f, n, err := c.rd.Next(c.buf)
		if err != nil {
			return Frame{}, err
		}
		if f.Op != 0 {
			payload := append([]byte(nil), f.Payload...)
			c.buf = c.buf[n:]
			if f.Op.IsControl() {
				return Frame{Op: f.Op, Payload: payload}, nil
			}
			if f.First {
				c.frag, c.fragOp = c.frag[:0], f.Op
			}
			c.frag = append(c.frag, payload...)
			if f.Fin {
				return Frame{Op: c.fragOp, Payload: bytes.Clone(c.frag), Compressed: f.Compressed}, nil
			}
			continue
		}
		var tmp [64 << 10]byte
		k, err := c.Conn.Read(tmp[:])
		c.buf = append(c.buf, tmp[:k]...)
		if err != nil && k == 0 {
			return Frame{}, err
		}
	}
}

// ReadData skips pings/pongs and returns the next data message or close.
func (c *Client) ReadData() (Frame, error) {
	for {
		f, err := c.Read()
		if err != nil || (f.Op != codec.OpPing && f.Op != codec.OpPong) {
			return f, err
		}
	}
}

// ExpectClose reads until the server's close frame and returns its code
// and reason (codec.CloseNoStatus and "" for an empty body). Pings, pongs
// and data messages before it are discarded: a server may have queued them
// before it decided to close. It then completes the closing handshake
// (RFC 6455 §5.5.1, §7.1.1): unless this client already sent a close with
// WriteFrame, it answers with a close echoing the code; then the server
// must send nothing more and close the TCP connection within Timeout.
//
// It fails if the connection ends, or Timeout passes without a byte, before
// a close frame arrives; if the close payload is invalid (codec.ParseClose:
// a 1-byte body, a code not allowed on the wire, a reason that is not
// UTF-8); if a frame follows the close; or if the TCP connection stays open.
func (c *Client) ExpectClose() (uint16, string, error) {
	var f Frame
	for {
		var err error
		if f, err = c.Read(); err != nil {
			return 0, "", fmt.Errorf("no close frame from the server: %w", err)
		}
		if f.Op == codec.OpClose {
			break
		}
	}
	code, reason, err := codec.ParseClose(f.Payload)
	if err != nil {
		return 0, "", fmt.Errorf("invalid close frame from the server (% x): %w", f.Payload, err)
	}
	if !c.closeSent {
		var body []byte
		if code != codec.CloseNoStatus {
			body = binary.BigEndian.AppendUint16(nil, code)
		}
		// The server may close at once without waiting for this answer.
		_ = c.WriteFrame(codec.OpClose, true, body)
	}
	if err := c.expectEOF(); err != nil {
		return code, string(reason), err
	}
	return code, string(reason), nil
}

// expectEOF checks that the server closes the connection within Timeout
// without sending another frame.
func (c *Client) expectEOF() error {
	f, err := c.Read()
	switch {
	case err == nil:
		return fmt.Errorf("the server sent %v (%d bytes) after its close frame", f.Op, len(f.Payload))
	case isClosed(err):
		return nil
	case isTimeout(err):
		return fmt.Errorf("the server did not close the TCP connection within %v of the closing handshake", c.Timeout)
	}
	return fmt.Errorf("after the close frame: %w", err)
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close closes the TCP connection.
func (c *Client) Close() error { return c.Conn.Close() }
