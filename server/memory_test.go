package server

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// memAttack is the shape of the memory-budget attack: offenders each send
// perOffender bytes of one 16 MiB message, chunk bytes every period, while
// echoers echo 1 KiB. make test floods from 200 offenders (the budget is
// crossed within milliseconds); WSD_MEMORY_SOAK=1 is the attack as the
// memory budget is meant for: 2,000 offenders trickling 4 KiB every 50 ms
// (160 MB/s in all), or flooding with WSD_MEMORY_FLOOD=1 (64 KiB every
// 5 ms each: as fast as the box moves bytes).
type memAttack struct {
	offenders, perOffender, echoers, chunk int
	every                                  time.Duration
}

func memScale() memAttack {
	flood := memAttack{offenders: 200, perOffender: 1 << 20, echoers: 20, chunk: 64 << 10, every: 5 * time.Millisecond}
	if os.Getenv("WSD_MEMORY_SOAK") == "" {
		return flood
	}
	flood.offenders, flood.echoers = 2000, 100
	if os.Getenv("WSD_MEMORY_FLOOD") != "" {
		return flood
	}
	return memAttack{offenders: 2000, perOffender: 1 << 20, echoers: 100, chunk: 4 << 10, every: 50 * time.Millisecond}
}

// echoer sends 1 KiB messages and reads their echoes until stop, keeping
// each round trip's latency.
type echoer struct {
	c   *wstest.Client
	lat []time.Duration
	err error
}

func (e *echoer) run(stop <-chan struct{}, max int) {
	msg := bytes.Repeat([]byte{'e'}, 1024)
	for i := 0; i < max; i++ {
		select {
		case <-stop:
			return
		default:
		}
		t0 := time.Now()
		if e.err = e.c.WriteMessage(codec.OpBinary, msg); e.err != nil {
			return
		}
		f, err := e.c.ReadData()
		if err != nil || f.Op != codec.OpBinary || !bytes.Equal(f.Payload, msg) {
			e.err = errors.Join(err, errors.New("bad echo"))
			return
		}
		e.lat = append(e.lat, time.Since(t0))
	}
}

func p99(es []*echoer) time.Duration {
	var all []time.Duration
	for _, e := range es {
		all = append(all, e.lat...)
	}
	if len(all) == 0 {
		return 0
	}
	slices.Sort(all)
	return all[len(all)*99/100]
}

// runEchoers runs every echoer until stop (or max round trips each) and
// waits for them.
func runEchoers(es []*echoer, stop <-chan struct{}, max int) {
	var wg sync.WaitGroup
	for _, e := range es {
		e.lat = e.lat[:0]
		wg.Add(1)
		go func() { defer wg.Done(); e.run(stop, max) }()
	}
	wg.Wait()
}

// offender announces one huge binary frame; trickle then sends total
// bytes of it, records the close code the server sent, if any, and waits.
func offender(addr string) (*wstest.Client, error) {
	c, err := wstest.Dial(addr, "/echo")
	if err != nil {
		return nil, err
	}
	c.Timeout = 20 * time.Second
	hdr := codec.AppendHeader(nil, codec.OpBinary, true, false, 16<<20)
	hdr[1] |= 0x80
	hdr = append(hdr, 1, 2, 3, 4)
	if err := c.WriteRaw(hdr); err != nil {
		c.Conn.Close()
		return nil, err
	}
	return c, nil
}

// trickleMessage sends total bytes of a big message in chunks and records
// how the server closed the conn.
func trickleMessage(c *wstest.Client, total int, chunk []byte, every time.Duration, code *atomic.Uint32, done *sync.WaitGroup, trickled *atomic.Int64) {
	done.Add(2)
	go func() { // the reader: the close, or EOF at cleanup
		defer done.Done()
		if f, err := c.Read(); err == nil && f.Op == codec.OpClose {
			v, _, _ := codec.ParseClose(f.Payload)
			code.Store(uint32(v))
		}
	}()
	go func() { // the trickle: stops at the first refused write
		defer done.Done()
		defer trickled.Add(1)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for sent := 0; sent < total; sent += len(chunk) {
			if _, err := c.Conn.Write(chunk); err != nil {
				return
			}
			<-tick.C
		}
	}()
}

// attack is a set of offenders (see offender) trickling their messages.
type attack struct {
	codes    []atomic.Uint32 // the close code each got, 0: none yet
	trickled atomic.Int64    // trickles ended (sent it all, or refused)
	clients  sync.WaitGroup
}

// startAttack dials n offenders and has each trickle perOffender bytes,
// chunk bytes every period. Their conns close when the test ends.
func startAttack(t *testing.T, addr string, n, perOffender, chunk int, every time.Duration) *attack {
	a := &attack{codes: make([]atomic.Uint32, n)}
	offenders := make([]*wstest.Client, 0, n)
	t.Cleanup(func() {
		for _, c := range offenders {
			c.Conn.Close()
		}
		a.clients.Wait()
	})
	for i := range n {
		c, err := offender(addr)
		if err != nil {
			t.Fatalf("offender %d: %v", i, err)
		}
		offenders = append(offenders, c)
	}
	buf := make([]byte, chunk)
	for i, c := range offenders {
		trickleMessage(c, perOffender, buf, every, &a.codes[i], &a.clients, &a.trickled)
	}
	return a
}

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// Many connections each start a 16 MiB message and trickle it: the
// accounted memory stays under the budget, the largest holders are closed
// with 1009 and counted, upgrades get 503 while the budget is near full,
// and other connections keep being served.
func TestMemoryBudgetShedsInboundOffenders(t *testing.T) {
	const budget = 64 << 20
	at := memScale()
	nOff, perOff, nEcho := at.offenders, at.perOffender, at.echoers
	var extra atomic.Int64
	srv := New[struct{}](Options{MaxMemory: budget, ExtraMemory: extra.Load})
	srv.Handle("/echo", echo[struct{}]())
	addr := start(t, srv)

	echoers := make([]*echoer, nEcho)
	for i := range echoers {
		c, err := wstest.Dial(addr, "/echo")
		if err != nil {
			t.Fatal(err)
		}
		c.Timeout = 20 * time.Second
		t.Cleanup(func() { c.Conn.Close() })
		echoers[i] = &echoer{c: c}
	}
	runEchoers(echoers, nil, 100)
	quiet := p99(echoers)

	rss0 := rssBytes()
	a := startAttack(t, addr, nOff, perOff, at.chunk, at.every)
	// The echoers run through the whole attack: until every offender's
	// trickle ended (sent it all, or was closed).
	stop := make(chan struct{})
	attack := make(chan struct{})
	go func() { runEchoers(echoers, stop, 1<<30); close(attack) }()
	waitFor(t, 60*time.Second, "the offenders to be shed", func() bool {
		return srv.Stats().Closes["memory_shed"] > 0
	})
	waitFor(t, 60*time.Second, "the trickles to end", func() bool { return a.trickled.Load() == int64(nOff) })
	close(stop)
	<-attack
	st := srv.Stats()
	rss := rssBytes() - rss0
	for i, e := range echoers {
		if e.err != nil || len(e.lat) == 0 {
			t.Errorf("echoer %d during the attack: %d echoes, err %v", i, len(e.lat), e.err)
		}
	}
	if st.Memory.Peak > budget {
		t.Errorf("accounted memory peaked at %d bytes, over the %d budget", st.Memory.Peak, budget)
	}
	var got1009, other int
	for i := range a.codes {
		switch uint16(a.codes[i].Load()) {
		case 0:
		case codec.CloseTooBig:
			got1009++
		default:
			other++
		}
	}
	if got1009 == 0 || other != 0 {
		t.Errorf("offenders' close codes: %d got 1009, %d another code", got1009, other)
	}
	// A shed conn is counted at its OnClose, once it stopped draining.
	waitFor(t, 10*time.Second, "every 1009 to be counted", func() bool {
		return srv.Stats().Closes["memory_shed"] >= uint64(got1009)
	})
	st = srv.Stats()
	t.Logf("offenders %d × %d B, %d B every %v: shed %d (clients saw %d × 1009), peak accounted %.1f MiB of %d MiB, process RSS +%.1f MiB (clients included); echo p99 quiet %v, under attack %v",
		nOff, perOff, at.chunk, at.every, st.Closes["memory_shed"], got1009, float64(st.Memory.Peak)/(1<<20), budget>>20, float64(rss)/(1<<20), quiet, p99(echoers))

	// Near the budget (history at 95% of it), upgrades get 503 with
	// Retry-After, and the conns already open keep being served.
	extra.Store(budget * 95 / 100)
	waitFor(t, 10*time.Second, "the history to be polled", func() bool { return srv.Stats().Memory.Extra > 0 })
	_, err := wstest.Dial(addr, "/echo")
	var he *wstest.HTTPStatusError
	if !errors.As(err, &he) || he.Status != 503 || !strings.Contains(he.Head, "Retry-After:") {
		t.Fatalf("upgrade near the budget: %v, want 503 with Retry-After", err)
	}
	if n := srv.Stats().Closes["memory_refused"]; n == 0 {
		t.Errorf("memory_refused not counted")
	}
	runEchoers(echoers, nil, 10)
	for i, e := range echoers {
		if e.err != nil || len(e.lat) != 10 {
			t.Errorf("echoer %d near the budget: %d echoes, err %v", i, len(e.lat), e.err)
		}
	}
	extra.Store(0)
	waitFor(t, 10*time.Second, "upgrades to be accepted again", func() bool {
		c, err := wstest.Dial(addr, "/echo")
		if err == nil {
			c.Conn.Close()
		}
		return err == nil
	})
}

// Over the budget's high mark, the conn holding the most of an incomplete
// message is closed first, not the one whose read crossed the mark, and
// only as many as bring usage under the low mark.
func TestMemoryBudgetShedsLargestFirst(t *testing.T) {
	// High mark 14.4 MiB, low 12.8 MiB. A holder is accounted at its
	// buffer's capacity, the power of two at or above what it sent: 8, 4
	// and 4 MiB here.
	const budget = 16 << 20
	srv := New[struct{}](Options{MaxMemory: budget, Loops: 1})
	srv.Handle("/echo", echo[struct{}]())
	addr := start(t, srv)
	type holder struct {
		c          *wstest.Client
		announce   int
		sent, tail []byte
	}
	mk := func(announce, send int) *holder {
		c, err := wstest.Dial(addr, "/echo")
		if err != nil {
			t.Fatal(err)
		}
		c.Timeout = 20 * time.Second
		t.Cleanup(func() { c.Conn.Close() })
		payload := bytes.Repeat([]byte{byte(announce)}, announce)
		frame := codec.AppendMaskedFrame(nil, codec.OpBinary, true, false, [4]byte{5, 6, 7, 8}, payload)
		cut := len(frame) - (announce - send)
		return &holder{c: c, announce: announce, sent: frame[:cut], tail: frame[cut:]}
	}
	big, mid, small := mk(8<<20, 7<<20), mk(4<<20, 3<<20), mk(3584<<10, 2560<<10)
	held := int64(0)
	for _, h := range []*holder{big, mid} {
		if err := h.c.WriteRaw(h.sent); err != nil {
			t.Fatal(err)
		}
		held += int64(len(h.sent))
		waitFor(t, 10*time.Second, "the bytes to be accounted", func() bool { return srv.Stats().Memory.Inbound >= held-64 })
	}
	if err := small.c.WriteRaw(small.sent); err != nil { // crosses 14.4 MiB
		t.Fatal(err)
	}
	code, _, err := big.c.ExpectClose()
	if err != nil || code != codec.CloseTooBig {
		t.Fatalf("the largest holder: close %d (%v), want 1009", code, err)
	}
	for _, h := range []*holder{mid, small} {
		if err := h.c.WriteRaw(h.tail); err != nil {
			t.Fatal(err)
		}
		f, err := h.c.ReadData()
		if err != nil || f.Op != codec.OpBinary || len(f.Payload) != h.announce {
			t.Fatalf("holder of %d bytes: got op %v, %d bytes, %v; want its echo", h.announce, f.Op, len(f.Payload), err)
		}
	}
	waitFor(t, 10*time.Second, "the shed to be counted", func() bool { return srv.Stats().Closes["memory_shed"] == 1 })
}

// Many conns each holding less than the old per-conn floor (64 KiB) add up
// past the budget: the largest of them are still shed, and the accounted
// total never passes the budget. Before the fix nobody was shed and the
// total grew to the sum of what the offenders sent (the soak's trickle
// attack peaked at 90 MiB of a 64 MiB budget).
func TestMemoryBudgetShedsManySmallHolders(t *testing.T) {
	const budget, nOff, perOff = 4 << 20, 200, 48 << 10 // 9.4 MiB sent in all
	srv := New[struct{}](Options{MaxMemory: budget})
	srv.Handle("/echo", echo[struct{}]())
	addr := start(t, srv)
	a := startAttack(t, addr, nOff, perOff, 4<<10, 2*time.Millisecond)
	waitFor(t, 60*time.Second, "the trickles to end", func() bool { return a.trickled.Load() == nOff })
	// The last writes may still be in the sockets: the server has read
	// them all when inbound plus what it shed covers what was sent.
	waitFor(t, 20*time.Second, "the server to shed the largest holders", func() bool {
		return srv.Stats().Closes["memory_shed"] > 0
	})
	if st := srv.Stats(); st.Memory.Peak > budget {
		t.Errorf("accounted memory peaked at %d bytes, over the %d budget", st.Memory.Peak, budget)
	}
	for i := range a.codes {
		if c := uint16(a.codes[i].Load()); c != 0 && c != codec.CloseTooBig {
			t.Errorf("offender %d closed with %d, want 1009 or still open", i, c)
		}
	}
}
