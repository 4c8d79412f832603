package wsproto

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/wsdhq/wsd/internal/wire"
	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
)

// Server-Sent Events (docs/protocol.md, "Server-Sent Events"): GET
// /sse?channel=a&channel=b streams the channels' publications to a plain
// EventSource. Every publication event carries an id that holds the
// position of EVERY channel of the stream, in the order of the query's
// channel parameters ("<epoch>:<offset>" each, joined by ','; empty for a
// channel with no position yet), so that the one Last-Event-ID a browser
// sends back on its automatic reconnect resumes all of them exactly once.
// The event's own bytes ("event:" and "data:" lines) are built once per
// publication and shared by every SSE subscriber (server.Prepared.Alt);
// only the short id line is written per subscriber.

// SSEContentType is the content type of the /sse stream.
const SSEContentType = "text/event-stream; charset=utf-8"

// SSETokenCookie is the cookie a connection token may come in on /sse, for
// pages that cannot put it in the URL (?token= comes first).
const SSETokenCookie = "wsd_token"

// SSEPing is the keep-alive comment wsd writes on a silent stream
// (server.Options.StreamPing).
var SSEPing = []byte(": ping\n\n")

// SSE serves /sse for a Handler: the same hub, tokens, channel checks,
// limits and counters as /ws. It implements server.Handler[Session] and
// server.Acceptor[Session]; route it with
// srv.HandleStream("/sse", SSEContentType, h.SSE()). Safe for concurrent
// use.
type SSE struct {
	h                                 *Handler
	open                              atomic.Int64
	opened, resets, refused, recovers atomic.Uint64
}

// SSE returns the Server-Sent Events handler sharing h's configuration.
// Call it once: each SSE has its own counters.
func (h *Handler) SSE() *SSE { return &SSE{h: h} }

var (
	_ server.Handler[Session]  = (*SSE)(nil)
	_ server.Acceptor[Session] = (*SSE)(nil)
)

// SSEStats are the /sse counters.
type SSEStats struct {
	Open      int64  // streams open now
	Opened    uint64 // streams started
	Refused   uint64 // requests refused with 400, 401 or 403
	Recovered uint64 // channels resumed from Last-Event-ID with every missed publication
	Resets    uint64 // reset events: a channel that could not be resumed
}

// Stats returns the counters. Safe from any goroutine.
func (x *SSE) Stats() SSEStats {
	return SSEStats{Open: x.open.Load(), Opened: x.opened.Load(), Refused: x.refused.Load(),
		Recovered: x.recovers.Load(), Resets: x.resets.Load()}
}

// sseConn is one stream: a session (identity, token channels, expiry; its
// subs map stays nil: a stream's channels are fixed, kept in chans) and
// the position of each of its channels.
type sseConn struct {
	session            // first: sseOf converts a *session back
	mu      sync.Mutex // chans' positions, and the order of units on the stream
	chans   []sseChan  // in the query's order
}

type sseChan struct {
	name   string
	sub    *pubsub.Subscription[*server.Prepared] // set by OnOpen, ended by OnClose (never concurrent)
	pos    pubsub.StreamPosition
	known  bool // pos is the client's position (from Last-Event-ID or the subscribe)
	resume bool // Last-Event-ID asked for this channel: reset if it cannot be resumed
}

// refuse counts and returns an HTTP refusal.
func (x *SSE) refuse(status int, reason string) error {
	x.refused.Add(1)
	return &server.HTTPError{Status: status, Reason: reason}
}

// Accept implements server.Acceptor, on the event loop: Origin, token,
// channels and Last-Event-ID are checked before the 200.
func (x *SSE) Accept(c *server.Conn[Session], r *server.Request) error {
	h := x.h
	if len(h.cfg.AllowedOrigins) > 0 && r.Origin != "" && !originAllowed(h.cfg.AllowedOrigins, r.Origin) {
		h.originRejected.Add(1)
		return x.refuse(403, "origin not allowed")
	}
	if h.px.connect != nil {
		// The connect proxy answers after the upgrade, with an identity
		// the stream would need before its 200.
		return x.refuse(403, "/sse is not available with a connect proxy")
	}
	q, err := url.ParseQuery(r.RawQuery)
	if err != nil {
		return x.refuse(400, "bad query string")
	}
	sc := &sseConn{session: session{conn: c, stream: true}}
	claims, err := x.authenticate(sc, r, q)
	if err != nil {
		return err
	}
	if err := x.channels(sc, q["channel"]); err != nil {
		return err
	}
	if claims != nil && claims.ExpiresAt != nil {
		// Only for an accepted stream: OnClose clears it.
		h.setDeadline(&sc.session, claims.ExpiresAt.Time, h.now()) // the stream closes at exp
	}
	last := r.Get("Last-Event-ID")
	if last == "" {
		last = q.Get("last_event_id")
	}
	sc.setLastEventID(last)
	c.Value.s = &sc.session
	return nil
}

// sseOf returns the stream of a /sse conn: its Session points at the
// session embedded first in its sseConn (set by Accept; this route's conns
// have no other kind), so no per-conn lookup table is needed.
func sseOf(c *server.Conn[Session]) *sseConn {
	if c.Value.s == nil {
		return nil
	}
	return (*sseConn)(unsafe.Pointer(c.Value.s))
}

// authenticate finds and checks the token as /ws does, with the cookie as
// a last resort; nil claims in anonymous mode.
func (x *SSE) authenticate(sc *sseConn, r *server.Request, q url.Values) (*Claims, error) {
	h := x.h
	c := sc.conn
	if h.parser == nil {
		sc.anon, sc.clientID = true, h.anonID(c)
		return nil, nil
	}
	tok := q.Get("token")
	if tok == "" {
		tok = tokenFrom(r)
	}
	if tok == "" {
		if cookies, err := http.ParseCookie(r.Get("Cookie")); err == nil {
			for _, k := range cookies {
				if k.Name == SSETokenCookie {
					tok = k.Value
				}
			}
		}
	}
	if tok == "" {
		h.authRejected.Add(1)
		return nil, x.refuse(401, "a connection token is required (?token=, Authorization: Bearer or the "+SSETokenCookie+" cookie)")
	}
	claims, err := h.parseToken(tok)
	if err != nil {
		h.authRejected.Add(1)
		return nil, x.refuse(401, "invalid token: "+err.Error())
	}
	sc.clientID, sc.channels = claims.Subject, claims.Channels
	return claims, nil
}

// channels checks the requested channels as /ws's subscribe does.
func (x *SSE) channels(sc *sseConn, names []string) error {
	h := x.h
	if len(names) == 0 {
		return x.refuse(400, "name at least one channel (?channel=...)")
	}
	if len(names) > h.cfg.MaxSubscriptions {
		h.errors[codeIndex(CodeTooManySubs)].Add(1)
		return x.refuse(400, fmt.Sprintf("at most %d channels per stream", h.cfg.MaxSubscriptions))
	}
	for i, name := range names {
		if !pubsub.ValidChannel(name) {
			h.errors[codeIndex(CodeBadChannel)].Add(1)
			return x.refuse(400, "invalid channel name "+strconv.Quote(name))
		}
		for _, prev := range names[:i] {
			if prev == name {
				return x.refuse(400, "channel "+name+" named twice")
			}
		}
		o, err := h.hub.Namespace(name)
		if err != nil {
			return x.refuse(400, errorFor(err).Message)
		}
		if o.Private {
			return x.refuse(403, "channel "+name+" is private: channel tokens are not taken on /sse")
		}
		if h.px.subscribe.covers(pubsub.NamespaceOf(name)) {
			return x.refuse(403, "channel "+name+" is in a namespace whose subscriptions the backend decides: use /ws")
		}
		if e := h.access(&sc.session, &Request{Op: "subscribe", Channel: name}); e != nil {
			h.errors[codeIndex(e.Code)].Add(1)
			return x.refuse(403, e.Message)
		}
		sc.chans = append(sc.chans, sseChan{name: name})
	}
	return nil
}

// setLastEventID takes the positions a reconnecting client last saw. An id
// that does not fit the channels (another URL's, or mangled) resumes
// nothing: every channel gets a reset.
func (sc *sseConn) setLastEventID(id string) {
	if id == "" {
		return
	}
	parts := strings.Split(id, ",")
	ok := len(parts) == len(sc.chans)
	pos := make([]pubsub.StreamPosition, len(sc.chans))
	known := make([]bool, len(sc.chans))
	for i := 0; ok && i < len(parts); i++ {
		if parts[i] == "" {
			continue // no position then: subscribed from now, nothing to reset
		}
		epoch, off, found := strings.Cut(parts[i], ":")
		n, err := strconv.ParseUint(off, 10, 64)
		ok = found && epoch != "" && err == nil
		pos[i], known[i] = pubsub.StreamPosition{Epoch: epoch, Offset: n}, true
	}
	for i := range sc.chans {
		ch := &sc.chans[i]
		switch {
		case !ok:
			ch.resume = true
		case known[i]:
			ch.pos, ch.known, ch.resume = pos[i], true, true
		}
	}
}

// OnOpen implements server.Handler, on a worker: the subscriptions, then a
// "subscribed" event whose id holds every channel's position.
func (x *SSE) OnOpen(c *server.Conn[Session]) {
	sc := sseOf(c)
	if sc == nil {
		c.Close(1011, "no stream state")
		return
	}
	x.open.Add(1)
	x.opened.Add(1)
	x.h.users.add(&sc.session) // the API's disconnect and info count streams too
	results := make(map[string]SubscribeResult, len(sc.chans))
	for i := range sc.chans {
		name := sc.chans[i].name
		r, e := x.subscribe(sc, i)
		if e != nil {
			x.h.errors[codeIndex(e.Code)].Add(1)
			b, _ := json.Marshal(struct {
				Channel string `json:"channel"`
				Error   *Error `json:"error"`
			}{name, e})
			sc.write("error", b, false)
			c.Close(1011, e.Message) // the browser reconnects, with its Last-Event-ID
			return
		}
		results[name] = r
	}
	b, _ := json.Marshal(struct {
		Channels map[string]SubscribeResult `json:"channels"`
	}{results})
	sc.write("subscribed", b, true)
}

// subscribe makes channel i's subscription, recovering from its position.
func (x *SSE) subscribe(sc *sseConn, i int) (SubscribeResult, *Error) {
	ch := &sc.chans[i]
	name := ch.name
	var since *pubsub.StreamPosition
	sc.mu.Lock()
	if ch.known {
		p := ch.pos
		since = &p
	}
	sc.mu.Unlock()
	var out SubscribeResult
	sub, _, err := x.h.hub.Subscribe(context.Background(), name, sc, pubsub.SubscribeOptions{
		ClientID: sc.clientID,
		Since:    since,
		OnSubscribed: func(r pubsub.SubscribeResult) {
			// Under the channel's lock: before any of its publications.
			out = SubscribeResult{Epoch: r.Position.Epoch, Offset: r.Position.Offset, Recovered: r.Recovered}
			x.started(sc, i, r)
		},
	})
	if err != nil {
		return SubscribeResult{}, errorFor(err)
	}
	ch.sub = sub
	return out, nil
}

// started records where channel i's stream begins: at the client's
// position when every missed publication follows, else at the channel's
// latest, announced by a reset event if the client asked to resume.
func (x *SSE) started(sc *sseConn, i int, r pubsub.SubscribeResult) {
	ch := &sc.chans[i]
	if r.Recovered {
		x.recovers.Add(1)
		return
	}
	var reset []byte
	if ch.resume {
		x.resets.Add(1)
		reset, _ = json.Marshal(struct {
			Channel string `json:"channel"`
			Epoch   string `json:"epoch"`
			Offset  uint64 `json:"offset"`
		}{ch.name, r.Position.Epoch, r.Position.Offset})
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	// One hold: no id with the new position may go out before the reset.
	ch.pos, ch.known = r.Position, true
	if reset != nil {
		sc.writeLocked("reset", reset, true)
	}
}

// write sends one event made for this stream alone, with the id line when
// withID.
func (sc *sseConn) write(event string, data []byte, withID bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.writeLocked(event, data, withID)
}

func (sc *sseConn) writeLocked(event string, data []byte, withID bool) {
	var own []byte
	if withID {
		own = sc.appendIDLine(own)
	}
	own = appendSSEEvent(own, event, data)
	_ = sc.conn.WriteStream(own, nil)
}

// Deliver implements pubsub.Subscriber: the publication's shared event
// after this stream's id line, one unit. Safe from any goroutine.
func (sc *sseConn) Deliver(p *server.Prepared) {
	ev, _ := p.Alt(buildSSEEvent).(*sseEvent)
	if ev == nil {
		return // not a push
	}
	var buf [128]byte // the id line; longer ones (many channels) go to the heap
	sc.mu.Lock()
	defer sc.mu.Unlock()
	own := buf[:0]
	if ev.pub {
		for i := range sc.chans {
			if sc.chans[i].name == ev.channel {
				sc.chans[i].pos = pubsub.StreamPosition{Epoch: ev.epoch, Offset: ev.offset}
				sc.chans[i].known = true
				break
			}
		}
		own = sc.appendIDLine(own)
	}
	_ = sc.conn.WriteStream(own, ev.b) // a full queue is the server's slow-consumer policy
}

// appendIDLine appends "id: <epoch>:<offset>,...\n" for every channel, in
// the query's order. Under mu.
func (sc *sseConn) appendIDLine(dst []byte) []byte {
	dst = append(dst, "id: "...)
	for i := range sc.chans {
		if i > 0 {
			dst = append(dst, ',')
		}
		if ch := &sc.chans[i]; ch.known {
			dst = append(dst, ch.pos.Epoch...)
			dst = append(dst, ':')
			dst = strconv.AppendUint(dst, ch.pos.Offset, 10)
		}
	}
	return append(dst, '\n')
}

// OnMessage implements server.Handler; a stream has no messages.
func (x *SSE) OnMessage(*server.Conn[Session], server.Message) {}

// OnClose implements server.Handler: the stream leaves its channels.
func (x *SSE) OnClose(c *server.Conn[Session], _ *server.CloseError) {
	sc := sseOf(c)
	if sc == nil {
		return
	}
	x.open.Add(-1)
	x.h.users.remove(&sc.session)
	x.h.clearDeadline(&sc.session)
	for i := range sc.chans {
		if sub := sc.chans[i].sub; sub != nil {
			sub.Unsubscribe()
		}
	}
}

// sseEvent is a push as SSE: the event and data lines, built once per
// publication.
type sseEvent struct {
	b       []byte // "event: ...\ndata: ...\n\n"
	channel string
	epoch   string
	offset  uint64
	pub     bool // a publication (its position goes into the id)
}

// buildSSEEvent turns a push (pubsub.AppendPush, AppendJoinLeave) into its
// event; nil for what is not a JSON push.
func buildSSEEvent(push []byte) any {
	if len(push) > 0 && (push[0] == wire.PushKind || push[0] == wire.LatestPushKind) {
		return binarySSEEvent(push)
	}
	if len(push) == 0 || push[0] != '{' {
		return nil
	}
	var p struct {
		Channel string          `json:"channel"`
		Offset  *uint64         `json:"offset"`
		Epoch   string          `json:"epoch"`
		Join    json.RawMessage `json:"join"`
		Leave   json.RawMessage `json:"leave"`
	}
	if json.Unmarshal(push, &p) != nil {
		return nil
	}
	ev := &sseEvent{channel: p.Channel}
	name := "message"
	switch {
	case p.Offset != nil:
		name, ev.pub, ev.epoch, ev.offset = "publication", true, p.Epoch, *p.Offset
	case p.Join != nil:
		name = "join"
	case p.Leave != nil:
		name = "leave"
	}
	ev.b = appendSSEEvent(make([]byte, 0, len(push)+32), name, push)
	return ev
}

// binarySSEEvent is a binary publication's event: its push as JSON, the
// bytes in "data_b64" (standard base64, as the HTTP API's history).
func binarySSEEvent(push []byte) any {
	p, err := wire.ParsePush(push)
	if err != nil {
		return nil
	}
	j := append(make([]byte, 0, 64+len(p.Channel)+len(p.Epoch)+base64.StdEncoding.EncodedLen(len(p.Data))), `{"channel":`...)
	j = pubsub.AppendJSONString(j, p.Channel)
	j = append(j, `,"offset":`...)
	j = strconv.AppendUint(j, p.Offset, 10)
	j = append(j, `,"epoch":`...)
	j = pubsub.AppendJSONString(j, p.Epoch)
	j = append(j, `,"data_b64":"`...)
	j = base64.StdEncoding.AppendEncode(j, p.Data)
	j = append(j, '"', '}')
	ev := &sseEvent{channel: p.Channel, pub: true, epoch: p.Epoch, offset: p.Offset}
	ev.b = appendSSEEvent(make([]byte, 0, len(j)+32), "publication", j)
	return ev
}

// appendSSEEvent appends an event: its type, data split into data lines at
// any line break (JSON has them only as whitespace, so the client's join
// with '\n' is the same JSON), and the empty line that dispatches it.
func appendSSEEvent(dst []byte, event string, data []byte) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, event...)
	dst = append(dst, "\ndata: "...)
	for i := 0; i < len(data); i++ {
		switch c := data[i]; c {
		case '\r':
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
			dst = append(dst, "\ndata: "...)
		case '\n':
			dst = append(dst, "\ndata: "...)
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '\n', '\n')
}
