package server

import (
	"bytes"
	"compress/flate"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// The abuse tests: each hostile client is refused with the right status or
// close code, counted under its cause, and a probe client echoing through
// the attack is served throughout. Counts are scaled for make test; with
// WSD_ABUSE_FULL=1 (make soak-abuse) they run at full size.

func abuseFull() bool { return os.Getenv("WSD_ABUSE_FULL") == "1" }

// scale picks the count for this run.
func scale(quick, full int) int {
	if abuseFull() {
		return full
	}
	return quick
}

// abuseServer serves /echo with opts (short timeouts by default).
func abuseServer(t *testing.T, opts Options) (*Server[struct{}], string) {
	t.Helper()
	if opts.HandshakeTimeout == 0 {
		opts.HandshakeTimeout = 2 * time.Second
	}
	if opts.MessageTimeout == 0 {
		opts.MessageTimeout = 2 * time.Second
	}
	srv := New[struct{}](opts)
	srv.Handle("/echo", echo[struct{}](), Inline())
	return srv, start(t, srv)
}

// probe is a legitimate client echoing 1 KiB messages, one at a time,
// while an attack runs.
type probe struct {
	stop chan struct{}
	done chan struct{}
	lat  []time.Duration
	err  error
}

func startProbe(t *testing.T, addr string) *probe {
	t.Helper()
	c, err := wstest.Dial(addr, "/echo")
	if err != nil {
		t.Fatalf("probe dial: %v", err)
	}
	c.Timeout = 10 * time.Second
	p := &probe{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		defer c.Close()
		msg := bytes.Repeat([]byte("p"), 1024)
		for i := 0; i < 1_000_000; i++ {
			select {
			case <-p.stop:
				return
			default:
			}
			t0 := time.Now()
			if err := c.WriteMessage(codec.OpBinary, msg); err != nil {
				p.err = fmt.Errorf("echo %d: write: %w", i, err)
				return
			}
			f, err := c.ReadData()
			if err != nil || !bytes.Equal(f.Payload, msg) {
				p.err = fmt.Errorf("echo %d: %d bytes back, err %v", i, len(f.Payload), err)
				return
			}
			p.lat = append(p.lat, time.Since(t0))
			// About 200 echoes a second: a steady client, not a second
			// attacker competing for the 2 cores.
			select {
			case <-p.stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { p.finish(t) })
	return p
}

// finish stops the probe and checks that every echo succeeded; it logs the
// p99 (reported, not asserted: the box is shared).
func (p *probe) finish(t *testing.T) {
	t.Helper()
	select {
	case <-p.stop:
		return
	default:
	}
	close(p.stop)
	recv(t, p.done, 20*time.Second, "the probe to stop")
	if p.err != nil {
		t.Fatalf("probe client not served during the attack: %v", p.err)
	}
	if len(p.lat) == 0 {
		t.Fatal("probe client made no echo during the attack")
	}
	slices.Sort(p.lat)
	t.Logf("probe: %d echoes, all served; p50 %v p99 %v max %v", len(p.lat),
		p.lat[len(p.lat)/2], p.lat[len(p.lat)*99/100], p.lat[len(p.lat)-1])
}

// parallel runs f(i) for i < n on up to workers goroutines.
func parallel(n, workers int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		}()
	}
	wg.Wait()
}

// heapInUse is the live heap after a GC: the memory bound the tests report.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// Many clients trickle their request a byte a second. A bound on pending
// handshakes turns away the excess at accept (503), and the deadline counts
// from accept, so trickling does not extend it.
func TestAbuseTricklingHandshakes(t *testing.T) {
	n := scale(2000, 9000) // 9,000 × 2 descriptors stay under a 20,000 file limit
	capHS := n / 2
	const hsTimeout = 2 * time.Second
	srv, addr := abuseServer(t, Options{MaxPendingHandshakes: capHS, HandshakeTimeout: hsTimeout})
	p := startProbe(t, addr)

	req := []byte("GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
	// All connect first, then all trickle at once: the cap is about
	// conns pending together.
	conns := make([]net.Conn, n)
	var dialErrs atomic.Int64
	parallel(n, 64, func(i int) {
		src := fmt.Sprintf("127.0.%d.%d", 1+i/250, 2+i%250)
		d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		conn, err := d.Dial("tcp", addr)
		if err != nil {
			dialErrs.Add(1)
			return
		}
		conns[i] = conn
	})
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	if dialErrs.Load() != 0 {
		t.Fatalf("%d dials failed", dialErrs.Load())
	}
	var refused, timedOut, other atomic.Int64
	var mu sync.Mutex
	var longest time.Duration
	t0 := time.Now()
	parallel(n, n, func(i int) {
		got, end := trickle(conns[i], req, hsTimeout+8*time.Second)
		mu.Lock()
		longest = max(longest, time.Since(t0))
		mu.Unlock()
		switch {
		case strings.HasPrefix(got, "HTTP/1.1 503"):
			refused.Add(1)
		case got == "" && end:
			timedOut.Add(1)
		default:
			other.Add(1)
		}
	})
	p.finish(t)
	st := srv.Stats()
	t.Logf("%d trickling handshakes: %d refused 503 at accept, %d dropped at the deadline, %d other; longest held %v; closes handshake_cap=%d handshake_timeout=%d",
		n, refused.Load(), timedOut.Load(), other.Load(), longest,
		st.Closes["handshake_cap"], st.Closes["handshake_timeout"])
	if other.Load() != 0 {
		t.Fatalf("%d conns neither refused nor timed out", other.Load())
	}
	if refused.Load() == 0 || st.Closes["handshake_cap"] != uint64(refused.Load()) {
		t.Fatalf("over the pending cap %d: %d refused, handshake_cap=%d", capHS, refused.Load(), st.Closes["handshake_cap"])
	}
	if st.Closes["handshake_timeout"] != uint64(timedOut.Load()) || timedOut.Load() == 0 {
		t.Fatalf("timed out %d, counted %d", timedOut.Load(), st.Closes["handshake_timeout"])
	}
	// The deadline runs from accept, not from the last byte: 1 s sweep
	// granularity and a loaded box on top.
	if longest > hsTimeout+5*time.Second {
		t.Fatalf("a trickling handshake was held %v (timeout %v)", longest, hsTimeout)
	}
	if st.Pending != 0 {
		t.Fatalf("%d handshakes still counted pending after the attack", st.Pending)
	}
	// The place is back: a fresh client upgrades.
	c, err := wstest.Dial(addr, "/echo")
	if err != nil {
		t.Fatalf("upgrade after the attack: %v", err)
	}
	c.Close()
}

// trickle writes req one byte a second until the server answers or closes,
// or limit passes. It returns what the server sent and whether it closed.
func trickle(conn net.Conn, req []byte, limit time.Duration) (got string, closed bool) {
	deadline := time.Now().Add(limit)
	var buf [512]byte
	for i := 0; time.Now().Before(deadline); i++ {
		if _, err := conn.Write(req[i%len(req) : i%len(req)+1]); err != nil {
			// Reset by a server that answered and closed: the answer may
			// still wait in our buffer.
			_ = conn.SetReadDeadline(time.Now().Add(time.Second))
			k, _ := conn.Read(buf[:])
			return got + string(buf[:k]), true
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		k, err := conn.Read(buf[:])
		got += string(buf[:k])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if got != "" {
				return got, false
			}
			continue
		}
		if err != nil {
			return got, true
		}
		if k > 0 {
			// An answer: read to the close.
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			for {
				k, err := conn.Read(buf[:])
				got += string(buf[:k])
				if err != nil {
					return got, !(errors.As(err, &ne) && ne.Timeout())
				}
			}
		}
	}
	return got, false
}

// sendRaw writes p (ignoring a reset: the server may close first) and
// returns everything the server sends until it closes.
func sendRaw(t *testing.T, addr string, p []byte) string {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Errorf("dial: %v", err)
		return ""
	}
	defer conn.Close()
	go func() { _, _ = conn.Write(p) }()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var out []byte
	var buf [4096]byte
	for {
		k, err := conn.Read(buf[:])
		out = append(out, buf[:k]...)
		if err != nil {
			return string(out)
		}
	}
}

// A request head of 1 MiB is refused with 431 once it passes the 8 KiB
// limit, without being buffered whole.
func TestAbuseHugeHeaders(t *testing.T) {
	n := scale(50, 500)
	srv, addr := abuseServer(t, Options{})
	p := startProbe(t, addr)
	head := []byte("GET /echo HTTP/1.1\r\nHost: x\r\nX-Junk: ")
	huge := append(head, bytes.Repeat([]byte("a"), 1<<20)...)
	before := heapInUse()
	var bad atomic.Int64
	parallel(n, 32, func(int) {
		if got := sendRaw(t, addr, huge); !strings.HasPrefix(got, "HTTP/1.1 431") && got != "" {
			bad.Add(1)
		}
	})
	grew := int64(heapInUse()) - int64(before)
	p.finish(t)
	t.Logf("%d × 1 MiB heads: heap grew %d KiB", n, grew/1024)
	if bad.Load() != 0 {
		t.Fatalf("%d answers other than 431 or a close", bad.Load())
	}
	// Buffered whole, n heads would be n MiB; the bound is the 8 KiB
	// limit plus one read chunk (64 KiB) per conn at most.
	if grew > int64(n)<<20/2 {
		t.Fatalf("heap grew %d KiB for %d refused 1 MiB heads", grew/1024, n)
	}
	waitCloses(t, srv, map[string]uint64{"handshake_rejected": uint64(n)})
}

// Bytes that are not HTTP get 400 at once (the first line is judged before
// it ends).
func TestAbuseGarbage(t *testing.T) {
	n := scale(200, 2000)
	srv, addr := abuseServer(t, Options{})
	p := startProbe(t, addr)
	var bad atomic.Int64
	parallel(n, 32, func(i int) {
		junk := make([]byte, 512)
		_, _ = rand.Read(junk)
		if i%2 == 0 {
			junk[0] = 0x16 // a TLS ClientHello on the plain port
		}
		if got := sendRaw(t, addr, junk); !strings.HasPrefix(got, "HTTP/1.1 400") {
			bad.Add(1)
		}
	})
	p.finish(t)
	if bad.Load() != 0 {
		t.Fatalf("%d of %d garbage conns not answered 400", bad.Load(), n)
	}
	waitCloses(t, srv, map[string]uint64{"handshake_rejected": uint64(n)})
}

// frameHeader is a masked client frame header announcing length bytes.
func frameHeader(op codec.OpCode, fin bool, length uint64) []byte {
	b0 := byte(op)
	if fin {
		b0 |= 0x80
	}
	h := []byte{b0, 0x80 | 127}
	h = binary.BigEndian.AppendUint64(h, length)
	return append(h, 1, 2, 3, 4) // mask key
}

func dialEcho(t *testing.T, addr string) *wstest.Client {
	t.Helper()
	c, err := wstest.Dial(addr, "/echo")
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	c.Timeout = 10 * time.Second
	return c
}

// expectCloseCode fails unless c gets a close frame with code.
func expectCloseCode(t *testing.T, c *wstest.Client, code uint16, what string) string {
	t.Helper()
	got, reason, err := c.ExpectClose()
	if got != code {
		t.Errorf("%s: close %d %q (%v), want %d", what, got, reason, err, code)
	}
	return reason
}

// A frame announcing 64 MiB is refused with 1009 from its header alone.
func TestAbuseHugeFrameAnnounced(t *testing.T) {
	n := scale(100, 1000)
	srv, addr := abuseServer(t, Options{})
	p := startProbe(t, addr)
	before := heapInUse()
	parallel(n, 32, func(int) {
		c := dialEcho(t, addr)
		defer c.Close()
		_ = c.WriteRaw(append(frameHeader(codec.OpBinary, true, 64<<20), make([]byte, 4096)...))
		expectCloseCode(t, c, codec.CloseTooBig, "64 MiB frame")
	})
	grew := int64(heapInUse()) - int64(before)
	p.finish(t)
	t.Logf("%d × 64 MiB announced: heap grew %d KiB", n, grew/1024)
	waitCloses(t, srv, map[string]uint64{"too_big": uint64(n)})
}

// A client that floods pings and never reads its pongs is closed with
// 1008 once they pile up past the outbound cap, instead of growing the
// server's buffer without bound.
func TestAbusePingFlood(t *testing.T) {
	n := scale(4, 40)
	const outCap = 256 << 10
	// The close frame waits behind megabytes of pongs the flooder reads
	// only once it stops: give it time.
	srv, addr := abuseServer(t, Options{MaxOutboundBytes: outCap, CloseTimeout: 30 * time.Second})
	p := startProbe(t, addr)
	ping := codec.AppendFrame(nil, codec.OpPing, true, bytes.Repeat([]byte("x"), 125))
	burst := bytes.Repeat(mask(ping), 512) // 512 pings per write
	parallel(n, n, func(int) {
		c := dialEcho(t, addr)
		defer c.Close()
		// 16 MiB of pings: their pongs are well past what the kernel
		// buffers hold (4 MiB send buffer here) plus the cap. The
		// flooder reads only once it is done.
		t0 := time.Now()
		sent := 0
		for ; sent < 16<<20; sent += len(burst) {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := c.Conn.Write(burst); err != nil {
				break // the server shut its side
			}
		}
		t.Logf("flooder: %d KiB of pings in %v", sent>>10, time.Since(t0))
		reason := expectCloseCode(t, c, codec.ClosePolicyViolation, "ping flood")
		if reason != "ping flood" {
			t.Errorf("ping flood closed with reason %q", reason)
		}
	})
	p.finish(t)
	waitCloses(t, srv, map[string]uint64{"ping_flood": uint64(n)})
}

// mask turns a server-side frame (unmasked) into a client frame with a
// zero mask key, which leaves the payload as is.
func mask(frame []byte) []byte {
	out := []byte{frame[0], frame[1] | 0x80}
	hl := 2
	switch frame[1] & 0x7f {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	out = append(out, frame[2:hl]...)
	out = append(out, 0, 0, 0, 0)
	return append(out, frame[hl:]...)
}

// 1-byte fragments at line rate end at the message limit with 1009; a
// message or a frame that never finishes ends at MessageTimeout with 1008,
// however slowly its bytes keep coming.
func TestAbuseFragmentsAndUnfinishedMessages(t *testing.T) {
	n := scale(20, 200)
	const limit = 64 << 10
	srv, addr := abuseServer(t, Options{MaxMessageBytes: limit})
	p := startProbe(t, addr)
	frag := func(first bool) []byte {
		op := codec.OpContinuation
		if first {
			op = codec.OpBinary
		}
		return mask(codec.AppendFrame(nil, op, false, []byte{'z'}))
	}
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { // line rate: bounded by size
		defer wg.Done()
		parallel(n, n, func(int) {
			c := dialEcho(t, addr)
			defer c.Close()
			flood := append(frag(true), bytes.Repeat(frag(false), limit+1)...)
			go func() { _ = c.WriteRaw(flood) }()
			expectCloseCode(t, c, codec.CloseTooBig, "1-byte fragment flood")
		})
	}()
	go func() { // fragments trickled forever: bounded by time
		defer wg.Done()
		parallel(n, n, func(int) {
			c := dialEcho(t, addr)
			defer c.Close()
			_ = c.WriteRaw(frag(true))
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for range 100 {
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
						if c.WriteRaw(frag(false)) != nil {
							return
						}
					}
				}
			}()
			expectCloseCode(t, c, codec.ClosePolicyViolation, "trickled fragments")
		})
	}()
	go func() { // one frame cut short
		defer wg.Done()
		parallel(n, n, func(int) {
			c := dialEcho(t, addr)
			defer c.Close()
			_ = c.WriteRaw(append(frameHeader(codec.OpBinary, true, 1000), make([]byte, 10)...))
			expectCloseCode(t, c, codec.ClosePolicyViolation, "unfinished frame")
		})
	}()
	wg.Wait()
	p.finish(t)
	waitCloses(t, srv, map[string]uint64{"too_big": uint64(n), "message_timeout": uint64(2 * n)})
}

// waitCloses waits until the close counters reach want exactly: a conn the
// client saw closed is counted when the server's side closes, a moment
// later (a draining conn waits for the peer's FIN).
func waitCloses(t *testing.T, srv *Server[struct{}], want map[string]uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := srv.Stats()
		done, over := true, false
		for k, v := range want {
			done = done && st.Closes[k] == v
			over = over || st.Closes[k] > v
		}
		if done {
			t.Logf("closes by cause: %v", want)
			return
		}
		if over || time.Now().After(deadline) {
			got := map[string]uint64{}
			for k := range want {
				got[k] = st.Closes[k]
			}
			t.Fatalf("closes by cause %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond) // polling a counter, bounded by deadline
	}
}

// deflateBomb is a permessage-deflate payload of a few KiB that inflates
// to n zero bytes (raw DEFLATE without the trailing 00 00 ff ff).
func deflateBomb(t *testing.T, n int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(make([]byte, n))
	_ = w.Flush()
	return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
}

// Deflate bombs from many connections at once: each small compressed
// message that would inflate past MaxMessageBytes is closed with 1009,
// inflating at most the limit (on a worker, off the loop), while the
// probe keeps being served.
func TestAbuseDeflateBombs(t *testing.T) {
	n := scale(100, 1000)
	srv := New[struct{}](Options{HandshakeTimeout: 2 * time.Second, Compression: true, MaxMessageBytes: 1 << 20})
	srv.Handle("/echo", echo[struct{}]())
	addr := start(t, srv)
	p := startProbe(t, addr)
	bomb := deflateBomb(t, 64<<20)
	frame := codec.AppendMaskedFrame(nil, codec.OpBinary, true, true, [4]byte{1, 2, 3, 4}, bomb)
	before := heapInUse()
	parallel(n, 64, func(int) {
		c, err := wstest.Dial(addr, "/echo", "Sec-WebSocket-Extensions: permessage-deflate")
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer c.Close()
		c.Timeout = 20 * time.Second
		_ = c.WriteRaw(frame)
		expectCloseCode(t, c, codec.CloseTooBig, "deflate bomb")
	})
	grew := int64(heapInUse()) - int64(before)
	p.finish(t)
	t.Logf("%d deflate bombs of %d KiB (64 MiB inflated, limit 1 MiB): heap grew %d KiB", n, len(bomb)>>10, grew/1024)
	if grew > 256<<20 {
		t.Errorf("heap grew %d MiB for %d bombs", grew>>20, n)
	}
	waitCloses(t, srv, map[string]uint64{"too_big": uint64(n)})
}
