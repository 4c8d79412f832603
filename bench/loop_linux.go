//go:build linux

package bench

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/wsdhq/wsd/codec"
	"golang.org/x/sys/unix"
)

type connState uint8

const (
	stConnecting connState = iota + 1
	stHandshake
	stOpen
	stClosing
	stClosed
	stWaiting // storm: between connections, until c.next
)

const (
	roleSub uint8 = iota
	rolePub
)

const (
	handshakeTimeout = 10 * time.Second
	closeGrace       = time.Second
	maxClientQueue   = 64 << 20 // bytes a conn may have unsent before we call it stuck
	maxInflight      = 1 << 16  // echo messages a conn may have unanswered
	maxInflate       = 64 << 20
	sweepEvery       = 100 * time.Millisecond
)

// conn is one client connection, owned by one loop. It holds no buffer
// while idle: in, out and msg are only non-empty while bytes are pending.
type conn struct {
	fd      int
	state   connState
	role    uint8
	deflate bool
	epOut   bool
	settled bool  // counted in ctr.settled: ready, or gone
	ep      uint8 // index of the target (Config.URLs) this conn dials
	down    bool  // storm: closed and not up again yet
	hit     bool  // storm: closed at least once
	heapIdx int32 // index in the loop's timer heap, -1 if not scheduled
	id      uint64
	start   int64 // monotonic ns when the connect began
	next    int64 // next timer, monotonic ns
	closeAt int64
	readyBy int64 // /ws mode: the subscribe reply is due by then
	rd      codec.Reader
	key     [24]byte
	in      []byte // unparsed bytes left from earlier reads
	out     []byte // bytes the socket did not take yet
	msg     []byte // fragmented or compressed message being assembled
	msgOp   codec.OpCode
	msgZ    bool
	seq     uint64  // next sequence number to send
	ack     uint64  // next sequence number expected
	fly     []int64 // echo: intended send times of unanswered messages
	flyHead int
	// Storm only.
	fails  uint16 // failed attempts since the client was last up
	hintAt int64  // the server's hint: attempts before it are early (0: none)
	downAt int64  // when the client's last upgraded conn ended
}

// loop is one epoll instance with the connections it owns. Everything in it
// is touched only by its own goroutine, except ctr (atomics) and evfd.
type loop struct {
	w    *worker
	id   int
	epfd int
	evfd int

	byFd []*conn
	all  []*conn
	live int // conns not yet closed

	rbuf, wbuf, zbuf, gbuf, ibuf []byte
	timers                       timerHeap
	hist                         *Hist // message (or ping) latency, while measuring
	up                           *Hist // upgrade latency
	ctr                          liveCounters
	reasons                      map[string]uint64
	rng                          *rand.Rand
	hs                           []codec.ClientHandshake // one per target
	storm                        *stormPart              // storm only
	end                          connEnd                 // storm: how the conn being closed ended

	phase     int32
	measuring bool

	toOpen, opened      int
	pending, maxPending int
	interval, nextOpen  int64
	nextSweep           int64
	firstStart, lastUp  int64 // wall-clock ns

	// Broadcast over several URLs: per subscriber target, the latency of
	// its deliveries (while measuring) and its subscribers at traffic start.
	epHist []*Hist
	epSubs []int64

	pubPending bool // this loop must open the publisher first
	pub        *conn
	pubOut     []pubMsg
}

type pubMsg struct {
	seq uint64
	at  int64
}

func newLoop(w *worker, id, conns, maxPending int, rate float64) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	l := &loop{
		w: w, id: id, epfd: epfd, evfd: evfd,
		rbuf: make([]byte, 256<<10), hist: NewHist(), up: NewHist(),
		reasons: map[string]uint64{}, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(id))),
		toOpen: conns, maxPending: max(1, maxPending), phase: phConnect,
	}
	for i := range w.targets {
		l.hs = append(l.hs, clientHandshake(&w.targets[i], w.cfg.Deflate))
	}
	if w.cfg.Scenario == ScenarioStorm {
		l.storm = newStormPart()
	}
	if w.spread > 1 {
		l.epSubs = make([]int64, w.spread)
		for range w.spread {
			l.epHist = append(l.epHist, NewHist())
		}
	}
	if rate > 0 {
		l.interval = int64(float64(time.Second) / rate)
	}
	return l, nil
}

// wake interrupts the loop's epoll_wait. Safe from any goroutine.
func (l *loop) wake() {
	var one = [8]byte{1}
	_, _ = unix.Write(l.evfd, one[:])
}

func (l *loop) traffic() bool { return l.phase == phTraffic || l.phase == phMeasure }

func (l *loop) run() {
	defer l.w.wg.Done()
	defer unix.Close(l.evfd)
	defer unix.Close(l.epfd)
	evs := make([]unix.EpollEvent, 512)
	for {
		now := l.w.now()
		if p := l.w.phase.Load(); p != l.phase {
			l.enterPhase(p, now)
		}
		if l.phase >= phClose && l.live == 0 {
			return
		}
		l.openConns(now)
		l.fireTimers(now)
		if l.pub != nil {
			l.pubPump(now)
		}
		if now >= l.nextSweep {
			l.sweep(now)
			l.nextSweep = now + int64(sweepEvery)
		}
		n, err := unix.EpollWait(l.epfd, evs, l.waitMs(l.w.now()))
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.reason("epoll_wait: " + err.Error())
			return
		}
		for _, ev := range evs[:n] {
			fd := int(ev.Fd)
			if fd == l.evfd {
				var b [8]byte
				_, _ = unix.Read(l.evfd, b[:])
				continue
			}
			if fd < len(l.byFd) {
				if c := l.byFd[fd]; c != nil {
					l.handle(c, ev.Events)
				}
			}
		}
	}
}

func (l *loop) waitMs(now int64) int {
	next := l.nextSweep
	if l.timers.Len() > 0 && l.timers.min().next < next {
		next = l.timers.min().next
	}
	if l.toOpen > 0 && l.pending < l.maxPending && l.phase == phConnect && l.nextOpen < next {
		next = l.nextOpen
	}
	d := next - now
	if d <= 0 {
		return 0
	}
	return int((d + int64(time.Millisecond) - 1) / int64(time.Millisecond))
}

func (l *loop) enterPhase(p int32, now int64) {
	for l.phase < p {
		l.phase++
		switch l.phase {
		case phTraffic:
			l.w.scen.begin(l, now)
		case phMeasure:
			l.measuring = true
		case phClose:
			l.toOpen = 0
			for _, c := range l.all {
				switch c.state {
				case stConnecting, stHandshake:
					l.pending--
					l.closeFd(c)
				case stWaiting:
					l.timers.remove(c)
					c.state = stClosed
					l.live--
				case stOpen:
					l.sendControl(c, codec.OpClose, []byte{0x03, 0xe8}) // 1000
					if c.state == stOpen {
						c.state = stClosing
						c.closeAt = now + int64(closeGrace)
					}
				}
			}
		}
	}
}

func (l *loop) reason(r string) {
	l.reasons[r]++
	l.ctr.errors.Add(1)
}

// openConns starts connections within the rate and concurrency limits.
func (l *loop) openConns(now int64) {
	for l.toOpen > 0 && l.pending < l.maxPending && l.phase == phConnect {
		if l.interval > 0 {
			if now < l.nextOpen {
				return
			}
			l.nextOpen += l.interval
			if l.nextOpen < now-int64(time.Second) {
				l.nextOpen = now
			}
		}
		l.openOne(now)
	}
}

func (l *loop) openOne(now int64) {
	w := l.w
	id := uint64(w.idBase + l.id + l.opened*len(w.loops))
	l.toOpen--
	l.opened++
	l.ctr.attempts.Add(1)
	if l.firstStart == 0 {
		l.firstStart = time.Now().UnixNano()
	}
	c := &conn{id: id, heapIdx: -1}
	if l.pubPending {
		l.pubPending = false
		c.role = rolePub
		l.pub = c
		c.ep = w.pubEP
	} else if w.cfg.Scenario == ScenarioBroadcast {
		c.ep = w.subscriberTarget()
	}
	if why := l.dial(c, now); why != "" {
		l.ctr.failed.Add(1)
		l.ctr.settled.Add(1)
		l.reason(why)
		return
	}
	l.all = append(l.all, c)
	l.live++
}

// dial starts c's connect to its target, from its source address. It
// returns why it failed at once, or "" when the connect is under way.
func (l *loop) dial(c *conn, now int64) string {
	w := l.w
	var src netip.Addr
	if len(w.srcs) > 0 {
		src = w.srcs[c.id%uint64(len(w.srcs))]
	}
	fd, err := dialNonblock(w.targets[c.ep].Addr, src)
	if err != nil {
		return errReason("connect", err)
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLOUT, Fd: int32(fd)}); err != nil {
		closeAbort(fd)
		return errReason("epoll", err)
	}
	c.fd, c.state, c.start, c.epOut = fd, stConnecting, now, false
	c.rd = codec.Reader{Client: true}
	for fd >= len(l.byFd) {
		l.byFd = append(l.byFd, make([]*conn, len(l.byFd)+1024)...)
	}
	l.byFd[fd] = c
	l.pending++
	return ""
}

func (l *loop) handle(c *conn, events uint32) {
	if c.state == stConnecting {
		if err := connectError(c.fd); err != nil {
			l.failConn(c, errReason("connect", err))
			return
		}
		if events&unix.EPOLLOUT == 0 {
			return
		}
		var raw [16]byte
		for i := 0; i < 16; i += 8 {
			v := l.rng.Uint64()
			for j := 0; j < 8; j++ {
				raw[i+j] = byte(v >> (8 * j))
			}
		}
		codec.AppendKey(c.key[:0], &raw)
		c.state = stHandshake
		if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(c.fd)}); err != nil {
			l.failConn(c, errReason("epoll", err))
			return
		}
		if l.w.cfg.Mode == ModeSSE {
			l.wbuf = appendSSERequest(l.wbuf[:0], &l.w.targets[c.ep])
		} else {
			l.wbuf = l.hs[c.ep].AppendRequest(l.wbuf[:0], string(c.key[:]))
		}
		l.write(c, l.wbuf)
		return
	}
	if events&unix.EPOLLOUT != 0 {
		l.flush(c)
		if c.state >= stClosed {
			return
		}
	}
	if events&(unix.EPOLLIN|unix.EPOLLERR|unix.EPOLLHUP|unix.EPOLLRDHUP) != 0 {
		l.readable(c)
	}
}

func (l *loop) readable(c *conn) {
	for range 8 {
		var dst []byte
		own := len(c.in) > 0
		if own {
			if cap(c.in)-len(c.in) < 16<<10 {
				grown := make([]byte, len(c.in), 2*cap(c.in)+64<<10)
				copy(grown, c.in)
				c.in = grown
			}
			dst = c.in[len(c.in):cap(c.in)]
		} else {
			dst = l.rbuf
		}
		n, err := unix.Read(c.fd, dst)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.lost(c, errReason("read", err))
			return
		}
		if n == 0 {
			l.lost(c, "read: server closed the connection (EOF)")
			return
		}
		var data []byte
		if own {
			c.in = c.in[:len(c.in)+n]
			data = c.in
		} else {
			data = l.rbuf[:n]
		}
		if !l.process(c, data) || n < len(dst) {
			return
		}
	}
}

// process parses data (the conn's pending bytes plus what was just read).
// It returns false once the conn is closed.
func (l *loop) process(c *conn, p []byte) bool {
	now := l.w.now()
	if l.w.cfg.Mode == ModeSSE {
		return l.processSSE(c, p, now)
	}
	if c.state == stHandshake {
		resp, end, err := l.hs[c.ep].ReadResponse(p, string(c.key[:]))
		if errors.Is(err, codec.ErrNeedMore) {
			c.in = append(c.in[:0], p...)
			return true
		}
		if err != nil {
			if resp != nil && l.storm != nil {
				l.end = connEnd{status: resp.Status, retryAfter: resp.Get("Retry-After")}
			}
			l.failConn(c, handshakeFailure(err))
			return false
		}
		p = p[end:]
		c.deflate = resp.Deflate
		c.rd.Deflate = resp.Deflate
		l.upgraded(c, now)
	}
	for len(p) > 0 {
		f, n, err := c.rd.Next(p)
		if err != nil {
			l.lost(c, "protocol: "+err.Error())
			return false
		}
		if n == 0 {
			break
		}
		p = p[n:]
		if !l.frame(c, f, now) {
			return false
		}
	}
	if len(p) == 0 {
		if cap(c.in) > 64<<10 {
			c.in = nil
		} else {
			c.in = c.in[:0]
		}
	} else {
		c.in = append(c.in[:0], p...) // memmove: p may alias c.in
	}
	return true
}

// processSSE reads a stream's head, then counts and drops its body.
func (l *loop) processSSE(c *conn, p []byte, now int64) bool {
	if c.state == stHandshake {
		end, err := readSSEHead(p)
		if errors.Is(err, codec.ErrNeedMore) {
			c.in = append(c.in[:0], p...)
			return true
		}
		if err != nil {
			l.failConn(c, handshakeFailure(err))
			return false
		}
		p = p[end:]
		l.upgraded(c, now)
	}
	if len(p) > 0 {
		l.ctr.recv.Add(1) // events and keep-alive comments, by read
	}
	c.in = c.in[:0]
	return true
}

func (l *loop) upgraded(c *conn, now int64) {
	c.state = stOpen
	l.pending--
	l.ctr.up.Add(1)
	l.ctr.open.Add(1)
	l.up.Record(now - c.start)
	l.lastUp = time.Now().UnixNano()
	switch {
	case c.down:
		l.back(c, now)
	case l.storm != nil && !c.hit:
		l.ctr.stormClients.Add(1) // a first upgrade
	}
	if o, ok := l.w.scen.(opener); ok && !o.opened(l, c, now) {
		c.readyBy = now + int64(handshakeTimeout)
		return
	}
	l.settle(c)
}

// opener is a scenario that has something to do on each new connection
// before it counts as ready (the /ws mode's subscribe).
type opener interface {
	// opened runs right after the upgrade; false: c is not ready yet, and
	// the scenario calls l.settle(c) once it is.
	opened(l *loop, c *conn, now int64) bool
}

// settle counts c as ready or gone, once.
func (l *loop) settle(c *conn) {
	if !c.settled {
		c.settled = true
		l.ctr.settled.Add(1)
	}
}

func (l *loop) frame(c *conn, f codec.Frame, now int64) bool {
	switch f.Op {
	case codec.OpPing:
		l.sendControl(c, codec.OpPong, f.Payload)
		return c.state < stClosed
	case codec.OpPong:
		if t, ok := pongTime(f.Payload); ok {
			l.ctr.pongs.Add(1)
			if l.measuring {
				l.hist.Record(now - t)
			}
		}
		return true
	case codec.OpClose:
		if c.state == stClosing {
			l.finish(c)
			return false
		}
		code, why, _ := codec.ParseClose(f.Payload)
		if l.storm != nil {
			l.end = connEnd{frame: true, code: code, reason: string(why)}
		}
		l.sendControl(c, codec.OpClose, f.Payload[:min(len(f.Payload), 2)])
		if c.role == rolePub && code == 1008 && string(why) == "rate limit exceeded" {
			l.lost(c, `server closed the publisher with 1008 "rate limit exceeded": start wsd with --rate-limit -1`)
		} else if len(why) > 0 {
			l.lost(c, fmt.Sprintf("server closed with %d %q", code, why))
		} else {
			l.lost(c, fmt.Sprintf("server closed with %d", code))
		}
		return false
	}
	if f.First && f.Fin && !f.Compressed {
		return l.w.scen.message(l, c, f.Op, f.Payload, now)
	}
	if f.First {
		c.msg, c.msgOp, c.msgZ = c.msg[:0], f.Op, f.Compressed
	}
	c.msg = append(c.msg, f.Payload...)
	if !f.Fin {
		return true
	}
	payload := c.msg
	if c.msgZ {
		var err error
		l.ibuf, err = l.w.flate.Inflate(l.ibuf[:0], c.msg, maxInflate, nil)
		if err != nil {
			l.lost(c, "inflate: "+err.Error())
			return false
		}
		payload = l.ibuf
	}
	ok := l.w.scen.message(l, c, c.msgOp, payload, now)
	if cap(c.msg) > 64<<10 {
		c.msg = nil
	} else if c.msg != nil {
		c.msg = c.msg[:0]
	}
	return ok
}

func (l *loop) maskKey() [4]byte {
	v := l.rng.Uint32()
	return [4]byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// sendData sends one whole message, compressed when deflate was agreed.
func (l *loop) sendData(c *conn, op codec.OpCode, payload []byte) {
	if c.deflate {
		l.zbuf = l.w.flate.Deflate(l.zbuf[:0], payload, nil)
		l.wbuf = codec.AppendMaskedFrame(l.wbuf[:0], op, true, true, l.maskKey(), l.zbuf)
	} else {
		l.wbuf = codec.AppendMaskedFrame(l.wbuf[:0], op, true, false, l.maskKey(), payload)
	}
	l.write(c, l.wbuf)
}

func (l *loop) sendControl(c *conn, op codec.OpCode, payload []byte) {
	var b [codec.MaxHeaderLen + codec.MaxControlPayload]byte
	l.write(c, codec.AppendMaskedFrame(b[:0], op, true, false, l.maskKey(), payload))
}

func (l *loop) write(c *conn, b []byte) {
	if c.state >= stClosed {
		return
	}
	if len(c.out) > 0 {
		if len(c.out)+len(b) > maxClientQueue {
			l.lost(c, "write: server not reading (client queue over 64 MiB)")
			return
		}
		c.out = append(c.out, b...)
		return
	}
	n, err := unix.Write(c.fd, b)
	if err != nil {
		if !errors.Is(err, unix.EAGAIN) {
			l.lost(c, errReason("write", err))
			return
		}
		n = 0
	}
	if n < len(b) {
		c.out = append(c.out, b[n:]...)
		l.wantOut(c, true)
	}
}

func (l *loop) flush(c *conn) {
	for len(c.out) > 0 {
		n, err := unix.Write(c.fd, c.out)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) {
				return
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			l.lost(c, errReason("write", err))
			return
		}
		c.out = c.out[n:]
	}
	c.out = nil
	l.wantOut(c, false)
}

func (l *loop) wantOut(c *conn, on bool) {
	if c.epOut == on || c.state >= stClosed || c.state == stConnecting {
		return
	}
	c.epOut = on
	ev := uint32(unix.EPOLLIN | unix.EPOLLRDHUP)
	if on {
		ev |= unix.EPOLLOUT
	}
	_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, c.fd, &unix.EpollEvent{Events: ev, Fd: int32(c.fd)})
}

// failConn ends a connection that never upgraded.
func (l *loop) failConn(c *conn, why string) {
	if c.state >= stClosed {
		return
	}
	l.pending--
	l.ctr.failed.Add(1)
	l.reason(why)
	l.closeFd(c)
}

// lost ends a connection that broke or was closed by the server. Once we
// are closing everything, that is expected and not an error.
func (l *loop) lost(c *conn, why string) {
	switch c.state {
	case stClosed, stWaiting:
		return
	case stConnecting, stHandshake:
		l.failConn(c, why)
		return
	}
	switch {
	case l.storming():
		if !l.end.frame {
			l.end.lost = why // no close frame: EOF, reset, protocol error
		}
	case l.phase < phClose:
		l.ctr.dropped.Add(1)
		l.reason(why)
	}
	l.finish(c)
}

// finish closes an upgraded connection.
func (l *loop) finish(c *conn) {
	if c.state == stOpen || c.state == stClosing {
		l.ctr.open.Add(-1)
	}
	l.closeFd(c)
}

func (l *loop) closeFd(c *conn) {
	if c.state == stClosed || c.state == stWaiting {
		return
	}
	was := c.state
	c.state = stClosed
	l.settle(c)
	l.byFd[c.fd] = nil
	closeAbort(c.fd)
	l.live--
	if c.heapIdx >= 0 {
		l.timers.remove(c)
	}
	c.in, c.out, c.msg, c.fly = nil, nil, nil, nil
	c.fd = -1
	if l.storming() {
		l.stormGone(c, was == stOpen || was == stClosing, l.w.now())
	}
	l.end = connEnd{}
}

// sweep times out handshakes and unanswered closes, and forgets closed conns.
func (l *loop) sweep(now int64) {
	keep := l.all[:0]
	for _, c := range l.all {
		switch c.state {
		case stConnecting, stHandshake:
			if now-c.start > int64(handshakeTimeout) {
				l.failConn(c, "handshake: timeout")
			}
		case stOpen:
			if !c.settled && c.readyBy > 0 && now > c.readyBy {
				l.lost(c, "subscribe: no reply within 10s")
			}
		case stClosing:
			if now > c.closeAt {
				l.finish(c)
			}
		}
		if c.state != stClosed || c == l.pub {
			keep = append(keep, c)
		}
	}
	clear(l.all[len(keep):])
	l.all = keep
}

func (l *loop) fireTimers(now int64) {
	for l.timers.Len() > 0 {
		c := l.timers.min()
		if c.next > now {
			return
		}
		l.timers.pop()
		l.w.scen.timer(l, c, now)
	}
}

// schedule (re)arms c's timer at c.next.
func (l *loop) schedule(c *conn) {
	if c.state == stClosed {
		return
	}
	if c.heapIdx >= 0 {
		l.timers.fix(c)
	} else {
		l.timers.push(c)
	}
}
