//go:build linux

package bench

import (
	"bytes"
	"sync/atomic"
	"time"

	"github.com/wsdhq/wsd/codec"
)

// scenario is what a run does with its connections once they are up. All
// methods run on the loop that owns c.
type scenario interface {
	// begin starts traffic on every open connection of l.
	begin(l *loop, now int64)
	// timer runs when c.next has passed; re-arm with l.schedule.
	timer(l *loop, c *conn, now int64)
	// message handles one whole data message; false if c was closed.
	message(l *loop, c *conn, op codec.OpCode, p []byte, now int64) bool
}

func newScenario(cfg Config) scenario {
	op := codec.OpBinary
	if cfg.Text {
		op = codec.OpText
	}
	var interval int64
	if cfg.Rate > 0 {
		interval = int64(float64(time.Second) / cfg.Rate)
		if interval < 1 {
			interval = 1
		}
	}
	switch cfg.Scenario {
	case ScenarioEcho:
		return &echoScenario{size: cfg.Size, op: op, interval: interval, pipeline: cfg.Pipeline}
	case ScenarioBroadcast:
		s := &bcastScenario{size: cfg.Size, op: op, interval: interval, window: cfg.Pipeline}
		if cfg.Mode == ModeWS {
			s.ws, s.channel, s.op = true, cfg.Channel, codec.OpText
			s.quoted = []byte(`"` + cfg.Channel + `"`) // checkChannel: nothing to escape
			s.subReq = wsSubscribe(cfg.Channel)
			s.binary = cfg.Binary
		}
		return s
	case ScenarioIdle:
		return &idleScenario{every: int64(cfg.PingEvery), subscribe: cfg.Subscribe, channels: cfg.SubChannels}
	case ScenarioStorm:
		return newStormScenario(cfg)
	}
	return connectScenario{}
}

// connectScenario only opens connections (upgrade latency is recorded by
// the loop) and holds them until the run ends.
type connectScenario struct{}

func (connectScenario) begin(*loop, int64)        {}
func (connectScenario) timer(*loop, *conn, int64) {}
func (connectScenario) message(l *loop, _ *conn, _ codec.OpCode, p []byte, _ int64) bool {
	l.ctr.recv.Add(1)
	return true
}

// idleScenario holds connections silent, pinging a sample of them. With
// subscribe (a channel pattern, over wsd's /ws) each connection first
// subscribes to its own channel and then counts the pushes it gets: the
// subscribers of a backend publishing to per-user channels.
type idleScenario struct {
	every     int64
	subscribe string
	channels  int
}

// channel appends the channel connection c subscribes to.
func (s *idleScenario) channel(dst []byte, c *conn) []byte {
	return appendSpreadChannel(dst, s.subscribe, int(c.id%uint64(s.channels)))
}

// opened subscribes c when subscribing; it is ready on the reply.
func (s *idleScenario) opened(l *loop, c *conn, _ int64) bool {
	if s.subscribe == "" {
		return true
	}
	l.gbuf = append(l.gbuf[:0], `{"id":1,"op":"subscribe","channel":"`...)
	l.gbuf = s.channel(l.gbuf, c) // checkChannelPattern: nothing to escape
	l.gbuf = append(l.gbuf, `"}`...)
	l.sendData(c, codec.OpText, l.gbuf)
	return false
}

func (s *idleScenario) begin(l *loop, now int64) {
	w := l.w
	k := share(share(w.cfg.PingSample, w.cfg.WorkerIndex, w.cfg.WorkerCount), l.id, len(w.loops))
	for _, c := range l.all {
		if k <= 0 {
			break
		}
		if c.state == stOpen {
			c.next = now + l.rng.Int64N(s.every)
			l.schedule(c)
			k--
		}
	}
}

func (s *idleScenario) timer(l *loop, c *conn, now int64) {
	if !l.traffic() || c.state != stOpen {
		return
	}
	var b [8]byte
	l.sendControl(c, codec.OpPing, pingPayload(b[:0], now))
	l.ctr.pings.Add(1)
	c.next += s.every
	if c.next < now {
		c.next = now + s.every
	}
	l.schedule(c)
}

func (s *idleScenario) message(l *loop, c *conn, _ codec.OpCode, p []byte, _ int64) bool {
	if s.subscribe == "" {
		l.ctr.recv.Add(1)
		return true
	}
	l.gbuf = append(l.gbuf[:0], '"')
	l.gbuf = append(s.channel(l.gbuf, c), '"')
	kind, _, code := classifyWS(p, l.gbuf)
	if !c.settled {
		switch {
		case kind != wsReply:
			l.lost(c, "subscribe: a message came before the reply")
			return false
		case code != nil:
			l.lost(c, "subscribe: error "+string(code))
			return false
		}
		c.readyBy = 0
		l.ctr.subscribed.Add(1)
		l.settle(c)
		return true
	}
	switch kind {
	case wsPush:
		l.ctr.recv.Add(1)
		l.ctr.deliveries.Add(1)
		l.ctr.bytesRecv.Add(uint64(len(p)))
	case wsOtherPush:
		l.ctr.mismatch.Add(1)
		l.reason("idle: push on a channel not subscribed to")
	default:
		l.reason("idle: neither a push nor a reply")
	}
	return true
}

// echoScenario sends payloads and checks each reply against what was sent,
// in order. Closed loop (interval 0) keeps pipeline messages in flight per
// connection; open loop sends one every interval and measures latency from
// the intended send time, so a stalled server cannot hide its stall
// (no coordinated omission).
type echoScenario struct {
	size     int
	op       codec.OpCode
	interval int64
	pipeline int
}

func (s *echoScenario) begin(l *loop, now int64) {
	for _, c := range l.all {
		if c.state != stOpen {
			continue
		}
		if s.interval == 0 {
			for range s.pipeline {
				s.send(l, c, now)
			}
		} else {
			c.next = now + l.rng.Int64N(s.interval)
			l.schedule(c)
		}
	}
}

func (s *echoScenario) send(l *loop, c *conn, intended int64) {
	if c.state != stOpen {
		return
	}
	if len(c.fly)-c.flyHead >= maxInflight {
		l.reason("echo: too many messages unanswered")
		return
	}
	l.gbuf = appendEchoPayload(l.gbuf[:0], c.id, c.seq, s.size)
	c.seq++
	if c.flyHead > 1024 && c.flyHead*2 > len(c.fly) {
		n := copy(c.fly, c.fly[c.flyHead:])
		c.fly, c.flyHead = c.fly[:n], 0
	}
	c.fly = append(c.fly, intended)
	l.ctr.sent.Add(1)
	l.ctr.bytesSent.Add(uint64(s.size))
	l.sendData(c, s.op, l.gbuf)
}

func (s *echoScenario) timer(l *loop, c *conn, now int64) {
	for c.next <= now && l.traffic() && c.state == stOpen {
		s.send(l, c, c.next)
		c.next += s.interval
	}
	if l.traffic() {
		l.schedule(c)
	}
}

func (s *echoScenario) message(l *loop, c *conn, op codec.OpCode, p []byte, now int64) bool {
	if c.flyHead == len(c.fly) {
		l.reason("echo: message nobody asked for")
		return true
	}
	l.gbuf = appendEchoPayload(l.gbuf[:0], c.id, c.ack, s.size)
	if op != s.op || !bytes.Equal(p, l.gbuf) {
		l.ctr.mismatch.Add(1)
		l.reason("echo: reply differs from what was sent")
	}
	t := c.fly[c.flyHead]
	c.flyHead++
	if c.flyHead == len(c.fly) {
		c.fly, c.flyHead = c.fly[:0], 0
	}
	c.ack++
	l.ctr.recv.Add(1)
	l.ctr.deliveries.Add(1)
	l.ctr.bytesRecv.Add(uint64(len(p)))
	if l.measuring {
		l.hist.Record(now - t)
	}
	if s.interval == 0 && l.traffic() {
		s.send(l, c, now)
	}
	return true
}

// bcastRing is how many recent publishes the closed-loop publisher tracks.
const bcastRing = 4096

// bcastState is shared by a worker's loops: subscribers count deliveries of
// each recent sequence number, and the publisher (closed loop) sends the
// next message once every local subscriber has the previous ones.
type bcastState struct {
	acks   [bcastRing]atomic.Int32
	target atomic.Int32 // local subscribers open when traffic began
	next   uint64       // next sequence number; publisher (loop or HTTP goroutine) only
}

// ackDone marks a publish as retired without deliveries (the server
// refused it): more than any subscriber count.
const ackDone = 1 << 30

// retire drops from the front of out the publishes every local subscriber
// has, and those over a second old (counted in timeouts).
func (bc *bcastState) retire(out []pubMsg, now int64, timeouts *atomic.Uint64) []pubMsg {
	target := bc.target.Load()
	for len(out) > 0 {
		m := out[0]
		if bc.acks[m.seq%bcastRing].Load() >= target {
			out = out[1:]
			continue
		}
		if now-m.at > int64(time.Second) {
			timeouts.Add(1)
			out = out[1:]
			continue
		}
		break
	}
	if len(out) == 0 {
		out = out[:0:0]
	}
	return out
}

// bcastScenario: one publisher connection (on worker 0) sends sequence
// numbered, timestamped payloads; every other connection checks each
// delivery for order, loss and duplication and records publish→receive
// latency from the timestamp (wall clock, so it holds across processes).
//
// In /ws mode (ws) every subscriber first subscribes to the channel and
// counts as ready on the reply; the publisher sends publish ops on its own
// /ws connection (it does not subscribe: its replies are not deliveries) or,
// with --publish http, is a goroutine posting to the HTTP API (worker.hpub)
// and opens no connection. The payload is JSON data {"seq":N,"ts":T,"pad":…}.
type bcastScenario struct {
	size     int
	op       codec.OpCode
	interval int64
	window   int

	ws      bool
	channel string
	quoted  []byte // the channel as a JSON string
	subReq  []byte
	binary  bool // binary publications (Config.Binary)
}

// opened subscribes a new /ws subscriber; it is ready on the reply.
func (s *bcastScenario) opened(l *loop, c *conn, _ int64) bool {
	if !s.ws || c.role == rolePub {
		return true
	}
	l.sendData(c, codec.OpText, s.subReq)
	return false
}

func (s *bcastScenario) begin(l *loop, now int64) {
	if l.epSubs != nil {
		for _, c := range l.all {
			if c.role == roleSub && c.state == stOpen && c.settled {
				l.epSubs[c.ep]++
			}
		}
	}
	if l.pub == nil || l.pub.state != stOpen {
		return
	}
	if s.interval > 0 {
		l.pub.next = now
		l.schedule(l.pub)
	}
}

func (s *bcastScenario) publish(l *loop, now int64) {
	bc := &l.w.bc
	seq := bc.next
	bc.next++
	bc.acks[seq%bcastRing].Store(0)
	op := s.op
	switch {
	case s.binary:
		l.gbuf, op = appendWSBinaryPublish(l.gbuf[:0], s.channel, seq, time.Now().UnixNano(), s.size), codec.OpBinary
	case s.ws:
		l.gbuf = appendWSPublish(l.gbuf[:0], s.channel, seq, time.Now().UnixNano(), s.size)
	default:
		l.gbuf = appendBcastPayload(l.gbuf[:0], seq, time.Now().UnixNano(), s.size)
	}
	l.ctr.published.Add(1)
	l.ctr.sent.Add(1)
	l.ctr.bytesSent.Add(uint64(s.size))
	l.pubOut = append(l.pubOut, pubMsg{seq, now})
	l.sendData(l.pub, op, l.gbuf)
}

func (s *bcastScenario) timer(l *loop, c *conn, now int64) {
	if c != l.pub {
		return
	}
	for c.next <= now && l.traffic() && c.state == stOpen {
		s.publish(l, now)
		c.next += s.interval
	}
	if l.traffic() {
		l.schedule(c)
	}
}

// pubPump runs on the publisher's loop every iteration: it retires
// publishes that every local subscriber has (or that are over a second
// old) and, in closed loop, publishes while fewer than window are pending.
func (l *loop) pubPump(now int64) {
	s, ok := l.w.scen.(*bcastScenario)
	if !ok {
		return
	}
	l.pubOut = l.w.bc.retire(l.pubOut, now, &l.ctr.pubTimeout)
	if s.interval > 0 || !l.traffic() || l.pub.state != stOpen {
		return
	}
	for len(l.pubOut) < s.window && l.pub.state == stOpen {
		s.publish(l, now)
	}
}

func (s *bcastScenario) message(l *loop, c *conn, op codec.OpCode, p []byte, _ int64) bool {
	if s.ws && op == codec.OpBinary {
		return s.messageWSBinary(l, c, p)
	}
	if s.ws {
		return s.messageWS(l, c, p)
	}
	if c.role == rolePub {
		return true // the publisher hears its own messages; not a delivery
	}
	wall := time.Now().UnixNano()
	for len(p) > 0 {
		// gorilla's chat hub joins queued messages with '\n'; our payloads
		// never contain one, so splitting is exact for every server.
		part := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			part, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		seq, ts, ok := parseBcast(part)
		if !ok || len(part) != s.size { // any data opcode: gorilla's hub always sends text
			l.ctr.mismatch.Add(1)
			l.reason("broadcast: payload does not verify")
			if len(part) < bcastHeader {
				continue
			}
		}
		s.delivered(l, c, seq, ts, wall, len(part))
	}
	return true
}

// delivered counts one delivery of publication seq, published at ts (wall
// clock ns), to subscriber c.
func (s *bcastScenario) delivered(l *loop, c *conn, seq uint64, ts, wall int64, n int) {
	bc := &l.w.bc
	l.ctr.recv.Add(1)
	l.ctr.deliveries.Add(1)
	l.ctr.bytesRecv.Add(uint64(n))
	switch {
	case seq >= c.ack:
		c.ack = seq + 1
		l.ctr.unique.Add(1)
		if bc.acks[seq%bcastRing].Add(1) == bc.target.Load() {
			l.w.notifyPub(l)
		}
	default:
		l.ctr.dups.Add(1)
	}
	if l.measuring {
		l.hist.Record(wall - ts)
		if l.epHist != nil {
			l.epHist[c.ep].Record(wall - ts)
		}
	}
}

// messageWS handles one message from /ws: the subscribe reply, a push, or
// (on the publisher) a publish reply.
func (s *bcastScenario) messageWS(l *loop, c *conn, p []byte) bool {
	kind, data, code := classifyWS(p, s.quoted)
	if c.role == rolePub {
		switch {
		case kind == wsReply && code != nil:
			l.ctr.pubErrors.Add(1)
			l.reason("publish: error " + string(code))
			if id, ok := replyID(p); ok {
				l.w.bc.acks[id%bcastRing].Store(ackDone)
			}
		case kind == wsReply:
		case kind == wsPush || kind == wsOtherPush:
			l.reason("broadcast: push to the publisher, which did not subscribe")
		default:
			l.reason("broadcast: publisher got neither a reply nor a push")
		}
		return true
	}
	if !c.settled {
		if kind != wsReply {
			l.lost(c, "subscribe: a message came before the reply")
			return false
		}
		if code != nil {
			l.lost(c, "subscribe: error "+string(code))
			return false
		}
		c.readyBy = 0
		l.ctr.subscribed.Add(1)
		l.settle(c)
		return true
	}
	switch kind {
	case wsPush:
	case wsOtherPush:
		l.ctr.mismatch.Add(1)
		l.reason("broadcast: push on a channel not subscribed to")
		return true
	case wsReply:
		l.reason("broadcast: reply to no request")
		return true
	default:
		l.ctr.mismatch.Add(1)
		l.reason("broadcast: neither a push nor a reply")
		return true
	}
	wall := time.Now().UnixNano()
	seq, ts, n, st := parseWSData(data)
	if st == wsDataBad {
		l.ctr.mismatch.Add(1)
		l.reason("broadcast: push data is not a wsbench publication")
		return true
	}
	if st != wsDataOK || n != s.size {
		l.ctr.mismatch.Add(1)
		l.reason("broadcast: push data does not verify")
	}
	s.delivered(l, c, seq, ts, wall, n)
	return true
}

// messageWSBinary handles a binary frame from /ws: a binary push, which
// only a settled subscriber of a --binary run should get.
func (s *bcastScenario) messageWSBinary(l *loop, c *conn, p []byte) bool {
	if c.role == rolePub {
		l.reason("broadcast: push to the publisher, which did not subscribe")
		return true
	}
	if !c.settled {
		l.lost(c, "subscribe: a message came before the reply")
		return false
	}
	data, ok, other := splitWSBinaryPush(p, s.channel)
	switch {
	case other:
		l.ctr.mismatch.Add(1)
		l.reason("broadcast: push on a channel not subscribed to")
		return true
	case !ok:
		l.ctr.mismatch.Add(1)
		l.reason("broadcast: binary frame is not a binary push")
		return true
	}
	wall := time.Now().UnixNano()
	seq, ts, ok := parseBcast(data)
	if !ok || len(data) != s.size || !s.binary {
		l.ctr.mismatch.Add(1)
		l.reason("broadcast: binary push data does not verify")
		if len(data) < bcastHeader {
			return true
		}
	}
	s.delivered(l, c, seq, ts, wall, len(data))
	return true
}
