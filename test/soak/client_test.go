package soak

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/gobwas/ws"
)

// wsConn is one client connection of the driver. Not safe for concurrent
// use, except close.
type wsConn struct {
	net.Conn
	br  *bufio.Reader
	buf []byte // the last message's payload, reused
}

// errClosed carries the close code a server sent.
type errClosed struct{ code uint16 }

func (e errClosed) Error() string { return fmt.Sprintf("server closed with %d", e.code) }

// closeCode returns the server's close code in err, or 0.
func closeCode(err error) uint16 {
	var ec errClosed
	if errors.As(err, &ec) {
		return ec.code
	}
	return 0
}

// wsDial connects and upgrades on path (no extensions offered).
func wsDial(ctx context.Context, dl *dialer, addr, path string, rcvbuf int) (*wsConn, error) {
	d := ws.Dialer{
		Timeout: 10 * time.Second,
		NetDial: func(ctx context.Context, _, a string) (net.Conn, error) { return dl.dial(ctx, a, rcvbuf) },
	}
	conn, br, _, err := d.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, 4096)
	}
	return &wsConn{Conn: conn, br: br}, nil
}

// write sends one masked message.
func (c *wsConn) write(op ws.OpCode, p []byte) error {
	return ws.WriteFrame(c.Conn, ws.MaskFrame(ws.NewFrame(op, true, p)))
}

// read returns the next data message (the slice is reused by the next
// call); pings and pongs are skipped; a close frame is an errClosed.
func (c *wsConn) read() (ws.OpCode, []byte, error) {
	c.buf = c.buf[:0]
	var op ws.OpCode
	for range 1 << 16 { // bounded: fragments and control frames of one message
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return 0, nil, err
		}
		if h.Length > 64<<20 {
			return 0, nil, fmt.Errorf("frame of %d bytes from the server", h.Length)
		}
		n := len(c.buf)
		c.buf = append(c.buf, make([]byte, h.Length)...)
		if _, err := io.ReadFull(c.br, c.buf[n:]); err != nil {
			return 0, nil, err
		}
		switch {
		case h.OpCode == ws.OpClose:
			code := uint16(1005)
			if h.Length >= 2 {
				code = binary.BigEndian.Uint16(c.buf[n:])
			}
			return 0, nil, errClosed{code}
		case h.OpCode.IsControl():
			c.buf = c.buf[:n]
			continue
		case h.OpCode != ws.OpContinuation:
			op = h.OpCode
		}
		if h.Fin {
			return op, c.buf, nil
		}
	}
	return 0, nil, errors.New("message of over 65,536 frames")
}

// closeGraceful sends a 1000 close and waits (up to timeout) for the
// server's close and its end of the TCP connection, as a polite client.
func (c *wsConn) closeGraceful(timeout time.Duration) error {
	defer c.Conn.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	if err := ws.WriteFrame(c.Conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(1000, "")))); err != nil {
		return err
	}
	for range 1 << 10 {
		_, _, err := c.read()
		if code := closeCode(err); code != 0 {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return errors.New("no close answer")
}
