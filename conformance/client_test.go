// Package conformance is an Autobahn-style conformance suite for wsd's /echo
// endpoint, and the raw WebSocket client it drives the daemon with.
//
// The client is deliberately dumb on the sending side: tests build frames
// (well-formed or not) with Frame and Header and write any bytes, split any
// way, with Write and WriteChunks. On the receiving side it is strict: every
// server frame goes through codec.Reader{Client: true}, so a masked, reserved
// or otherwise invalid server frame is an error, and every read has a
// deadline, so a hung server fails a test instead of hanging it.
package conformance

import (
	"bufio"
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/wsdhq/wsd/codec"
)

// DefaultTimeout bounds every read (and the handshake) unless Options says otherwise.
const DefaultTimeout = 5 * time.Second

// writeTimeout bounds every write.
const writeTimeout = 30 * time.Second

// maxInflate caps what the client inflates, so a server bug cannot bomb the test.
const maxInflate = 64 << 20

// Options configures Dial. The zero value dials /echo with no extension offer.
type Options struct {
	Path       string        // request path; "" means "/echo"
	Extensions string        // Sec-WebSocket-Extensions offer; "" offers none
	Header     []string      // extra raw header lines, without CRLF
	Pipelined  []byte        // bytes written in the same write as the request
	SplitDelay time.Duration // > 0: write the request one byte at a time, pausing this long
	Timeout    time.Duration // per-read deadline; 0 means DefaultTimeout
}

// Deflate holds the permessage-deflate parameters the server accepted.
// Window bits of 0 mean the parameter was absent.
type Deflate = codec.DeflateParams

// Event is one thing the server sent: a whole data message (reassembled and,
// if compressed, inflated) or a control frame.
type Event struct {
	Op         codec.OpCode // OpText, OpBinary, OpPing, OpPong or OpClose
	Payload    []byte
	Compressed bool   // the message had RSV1 set
	Code       uint16 // close frames: the status, codec.CloseNoStatus for an empty body
	Reason     string // close frames
}

func (e Event) String() string {
	switch e.Op {
	case codec.OpClose:
		if e.Code == codec.CloseNoStatus {
			return "close (no body)"
		}
		return fmt.Sprintf("close %d %q", e.Code, e.Reason)
	case codec.OpText, codec.OpBinary, codec.OpPing, codec.OpPong:
		c := ""
		if e.Compressed {
			c = " compressed"
		}
		return fmt.Sprintf("%s%s (%d bytes %s)", opName(e.Op), c, len(e.Payload), preview(e.Payload))
	}
	return fmt.Sprintf("opcode %d", e.Op)
}

func opName(op codec.OpCode) string {
	switch op {
	case codec.OpContinuation:
		return "continuation"
	case codec.OpText:
		return "text"
	case codec.OpBinary:
		return "binary"
	case codec.OpClose:
		return "close"
	case codec.OpPing:
		return "ping"
	case codec.OpPong:
		return "pong"
	}
	return "opcode " + strconv.Itoa(int(op))
}

func preview(p []byte) string {
	if len(p) > 24 {
		return fmt.Sprintf("%q…", p[:24])
	}
	return fmt.Sprintf("%q", p)
}

// Client is one raw WebSocket client connection. Reads and writes may run on
// two different goroutines; each side is not safe for concurrent use.
type Client struct {
	Conn    net.Conn
	Resp    *codec.Response // the 101 response
	Deflate *Deflate        // nil unless permessage-deflate was accepted
	Timeout time.Duration   // per-read deadline

	wmu    sync.Mutex // serialises writes (a test's writer and a close reply)
	r      codec.Reader
	buf    []byte // read buffer
	in     []byte // unconsumed bytes, aliases buf
	msg    *Event // data message in progress
	window []byte // inflate dictionary when the server keeps its context
	// smallWindow: the client may not use a 32 KiB window (client_max_window_bits < 15).
	smallWindow bool
	out         outTracker
}

// Dial connects to addr, performs the opening handshake and checks the
// server's answer with codec.ClientHandshake (101, Upgrade, Connection,
// Sec-WebSocket-Accept, and the extension response against the offer).
func Dial(addr string, o Options) (*Client, error) {
	if o.Path == "" {
		o.Path = "/echo"
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	conn, err := net.DialTimeout("tcp", addr, o.Timeout)
	if err != nil {
		return nil, err
	}
	c, err := handshake(conn, addr, o)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func handshake(conn net.Conn, addr string, o Options) (*Client, error) {
	h := codec.ClientHandshake{Host: addr, Path: o.Path, Extensions: o.Extensions}
	for _, line := range o.Header {
		name, value, _ := strings.Cut(line, ":")
		h.Header = append(h.Header, codec.HeaderField{Name: strings.TrimSpace(name), Value: strings.TrimSpace(value)})
	}
	key := codec.NewKey()
	req := append(h.AppendRequest(nil, key), o.Pipelined...)

	c := &Client{Conn: conn, Timeout: o.Timeout, buf: make([]byte, 256<<10)}
	c.r.Client = true
	if o.SplitDelay > 0 {
		if err := c.WriteChunks(req, func() int { return 1 }, o.SplitDelay); err != nil {
			return nil, err
		}
	} else if err := c.Write(req); err != nil {
		return nil, err
	}

	head, rest, err := readHead(conn, o.Timeout)
	if err != nil {
		return nil, fmt.Errorf("reading the handshake response: %w", err)
	}
	resp, _, err := h.ReadResponse(head, key)
	if err != nil {
		return nil, fmt.Errorf("handshake: %w\n%s", err, head)
	}
	c.Resp = resp
	c.in = c.buf[:copy(c.buf, rest)]
	if resp.Deflate {
		d := resp.Params
		c.Deflate = &d
		c.r.Deflate = true
		// Our own offer's client_max_window_bits=N binds us too, even when
		// the response does not repeat it.
		c.smallWindow = d.ClientMaxWindowBits > 0 && d.ClientMaxWindowBits < 15
		if _, v, ok := strings.Cut(o.Extensions, "client_max_window_bits="); ok {
			if n, err := strconv.Atoi(strings.TrimSpace(strings.FieldsFunc(v, func(r rune) bool { return r == ';' || r == ',' })[0])); err == nil && n < 15 {
				c.smallWindow = true
			}
		}
	}
	return c, nil
}

// readHead reads up to and including the blank line that ends an HTTP head;
// rest is whatever followed it in the same reads.
func readHead(conn net.Conn, timeout time.Duration) (head, rest []byte, err error) {
	conn.SetReadDeadline(time.Now().Add(timeout))
	defer conn.SetReadDeadline(time.Time{})
	var b []byte
	tmp := make([]byte, 4096)
	for {
		if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
			return b[:i+4], b[i+4:], nil
		}
		if len(b) > 64<<10 {
			return nil, nil, errors.New("response head over 64 KiB")
		}
		n, err := conn.Read(tmp)
		b = append(b, tmp[:n]...)
		if err != nil {
			if bytes.Contains(b, []byte("\r\n\r\n")) {
				continue
			}
			return nil, nil, fmt.Errorf("%w (after %d bytes: %q)", err, len(b), b)
		}
	}
}

// Write writes b in one call.
func (c *Client) Write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.out.feed(b)
	c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.Conn.Write(b)
	return err
}

// WriteChunks writes b in pieces of size() bytes, pausing between them.
// It stops at the first error.
func (c *Client) WriteChunks(b []byte, size func() int, pause time.Duration) error {
	for len(b) > 0 {
		k := min(max(size(), 1), len(b))
		if err := c.Write(b[:k]); err != nil {
			return err
		}
		b = b[k:]
		if pause > 0 && len(b) > 0 {
			time.Sleep(pause)
		}
	}
	return nil
}

// SentClose reports whether the bytes written so far contain a close frame.
func (c *Client) SentClose() bool { return c.out.closeSent.Load() }

// Close closes the TCP connection without a closing handshake.
func (c *Client) Close() error { return c.Conn.Close() }

// Next returns the next message or control frame from the server. A read
// that makes no progress for c.Timeout fails with a timeout error; a server
// frame that breaks RFC 6455 fails with a *codec.ProtocolError.
func (c *Client) Next() (Event, error) {
	for {
		f, n, err := c.r.Next(c.in)
		if err != nil {
			return Event{}, fmt.Errorf("invalid frame from the server: %w", err)
		}
		if f.Op == 0 {
			if err := c.fill(); err != nil {
				if c.msg != nil {
					err = fmt.Errorf("%w (inside a %s message, %d bytes received)", err, opName(c.msg.Op), len(c.msg.Payload))
				}
				return Event{}, err
			}
			continue
		}
		c.in = c.in[n:]
		if f.Op.IsControl() {
			ev := Event{Op: f.Op, Payload: bytes.Clone(f.Payload)}
			if ev.Payload == nil {
				ev.Payload = []byte{}
			}
			if f.Op == codec.OpClose {
				code, reason, err := codec.ParseClose(ev.Payload)
				if err != nil {
					return ev, fmt.Errorf("invalid close frame from the server (% x): %w", ev.Payload, err)
				}
				ev.Code, ev.Reason = code, string(reason)
			}
			return ev, nil
		}
		if f.First {
			c.msg = &Event{Op: f.Op, Compressed: f.Compressed, Payload: []byte{}}
		}
		c.msg.Payload = append(c.msg.Payload, f.Payload...)
		if !f.Fin {
			continue
		}
		ev := *c.msg
		c.msg = nil
		if ev.Compressed {
			p, err := c.inflate(ev.Payload)
			if err != nil {
				return ev, fmt.Errorf("inflating a compressed %s message from the server: %w", opName(ev.Op), err)
			}
			ev.Payload = p
			if ev.Op == codec.OpText && !utf8.Valid(p) {
				return ev, errors.New("compressed text message from the server is not UTF-8 once inflated")
			}
		}
		return ev, nil
	}
}

func (c *Client) fill() error {
	n := copy(c.buf, c.in)
	c.Conn.SetReadDeadline(time.Now().Add(c.Timeout))
	m, err := c.Conn.Read(c.buf[n:])
	c.in = c.buf[:n+m]
	if m > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	return err
}

// deflateTail ends a message's deflate stream: the sync marker the sender
// stripped (RFC 7692 §7.2.2) and an empty final stored block, so that the
// decompressor reports a clean EOF.
var deflateTail = []byte{0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff}

func (c *Client) inflate(p []byte) ([]byte, error) {
	src := io.MultiReader(bytes.NewReader(p), bytes.NewReader(deflateTail))
	var fr io.ReadCloser
	if c.Deflate.ServerNoContextTakeover {
		fr = flate.NewReader(src)
	} else {
		fr = flate.NewReaderDict(src, c.window)
	}
	out, err := io.ReadAll(io.LimitReader(fr, maxInflate+1))
	if err != nil {
		return nil, err
	}
	if len(out) > maxInflate {
		return nil, errors.New("inflates to more than 64 MiB")
	}
	if !c.Deflate.ServerNoContextTakeover {
		c.window = append(c.window, out...)
		if len(c.window) > 32<<10 {
			c.window = append([]byte(nil), c.window[len(c.window)-32<<10:]...)
		}
	}
	return out, nil
}

// Compress deflates p as one permessage-deflate message payload (without the
// trailing 00 00 ff ff), from a fresh context. With the negotiated
// client_max_window_bits below 15 it emits Huffman-only blocks, which use no
// back-references and so fit any window.
func (c *Client) Compress(p []byte) []byte {
	level := flate.BestCompression
	if c.smallWindow {
		level = flate.HuffmanOnly
	}
	return Compress(p, level)
}

// Compress deflates p at level and strips the sync marker (RFC 7692 §7.2.1).
func Compress(p []byte, level int) []byte {
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		panic(err)
	}
	w.Write(p)
	w.Flush()
	out := b.Bytes()
	if !bytes.HasSuffix(out, []byte{0, 0, 0xff, 0xff}) {
		panic("flate flush did not end with a sync marker")
	}
	return out[:len(out)-4]
}

// Frame builds one client frame, masked with a random key. rsv holds the
// three reserved bits as a number: 4 is RSV1, 2 is RSV2, 1 is RSV3.
func Frame(op codec.OpCode, fin bool, rsv byte, payload []byte) []byte {
	key := [4]byte{byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32())}
	b := codec.AppendMaskedFrame(nil, op, fin, rsv&4 != 0, key, payload)
	b[0] |= (rsv & 3) << 4
	return b
}

// Header builds only a masked frame header announcing length payload bytes,
// always using the shortest length encoding.
func Header(op codec.OpCode, fin bool, rsv byte, length uint64) []byte {
	b0 := byte(op) | (rsv&7)<<4
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch {
	case length > 0xffff:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, length)
	case length > 125:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(length))
	default:
		b = append(b, 0x80|byte(length))
	}
	return append(b, byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32()), byte(rand.Uint32()))
}

// CloseBody is a close frame payload: a big-endian code and the reason bytes
// (not validated, so tests can send bad ones).
func CloseBody(code uint16, reason string) []byte {
	return append(binary.BigEndian.AppendUint16(nil, code), reason...)
}

// outTracker follows the frame headers the client writes (payloads are
// skipped, nothing is validated) to learn whether a close frame went out, so
// that the client answers a server's close only when it did not start the
// closing handshake itself.
type outTracker struct {
	hdr       []byte
	skip      uint64
	closeSent atomic.Bool // read by the reading goroutine
}

func (o *outTracker) feed(p []byte) {
	for len(p) > 0 {
		if o.skip > 0 {
			k := min(uint64(len(p)), o.skip)
			o.skip -= k
			p = p[k:]
			continue
		}
		o.hdr = append(o.hdr, p[0])
		p = p[1:]
		if len(o.hdr) < 2 {
			continue
		}
		need := 2
		switch o.hdr[1] & 0x7f {
		case 126:
			need += 2
		case 127:
			need += 8
		}
		if o.hdr[1]&0x80 != 0 {
			need += 4
		}
		if len(o.hdr) < need {
			continue
		}
		length := uint64(o.hdr[1] & 0x7f)
		switch length {
		case 126:
			length = uint64(binary.BigEndian.Uint16(o.hdr[2:]))
		case 127:
			length = binary.BigEndian.Uint64(o.hdr[2:])
		}
		if o.hdr[0]&0x0f == byte(codec.OpClose) {
			o.closeSent.Store(true)
		}
		o.skip = length
		o.hdr = o.hdr[:0]
	}
}

// RawResponse sends req as-is on a new connection and reads the response
// head. The connection is closed before returning.
func RawResponse(addr string, req []byte, timeout time.Duration) (*http.Response, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(req); err != nil {
		return nil, fmt.Errorf("writing the request: %w", err)
	}
	head, _, err := readHead(conn, timeout)
	if err != nil {
		return nil, err
	}
	return http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), nil)
}
