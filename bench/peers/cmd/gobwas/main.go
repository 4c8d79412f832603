// Command gobwas serves /echo and /broadcast with gobwas/ws in the
// "netpoll" style its author describes for millions of connections ("A
// Million WebSockets and Go"): no goroutine per connection. Connections are
// upgraded with ws.Upgrader, then registered with an epoll instance
// (EPOLLONESHOT); when one becomes readable a bounded goroutine pool reads
// one frame with ws.ReadHeader, handles it and re-arms the descriptor.
//
// The article used mailru/easygo's netpoll, which is not available from the
// module proxy here and dup()s every descriptor (two fds per connection,
// which a 20,000-fd limit cannot afford), so the epoll part is written
// directly on golang.org/x/sys/unix.
package main

import (
	"errors"
	"flag"
	"io"
	"log"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"golang.org/x/sys/unix"
)

const maxFrame = 16 << 20

// pool runs tasks on at most size goroutines, spawned on demand.
type pool struct {
	work chan func()
	sem  chan struct{}
}

func newPool(size, queue int) *pool {
	return &pool{work: make(chan func(), queue), sem: make(chan struct{}, size)}
}

func (p *pool) schedule(task func()) {
	select {
	case p.work <- task:
		return
	case p.sem <- struct{}{}:
		go p.worker(task)
	}
}

func (p *pool) worker(task func()) {
	defer func() { <-p.sem }()
	for {
		task()
		select {
		case task = <-p.work:
		case <-time.After(10 * time.Second):
			return
		}
	}
}

type route uint8

const (
	routeEcho route = iota
	routeBroadcast
)

type client struct {
	conn  net.Conn
	fd    int
	route route
	wmu   sync.Mutex
	frag  []byte
	fop   ws.OpCode
}

func (c *client) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.conn.Write(b)
	return err
}

type server struct {
	epfd int
	pool *pool
	mu   sync.RWMutex
	byFd map[int]*client
	subs map[*client]struct{}
}

func (s *server) register(c *client) error {
	s.mu.Lock()
	s.byFd[c.fd] = c
	if c.route == routeBroadcast {
		s.subs[c] = struct{}{}
	}
	s.mu.Unlock()
	return unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(c.fd)})
}

func (s *server) rearm(c *client) {
	_ = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(c.fd)})
}

func (s *server) drop(c *client) {
	_ = unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
	s.mu.Lock()
	delete(s.byFd, c.fd)
	delete(s.subs, c)
	s.mu.Unlock()
	_ = c.conn.Close()
}

func (s *server) pollLoop() {
	evs := make([]unix.EpollEvent, 1024)
	for {
		n, err := unix.EpollWait(s.epfd, evs, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			log.Fatal(err)
		}
		for _, ev := range evs[:n] {
			s.mu.RLock()
			c := s.byFd[int(ev.Fd)]
			s.mu.RUnlock()
			if c == nil {
				continue
			}
			s.pool.schedule(func() {
				if err := s.readFrame(c); err != nil {
					s.drop(c)
					return
				}
				s.rearm(c)
			})
		}
	}
}

// readFrame reads and handles one frame; the socket is readable, so the
// header is there (the payload may still be arriving: ReadFull waits).
func (s *server) readFrame(c *client) error {
	h, err := ws.ReadHeader(c.conn)
	if err != nil {
		return err
	}
	if err := ws.CheckHeader(h, ws.StateServerSide); err != nil {
		return err
	}
	if h.Length > maxFrame {
		return ws.ErrProtocolControlPayloadOverflow
	}
	payload := make([]byte, h.Length)
	if _, err := io.ReadFull(c.conn, payload); err != nil {
		return err
	}
	if h.Masked {
		ws.Cipher(payload, h.Mask, 0)
	}
	switch h.OpCode {
	case ws.OpPing:
		return c.write(ws.MustCompileFrame(ws.NewPongFrame(payload)))
	case ws.OpPong:
		return nil
	case ws.OpClose:
		_ = c.write(ws.MustCompileFrame(ws.NewCloseFrame(payload)))
		return io.EOF
	case ws.OpContinuation:
		c.frag = append(c.frag, payload...)
		if !h.Fin {
			return nil
		}
		payload, c.frag = c.frag, nil
		return s.message(c, c.fop, payload)
	}
	if !h.Fin {
		c.fop, c.frag = h.OpCode, append(c.frag[:0], payload...)
		return nil
	}
	return s.message(c, h.OpCode, payload)
}

func (s *server) message(c *client, op ws.OpCode, payload []byte) error {
	frame := ws.MustCompileFrame(ws.NewFrame(op, true, payload))
	if c.route == routeEcho {
		return c.write(frame)
	}
	s.mu.RLock()
	subs := make([]*client, 0, len(s.subs))
	for sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.RUnlock()
	for _, sub := range subs {
		_ = sub.write(frame) // a broken subscriber is dropped by its own read
	}
	return nil
}

func (s *server) upgrade(conn net.Conn) {
	var r route
	var bad bool
	u := ws.Upgrader{OnRequest: func(uri []byte) error {
		switch string(uri) {
		case "/echo":
			r = routeEcho
		case "/broadcast":
			r = routeBroadcast
		default:
			bad = true
			return ws.RejectConnectionError(ws.RejectionStatus(404))
		}
		return nil
	}}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := u.Upgrade(conn); err != nil || bad {
		_ = conn.Close()
		return
	}
	_ = conn.SetDeadline(time.Time{})
	raw, err := conn.(*net.TCPConn).SyscallConn()
	if err != nil {
		_ = conn.Close()
		return
	}
	var fd int
	_ = raw.Control(func(f uintptr) { fd = int(f) })
	c := &client{conn: conn, fd: fd, route: r}
	if err := s.register(c); err != nil {
		s.drop(c)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		log.Fatal(err)
	}
	s := &server{epfd: epfd, pool: newPool(256, 1<<14), byFd: map[int]*client{}, subs: map[*client]struct{}{}}
	go s.pollLoop()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("gobwas listening on %s", *listen)
	for {
		conn, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			time.Sleep(5 * time.Millisecond) // EMFILE and friends: back off
			continue
		}
		s.pool.schedule(func() { s.upgrade(conn) })
	}
}
