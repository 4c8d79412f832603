package browser

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// cutProxy is a TCP proxy between the browser and wsd. The page is loaded
// through it, so the page's /ws connections go through it too, and the test
// can cut them: cut resets every open connection (RST to the browser) and
// resets every new one until resume, as a dead network path would.
type cutProxy struct {
	ln       net.Listener
	upstream string // wsd's address; the same across a wsd restart

	mu    sync.Mutex
	down  bool
	conns map[*proxyConn]struct{}

	wg       sync.WaitGroup
	accepted atomic.Int64 // connections forwarded to wsd
	refused  atomic.Int64 // connections reset at accept (down, or wsd unreachable)
}

type proxyConn struct {
	client, server net.Conn
	once           sync.Once
}

// close ends both sides. reset sends an RST to the browser instead of a FIN,
// so the page sees the connection die at once (WebSocket close 1006).
func (pc *proxyConn) close(reset bool) {
	pc.once.Do(func() {
		if reset {
			resetConn(pc.client)
		} else {
			pc.client.Close()
		}
		pc.server.Close()
	})
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	c.Close()
}

func startProxy(upstream string) (*cutProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &cutProxy{ln: ln, upstream: upstream, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			p.refused.Add(1)
			resetConn(c)
			continue
		}
		p.wg.Add(1)
		go p.handle(c)
	}
}

func (p *cutProxy) handle(c net.Conn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.upstream, 2*time.Second)
	if err != nil { // wsd is down (restart): the browser sees a refused connection
		p.refused.Add(1)
		resetConn(c)
		return
	}
	pc := &proxyConn{client: c, server: s}
	p.mu.Lock()
	if p.down { // cut while dialing
		p.mu.Unlock()
		p.refused.Add(1)
		pc.close(true)
		return
	}
	p.conns[pc] = struct{}{}
	p.mu.Unlock()
	p.accepted.Add(1)

	var copies sync.WaitGroup
	copies.Add(2)
	pipe := func(dst, src net.Conn) {
		defer copies.Done()
		_, _ = io.Copy(dst, src)
		pc.close(false)
	}
	go pipe(s, c)
	go pipe(c, s)
	copies.Wait()
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

// cut resets every open connection and refuses new ones until resume. It
// returns how many connections it cut.
func (p *cutProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	n := len(p.conns)
	for pc := range p.conns {
		pc.close(true)
	}
	return n
}

func (p *cutProxy) resume() {
	p.mu.Lock()
	p.down = false
	p.mu.Unlock()
}

// close stops accepting, cuts what is open and waits for every goroutine.
func (p *cutProxy) close() {
	p.ln.Close()
	p.cut()
	p.wg.Wait()
}
