package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	mrand "math/rand/v2"

	"github.com/wsdhq/wsd/codec"
)

// conn is one upgraded connection. Writes come from any goroutine and are
// serialised by wmu; reads happen only on the client's run goroutine.
type conn struct {
	nc  net.Conn
	gen uint64 // which connection of the client this is (1, 2, ...)
	wto time.Duration

	wmu       sync.Mutex
	wbuf      []byte
	werr      error
	closeSent bool
}

// write sends one masked frame per payload, in one write.
func (cn *conn) write(op codec.OpCode, payloads ...[]byte) error {
	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	if cn.werr != nil {
		return cn.werr
	}
	if cn.closeSent {
		return net.ErrClosed
	}
	cn.wbuf = cn.wbuf[:0]
	for _, p := range payloads {
		var key [4]byte
		binary.LittleEndian.PutUint32(key[:], mrand.Uint32())
		cn.wbuf = codec.AppendMaskedFrame(cn.wbuf, op, true, false, key, p)
	}
	if op == codec.OpClose {
		cn.closeSent = true
	}
	_ = cn.nc.SetWriteDeadline(time.Now().Add(cn.wto))
	_, err := cn.nc.Write(cn.wbuf)
	if cap(cn.wbuf) > 64<<10 {
		cn.wbuf = nil
	}
	if err != nil {
		cn.werr = err
		_ = cn.nc.Close() // the read side notices and the client reconnects
	}
	return err
}

// sendClose starts the closing handshake (no-op when already started).
func (cn *conn) sendClose(code uint16, reason string) error {
	p := binary.BigEndian.AppendUint16(nil, code)
	p = append(p, reason...)
	return cn.write(codec.OpClose, p)
}

// target is the parsed server URL.
type target struct {
	u    *url.URL
	tls  bool
	addr string // host:port to dial
}

func parseTarget(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, fmt.Errorf("wsd client: bad URL: %w", err)
	}
	t := target{u: u}
	port := "80"
	switch u.Scheme {
	case "ws", "http":
	case "wss", "https":
		t.tls, port = true, "443"
	default:
		return target{}, fmt.Errorf("wsd client: URL scheme %q is not ws, wss, http or https", u.Scheme)
	}
	if u.Host == "" {
		return target{}, errors.New("wsd client: URL has no host")
	}
	if u.Port() != "" {
		port = u.Port()
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	return t, nil
}

// dial opens and upgrades a connection. It returns the bytes the server
// sent after its 101 response (the start of the first frames).
func (c *Client) dial(ctx context.Context) (cn *conn, rest []byte, err error) {
	t := c.targets[c.ep]
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()

	token := c.opts.Token
	if c.opts.TokenFunc != nil {
		if token, err = c.opts.TokenFunc(ctx); err != nil {
			return nil, nil, fmt.Errorf("wsd client: getting a token: %w", err)
		}
	}

	var nc net.Conn
	if c.opts.NetDial != nil {
		nc, err = c.opts.NetDial(ctx, "tcp", t.addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", t.addr)
	}
	if err != nil {
		return nil, nil, err
	}
	// The context cuts a slow handshake short by expiring the deadline
	// (of the TCP connection, which a TLS one wraps).
	raw := nc
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() && err == nil {
			err = ctx.Err()
		}
		if err != nil {
			_ = nc.Close()
			cn, rest = nil, nil
			return
		}
		_ = nc.SetDeadline(time.Time{})
	}()

	if t.tls {
		cfg := c.opts.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{}
		} else {
			cfg = cfg.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = t.u.Hostname()
		}
		tc := tls.Client(nc, cfg)
		if err = tc.HandshakeContext(ctx); err != nil {
			return nil, nil, err
		}
		nc = tc
	}

	h := c.handshake(t, token)
	key := codec.NewKey()
	if _, err = nc.Write(h.AppendRequest(nil, key)); err != nil {
		return nil, nil, err
	}
	resp, rest, err := readResponse(nc, &h, key)
	if err != nil {
		return nil, nil, err
	}
	if resp.Status != 101 {
		body := rest
		if len(body) > 512 {
			body = body[:512]
		}
		return nil, nil, &HandshakeError{Status: resp.Status, Body: strings.TrimSpace(string(body)),
			RetryAfter: retryAfter(resp.Get("Retry-After"))}
	}
	return &conn{nc: nc, wto: c.opts.WriteTimeout}, bytes.Clone(rest), nil
}

// handshake is the upgrade request for this client: its URL, the token in
// an Authorization: Bearer header (not in the URL, which ends up in access
// logs), and the user's extra headers (minus those the handshake itself
// owns). It offers no subprotocol and no extension, so a server that picks
// one fails the handshake.
func (c *Client) handshake(t target, token string) codec.ClientHandshake {
	u := *t.u
	h := codec.ClientHandshake{Host: u.Host, Path: u.RequestURI()}
	if token != "" {
		h.Header = append(h.Header, codec.HeaderField{Name: "Authorization", Value: "Bearer " + token})
	}
	for name, values := range c.opts.Header {
		switch http.CanonicalHeaderKey(name) {
		case "Host", "Upgrade", "Connection", "Sec-Websocket-Key", "Sec-Websocket-Version", "Sec-Websocket-Extensions", "Sec-Websocket-Protocol":
			continue
		case "Authorization":
			if token != "" {
				continue
			}
		}
		for _, v := range values {
			h.Header = append(h.Header, codec.HeaderField{Name: name, Value: v})
		}
	}
	return h
}

// readResponse reads until h accepts or refuses the server's answer. resp
// is a 101 checked against key, or a refusal whose body starts in rest;
// rest otherwise holds the first frames.
func readResponse(nc net.Conn, h *codec.ClientHandshake, key string) (resp *codec.Response, rest []byte, err error) {
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		n, rerr := nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		resp, end, err := h.ReadResponse(buf, key)
		var re *codec.ResponseError
		switch {
		case err == nil, errors.As(err, &re) && re.Status != 0:
			return resp, buf[end:], nil
		case !errors.Is(err, codec.ErrNeedMore):
			return nil, nil, fmt.Errorf("wsd client: %w", err)
		case rerr != nil:
			if rerr == io.EOF {
				rerr = io.ErrUnexpectedEOF
			}
			return nil, nil, fmt.Errorf("wsd client: reading the upgrade response: %w", rerr)
		}
	}
}

var errPingTimeout = errors.New("wsd client: no answer from the server to a ping")

// readLoop reads frames until the connection ends and hands every
// message to handleData. It runs on the run goroutine.
func (c *Client) readLoop(cn *conn, buf []byte) error {
	rd := codec.Reader{Client: true, Limits: &codec.Limits{MaxFrame: c.opts.MaxMessage, MaxMessage: c.opts.MaxMessage}}
	if cap(buf) < 32<<10 {
		buf = append(make([]byte, 0, 32<<10), buf...)
	}
	var msg []byte // a fragmented message being assembled
	awaitingPong := false
	for {
		// Consume every complete frame in buf.
		consumed := 0
		for {
			f, n, err := rd.Next(buf[consumed:])
			if err != nil {
				var pe *codec.ProtocolError
				if errors.As(err, &pe) {
					_ = cn.sendClose(pe.Code, pe.Reason)
				}
				return err
			}
			if f.Op == 0 {
				break
			}
			consumed += n
			switch f.Op {
			case codec.OpPing:
				if err := cn.write(codec.OpPong, f.Payload); err != nil {
					return err
				}
			case codec.OpPong:
			case codec.OpClose:
				code, reason, err := codec.ParseClose(f.Payload)
				if err != nil {
					var pe *codec.ProtocolError
					if errors.As(err, &pe) {
						_ = cn.sendClose(pe.Code, pe.Reason)
					}
					return err
				}
				if code == codec.CloseNoStatus {
					_ = cn.sendClose(codec.CloseNormal, "")
				} else {
					_ = cn.sendClose(code, "") // echo; no-op if we started it
				}
				return &CloseError{Code: code, Reason: string(reason)}
			case codec.OpText, codec.OpBinary:
				if f.First && f.Fin {
					c.handleData(cn, f.Op, f.Payload)
					continue
				}
				if f.First {
					msg = msg[:0]
				}
				msg = append(msg, f.Payload...)
				if f.Fin {
					c.handleData(cn, f.Op, msg) // Op is the message's on every piece
					if cap(msg) > 64<<10 {
						msg = nil
					}
				}
			}
		}
		buf = buf[:copy(buf, buf[consumed:])]

		if len(buf) == cap(buf) { // a frame bigger than the buffer
			buf = append(buf, make([]byte, len(buf))...)[:len(buf)]
		}
		if c.opts.PingInterval > 0 {
			_ = cn.nc.SetReadDeadline(time.Now().Add(c.opts.PingInterval))
		}
		n, err := cn.nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			awaitingPong = false
		}
		if err != nil {
			var ne net.Error
			if n == 0 && c.opts.PingInterval > 0 && errors.As(err, &ne) && ne.Timeout() {
				if awaitingPong {
					return errPingTimeout
				}
				awaitingPong = true
				if err := cn.write(codec.OpPing, nil); err != nil {
					return err
				}
				continue
			}
			if n == 0 {
				return err
			}
		}
		if cap(buf) > 1<<20 && len(buf) < 32<<10 { // give back a buffer a big message grew
			buf = append(make([]byte, 0, 32<<10), buf...)
		}
	}
}

// retryAfter is a refusal's Retry-After as a wait (0 when absent or invalid).
func retryAfter(v string) time.Duration {
	d, _ := codec.ParseRetryAfter(v, time.Now())
	return d
}
