package poller

import (
	"math"
	"sync/atomic"

	"github.com/wsdhq/wsd/codec"
)

// The memory budget (Config.MaxMemory) bounds what clients can make the
// process hold, across every connection:
//
//   - inbound: bytes of messages still incomplete (gnet's buffer of a conn
//     plus the capacity of the message being assembled), updated by each
//     read;
//   - outbound: bytes queued for peers (ours and gnet's unwritten),
//     sampled by each loop's once-a-second sweep;
//   - extra: what Config.ExtraMemory reports (history), polled each second.
//
// gnet cannot stop reading a socket, so the only way to stop a client from
// growing the inbound share is to close it. Above memHighPct of the budget
// new upgrades are refused with 503 and each loop closes its largest
// inbound holders (1009) until the total is back under memLowPct.
const (
	memHighPct = 90
	memLowPct  = 80
	// shedMinHeld: a conn holding less is not an offender while incomplete
	// inbound messages are under half the high mark (a few KiB of a frame
	// split by TCP is normal, and shedding them would not relieve pressure
	// that history or outbound queues make). Past that, inbound bytes are
	// the pressure, and the largest holders go first whatever their size:
	// 2,000 conns trickling 32 KiB each pass a 64 MiB budget with no one
	// over the floor.
	shedMinHeld = 64 << 10
	// shedMaxPerScan bounds the closes of one scan: a loop never stalls
	// on shedding.
	shedMaxPerScan = 64
	// shedBackoffNanos is how long a loop that found nothing to shed waits
	// before scanning again (the offenders are on other loops, which shed
	// on their own next read).
	shedBackoffNanos = 10e6
)

// memBudget is the engine's accounting. Safe from any goroutine.
type memBudget struct {
	limit, high, low int64 // 0: no budget
	inbound          atomic.Int64
	outbound         atomic.Int64
	extra            atomic.Int64
	peak             atomic.Int64 // highest used() seen when inbound grew
}

func (m *memBudget) init(limit int64) {
	if limit <= 0 {
		return
	}
	m.limit = limit
	m.high = limit / 100 * memHighPct
	m.low = limit / 100 * memLowPct
}

func (m *memBudget) used() int64 {
	return m.inbound.Load() + m.outbound.Load() + m.extra.Load()
}

// shedFloor is the least a conn must hold to be shed (see shedMinHeld).
func (m *memBudget) shedFloor() uint32 {
	if m.inbound.Load() >= m.high/2 {
		return 1
	}
	return shedMinHeld
}

// pressure reports whether usage is above the high mark.
func (m *memBudget) pressure() bool { return m.limit > 0 && m.used() > m.high }

// MemoryUsage is what the memory budget accounts, in bytes.
type MemoryUsage struct {
	Limit    int64 // Config.MaxMemory; 0: no budget
	Inbound  int64 // incomplete inbound messages
	Outbound int64 // queued for peers (sampled each second)
	Extra    int64 // Config.ExtraMemory (sampled each second)
	Peak     int64 // the highest total seen when inbound bytes grew
}

// Used is the total accounted.
func (u MemoryUsage) Used() int64 { return u.Inbound + u.Outbound + u.Extra }

// Memory returns the accounted usage. Safe from any goroutine.
func (e *Engine) Memory() MemoryUsage {
	m := &e.mem
	return MemoryUsage{Limit: m.limit, Inbound: m.inbound.Load(), Outbound: m.outbound.Load(), Extra: m.extra.Load(), Peak: m.peak.Load()}
}

// account updates c's share of the inbound bytes after a read. On the loop;
// an atomic add only when the share changed.
func (e *Engine) account(c *Conn) {
	h := 0
	if c.state != stateClosed {
		h = c.gc.InboundBuffered()
	}
	if c.msg != nil {
		// The buffer's capacity, not its length: message buffers grow by
		// doubling, so what a conn pins is up to twice what it sent.
		h += cap(c.msg.B)
	}
	n := uint32(min(h, math.MaxUint32))
	if n == c.held {
		return
	}
	grew := n > c.held
	e.mem.inbound.Add(int64(n) - int64(c.held))
	c.held = n
	if !grew {
		return
	}
	used := e.mem.used()
	for p := e.mem.peak.Load(); used > p && !e.mem.peak.CompareAndSwap(p, used); p = e.mem.peak.Load() {
	}
	if e.mem.limit > 0 && used > e.mem.high && n >= e.mem.shedFloor() {
		c.loop.shed(e.nanotime())
	}
}

// unaccount drops c's share. On the loop, from OnClose.
func (e *Engine) unaccount(c *Conn) {
	if c.held != 0 {
		e.mem.inbound.Add(-int64(c.held))
		c.held = 0
	}
}

// pollExtra samples Config.ExtraMemory. From the tick goroutine.
func (e *Engine) pollExtra() {
	if f := e.cfg.ExtraMemory; f != nil {
		e.mem.extra.Store(f())
	}
}

// shed closes this loop's largest inbound holders, largest first, until
// the total is under the low mark. On the loop.
func (l *loop) shed(now int64) {
	e := l.eng
	if now < l.shedAfter {
		return
	}
	for range shedMaxPerScan {
		if e.mem.used() <= e.mem.low {
			return
		}
		floor := e.mem.shedFloor()
		var worst *Conn
		for _, c := range l.conns {
			if c.held >= floor && (c.state == stateOpen || c.state == stateClosing) &&
				(worst == nil || c.held > worst.held) {
				worst = c
			}
		}
		if worst == nil {
			l.shedAfter = now + shedBackoffNanos
			return
		}
		l.shedConn(worst)
	}
}

// shedConn closes c with 1009 and frees what it holds at once.
func (l *loop) shedConn(c *Conn) {
	e := l.eng
	l.fail(c, codec.CloseTooBig, "server memory budget exceeded", CauseMemoryShed)
	e.bufs.Put(c.msg)
	c.msg = nil
	_, _ = c.gc.Discard(-1)
	e.mem.inbound.Add(-int64(c.held))
	c.held = 0
}

// sampleOutbound adds up what this loop's conns have queued and publishes
// the change. On the loop, from the sweep.
func (l *loop) sampleOutbound() {
	var n int64
	for _, c := range l.conns {
		c.mu.Lock()
		n += int64(c.queuedBytesLocked())
		c.mu.Unlock()
		if c.state != stateClosed {
			n += int64(c.gc.OutboundBuffered())
		}
	}
	l.eng.mem.outbound.Add(n - l.outBytes)
	l.outBytes = n
}
