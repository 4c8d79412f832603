// Package wstest is a raw WebSocket client for wsd's own tests: it can send
// any bytes (malformed frames, frames split anywhere) and reads frames with
// the codec. Not for production use.
package wstest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/wsdhq/wsd/codec"
)

// Client is one raw connection. Not safe for concurrent use.
type Client struct {
	Conn     net.Conn
	Response string // the upgrade response head
	rd       codec.Reader
	buf      []byte
	wbuf     []byte
	frag     []byte
	fragOp   codec.OpCode
	Timeout  time.Duration
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

// Upgrade performs the handshake over an established conn (TLS, say); host
// goes in the Host header.
func Upgrade(conn net.Conn, addr, path string, headers ...string) (*Client, error) {
	c := &Client{Conn: conn, rd: codec.Reader{Client: true}, Timeout: 10 * time.Second}
	var key [16]byte
	_, _ = rand.Read(key[:])
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
		path, addr, base64.StdEncoding.EncodeToString(key[:]))
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	if _, err := conn.Write([]byte(b.String())); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(c.Timeout))
	br := bufio.NewReader(conn)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			conn.Close()
			return nil, fmt.Errorf("reading upgrade response: %w", err)
		}
		head.WriteString(line)
		if line == "\r\n" {
			break
		}
	}
	c.Response = head.String()
	if n := br.Buffered(); n > 0 {
		p, _ := br.Peek(n)
		c.buf = append(c.buf, p...)
	}
	var status int
	fmt.Sscanf(c.Response, "HTTP/1.1 %d", &status)
	if status != 101 {
		body, _ := io.ReadAll(io.LimitReader(br, 4096))
		conn.Close()
		return nil, &HTTPStatusError{Status: status, Head: c.Response, Body: string(body)}
	}
	if strings.Contains(strings.ToLower(c.Response), "permessage-deflate") {
		c.rd.Deflate = true
	}
	return c, nil
}

// HTTPStatusError is a refused upgrade.
type HTTPStatusError struct {
	Status     int
	Head, Body string
}

func (e *HTTPStatusError) Error() string { return fmt.Sprintf("upgrade refused: %d", e.Status) }

// WriteFrame writes one masked frame.
func (c *Client) WriteFrame(op codec.OpCode, fin bool, payload []byte) error {
	c.wbuf = codec.AppendMaskedFrame(c.wbuf[:0], op, fin, false, [4]byte{1, 2, 3, 4}, payload)
	_, err := c.Conn.Write(c.wbuf)
	return err
}

// WriteMessage writes a whole message in one frame.
func (c *Client) WriteMessage(op codec.OpCode, payload []byte) error {
	return c.WriteFrame(op, true, payload)
}

// WriteRaw writes bytes as they are.
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

// ExpectClose reads until a close frame and returns its code, then checks
// the server closes the TCP connection.
func (c *Client) ExpectClose() (uint16, string, error) {
	for {
		f, err := c.Read()
		if err != nil {
			return 0, "", err
		}
		if f.Op != codec.OpClose {
			continue
		}
		code, reason, err := codec.ParseClose(f.Payload)
		if err != nil {
			return 0, "", err
		}
		return code, string(reason), nil
	}
}

// WaitEOF waits for the server to close the TCP connection.
func (c *Client) WaitEOF() error {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.Timeout))
	var tmp [4096]byte
	for {
		_, err := c.Conn.Read(tmp[:])
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// Close closes the TCP connection.
func (c *Client) Close() error { return c.Conn.Close() }
