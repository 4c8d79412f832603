package wsproto

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/server"
)

// Hub is the pub/sub hub the protocol runs on: frames are the server's
// prepared messages, shared by every subscriber.
type Hub = pubsub.Hub[*server.Prepared]

// NewHub returns a hub on broker whose pushes are encoded once with
// srv.Prepare: as text frames, binary publications' as binary frames.
func NewHub(srv *server.Server[Session], broker pubsub.Broker, opts pubsub.HubOptions[*server.Prepared]) (*Hub, error) {
	if opts.Encode == nil {
		opts.Encode = func(b []byte) *server.Prepared { return srv.Prepare(server.Text, b) }
	}
	if opts.EncodeBinary == nil {
		opts.EncodeBinary = func(b []byte) *server.Prepared { return srv.Prepare(server.Binary, b) }
	}
	return pubsub.NewHub(broker, opts)
}

// Session is a connection's value for server.Server[Session]: one pointer,
// nil for connections of other routes (an /echo conn pays 8 bytes for
// sharing the server with /ws), set by Accept for /ws connections.
type Session struct{ s *session }

// ClientID is the client's ID on /ws: the token's sub, or
// "anon-<conn ID>" in anonymous mode; "" on other routes.
func (v Session) ClientID() string {
	if v.s == nil {
		return ""
	}
	return v.s.clientID
}

// session is a /ws connection's state: who the client is, what it may use,
// what it is subscribed to. Only the handler's callbacks touch it, one at
// a time, except subs and closed (under subsMu: the subscribe proxy's answers
// arrive off the callbacks); the hub calls Deliver from publishers'
// goroutines.
type session struct {
	conn     *server.Conn[Session]
	clientID string
	channels []string // token patterns; ignored when anon
	anon     bool
	limited  bool          // closed for the rate limit: ignore the rest
	stream   bool          // an /sse stream's (sse.go): indexed by user, never sent /ws frames
	closed   bool          // OnClose ran: a late subscription is undone; under subsMu
	deadline atomic.Uint32 // the expiry wheel's tick when the token runs out; 0: never (or closed). In the bools' padding: token_expiry.go
	bucket   bucket
	gate     *connectGate // connect proxy (connect.go); nil when off
	subsMu   sync.Mutex
	subs     map[string]*pubsub.Subscription[*server.Prepared] // subs.go
}

// Deliver implements pubsub.Subscriber: it queues a push on the
// connection. Safe from any goroutine.
func (s *session) Deliver(p *server.Prepared) {
	_ = s.conn.SendPrepared(p) // a full queue is the server's slow-consumer policy
}

func (s *session) allowed(channel string) bool { return s.anon || matchAny(s.channels, channel) }

// Handler serves the /ws protocol: it implements server.Handler[Session]
// and server.Acceptor[Session]. Create it with New and route it with
// srv.Handle("/ws", h). Its methods are safe for concurrent use.
type Handler struct {
	hub    *Hub
	cfg    Config
	keys   *tokenKeys  // token_keys.go
	parser *jwt.Parser // nil: anonymous
	now    func() time.Time
	px     *proxies     // backend proxies (proxy.go); fields nil when off
	users  users        // /ws sessions by client ID (API disconnect, info)
	expiry *expiryWheel // token_expiry.go

	userSubs pubsub.UserSubscriptions // the broker's server-side subscriptions; nil when it keeps none
	held     heldSubs                 // subscriptions the server made (serversubs.go)

	refreshNotices, refreshes, tokenExpired             atomic.Uint64
	requests, rateLimited, authRejected, originRejected atomic.Uint64
	errors                                              [numCodes + 1]atomic.Uint64
}

var (
	_ server.Handler[Session]  = (*Handler)(nil)
	_ server.Acceptor[Session] = (*Handler)(nil)
)

// New returns the /ws handler for hub.
func New(hub *Hub, cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	h := &Handler{hub: hub, cfg: cfg, now: time.Now, px: newProxies(cfg.Proxy, cfg.MaxDataBytes)}
	h.expiry = newExpiryWheel(h.now, h.expiryDue)
	if !cfg.Anonymous() {
		keys, err := newTokenKeys(cfg, h.now)
		if err != nil {
			return nil, err
		}
		h.keys = keys
		h.parser = jwt.NewParser(jwt.WithValidMethods(keys.methods()), jwt.WithLeeway(cfg.TokenLeeway), jwt.WithIssuedAt())
	}
	if err := h.watchUserSubs(); err != nil {
		return nil, err
	}
	return h, nil
}

// Hub returns the handler's hub.
func (h *Handler) Hub() *Hub { return h.hub }

// Config returns the configuration in force (defaults filled in).
func (h *Handler) Config() Config { return h.cfg }

// Accept implements server.Acceptor: the Origin allow-list (403) and the
// connection token (401), before the 101.
func (h *Handler) Accept(c *server.Conn[Session], r *server.Request) error {
	if len(h.cfg.AllowedOrigins) > 0 && r.Origin != "" && !originAllowed(h.cfg.AllowedOrigins, r.Origin) {
		h.originRejected.Add(1)
		h.cfg.Logger.Debug("ws: origin refused", "origin", r.Origin)
		return &server.HTTPError{Status: 403, Reason: "origin not allowed"}
	}
	s := &session{conn: c}
	if h.parser == nil {
		s.anon, s.clientID = true, h.anonID(c)
		c.Value.s = s
		h.prepareConnect(c, r)
		return nil
	}
	tok := tokenFrom(r)
	if tok == "" {
		h.authRejected.Add(1)
		return &server.HTTPError{Status: 401, Reason: "a connection token is required (?token= or Authorization: Bearer)"}
	}
	claims, err := h.parseToken(tok)
	if err != nil {
		h.authRejected.Add(1)
		h.cfg.Logger.Debug("ws: token refused", "err", err)
		return &server.HTTPError{Status: 401, Reason: "invalid token: " + err.Error()}
	}
	s.clientID, s.channels = claims.Subject, claims.Channels
	if claims.ExpiresAt != nil {
		h.setDeadline(s, claims.ExpiresAt.Time, h.now())
	}
	c.Value.s = s
	h.prepareConnect(c, r)
	return nil
}

// OnOpen implements server.Handler.
func (h *Handler) OnOpen(c *server.Conn[Session]) {
	if c.Value.s == nil { // Accept was bypassed: no token, so no channels unless anonymous
		c.Value.s = &session{conn: c, anon: h.parser == nil, clientID: h.anonID(c)}
	}
	s := c.Value.s
	h.users.add(s)
	if s.gate != nil {
		h.startConnect(c) // the server-side subscriptions follow the backend's answer
		return
	}
	h.openServerSubs(s, nil)
}

// anonID is an anonymous client's ID, unique in the cluster when the node
// has an ID.
func (h *Handler) anonID(c *server.Conn[Session]) string {
	if h.cfg.NodeID != "" {
		return fmt.Sprintf("anon-%s-%d", h.cfg.NodeID, c.ID())
	}
	return fmt.Sprintf("anon-%d", c.ID())
}

// OnClose implements server.Handler: the connection leaves its channels.
func (h *Handler) OnClose(c *server.Conn[Session], _ *server.CloseError) {
	s := c.Value.s
	if s == nil {
		return
	}
	h.users.remove(s)
	h.clearDeadline(s) // the wheel's entries go stale
	for _, sub := range s.closeSubs() {
		sub.Unsubscribe()
	}
	h.held.drop(s)
}

// maxEnvelope is what a request may add to its data.
const maxEnvelope = 4096

// OnMessage implements server.Handler: one request, one reply (and, for
// subscribe, the missed publications after the reply).
func (h *Handler) OnMessage(c *server.Conn[Session], m server.Message) {
	if g := c.Value.s.gate; g != nil && g.hold(c, m) {
		return // until the connect proxy answers
	}
	h.onMessage(c, m)
}

func (h *Handler) onMessage(c *server.Conn[Session], m server.Message) {
	s := c.Value.s
	if s.limited {
		return
	}
	if !s.bucket.allow(h.now(), h.cfg.RateLimit, h.cfg.RateBurst) {
		s.limited = true
		h.rateLimited.Add(1)
		c.Close(1008, "rate limit exceeded")
		return
	}
	h.requests.Add(1)
	if m.Type == server.Binary {
		h.binaryPublish(c, m.Data) // binary.go
		return
	}
	if m.Type != server.Text {
		h.fail(c, nil, &Error{CodeBadRequest, "requests are JSON text frames"})
		return
	}
	req, e := decodeRequest(m.Data, 4*h.cfg.MaxDataBytes+maxEnvelope)
	if e != nil {
		h.fail(c, nil, e)
		return
	}
	switch req.Op {
	case "subscribe":
		h.subscribe(c, req)
	case "unsubscribe":
		h.unsubscribe(c, req)
	case "publish":
		h.publish(c, req)
	case "presence":
		h.presence(c, req)
	case "presence_stats":
		h.presenceStats(c, req)
	case "history":
		h.history(c, req)
	case "rpc":
		h.rpc(c, req)
	case "refresh":
		h.refresh(c, req)
	case "ping":
		// Extension: an application-level liveness probe (browsers cannot
		// send WebSocket pings). The reply is an empty result.
		h.reply(c, req.ID, struct{}{})
	case "":
		h.fail(c, req.ID, &Error{CodeBadRequest, "missing op"})
	default:
		h.fail(c, req.ID, &Error{CodeUnknownOp, fmt.Sprintf("unknown op %q", req.Op)})
	}
}

// decodeRequest reads one request of at most max bytes; the error is the
// reply (without id: a request that cannot be read has none).
func decodeRequest(data []byte, max int) (*Request, *Error) {
	if len(data) > max {
		return nil, &Error{CodeTooLarge, fmt.Sprintf("message over %d bytes", max)}
	}
	req := new(Request)
	if err := json.Unmarshal(data, req); err != nil {
		return nil, &Error{CodeBadRequest, "invalid JSON: " + err.Error()}
	}
	if !validID(req.ID) {
		return nil, &Error{CodeBadRequest, "id must be a number or a string"}
	}
	if string(req.ID) == "null" {
		req.ID = nil
	}
	return req, nil
}

func validID(id json.RawMessage) bool {
	if len(id) == 0 || string(id) == "null" {
		return true
	}
	c := id[0]
	return c == '"' || c == '-' || c >= '0' && c <= '9'
}

// checkChannel validates the name and the client's access to the channel.
func (h *Handler) checkChannel(c *server.Conn[Session], req *Request) bool {
	if !pubsub.ValidChannel(req.Channel) {
		h.fail(c, req.ID, &Error{CodeBadChannel, "invalid channel name"})
		return false
	}
	if e := h.access(c.Value.s, req); e != nil { // token_channel.go
		h.fail(c, req.ID, e)
		return false
	}
	return true
}

func (h *Handler) subscribe(c *server.Conn[Session], req *Request) {
	if h.restartHeld(c, req) { // serversubs.go
		return
	}
	if req.Server {
		h.fail(c, req.ID, &Error{CodeNotSubscribed, "the server has not subscribed this connection to " + req.Channel})
		return
	}
	if !h.checkChannel(c, req) {
		return
	}
	if e := c.Value.s.reserve(req.Channel, h.cfg.MaxSubscriptions); e != nil {
		h.fail(c, req.ID, e)
		return
	}
	if !h.subscribeProxied(c, req) {
		h.subscribeNow(c, req.ID, req.Channel, req.Since, req.Latest)
	}
}

func (h *Handler) unsubscribe(c *server.Conn[Session], req *Request) {
	sub := c.Value.s.take(req.Channel)
	if sub == nil {
		h.fail(c, req.ID, &Error{CodeNotSubscribed, "not subscribed to " + req.Channel})
		return
	}
	sub.Unsubscribe()
	h.held.remove(c.Value.s, req.Channel)
	h.reply(c, req.ID, struct{}{})
}

func (h *Handler) publish(c *server.Conn[Session], req *Request) {
	if !h.checkChannel(c, req) {
		return
	}
	o, err := h.hub.Namespace(req.Channel)
	if err != nil {
		h.fail(c, req.ID, errorFor(err))
		return
	}
	switch o.Publish {
	case pubsub.PublishNone:
		h.fail(c, req.ID, &Error{CodeForbidden, "clients may not publish to " + req.Channel})
		return
	case pubsub.PublishSubscribers:
		if !c.Value.s.subscribed(req.Channel) {
			h.fail(c, req.ID, &Error{CodeForbidden, "subscribe to " + req.Channel + " before publishing"})
			return
		}
	}
	if len(req.Data) == 0 {
		h.fail(c, req.ID, &Error{CodeBadRequest, "publish needs data"})
		return
	}
	if len(req.Data) > h.cfg.MaxDataBytes {
		h.fail(c, req.ID, &Error{CodeTooLarge, fmt.Sprintf("data over %d bytes", h.cfg.MaxDataBytes)})
		return
	}
	if !validKey(req.IdempotencyKey) {
		h.fail(c, req.ID, &Error{CodeBadRequest, errBadKey})
		return
	}
	if !h.publishProxied(c, req) {
		h.publishNow(c, req, req.Data, false)
	}
}

func (h *Handler) presence(c *server.Conn[Session], req *Request) {
	if !h.checkChannel(c, req) {
		return
	}
	p, err := h.hub.Presence(context.Background(), req.Channel)
	if err != nil {
		h.fail(c, req.ID, errorFor(err))
		return
	}
	h.reply(c, req.ID, PresenceResult{Channel: req.Channel, Count: p.Count, Connections: p.Connections, Clients: p.Clients})
}

// presenceStats counts presence without listing it: cheap on big channels.
func (h *Handler) presenceStats(c *server.Conn[Session], req *Request) {
	if !h.checkChannel(c, req) {
		return
	}
	st, err := h.hub.PresenceStats(context.Background(), req.Channel)
	if err != nil {
		h.fail(c, req.ID, errorFor(err))
		return
	}
	h.reply(c, req.ID, PresenceStatsResult{Channel: req.Channel, Count: st.Count, Connections: st.Connections})
}

// history reads a channel's kept publications, like POST /api/history.
func (h *Handler) history(c *server.Conn[Session], req *Request) {
	if !h.checkChannel(c, req) {
		return
	}
	res, e := readHistory(context.Background(), h.hub.Broker(), req.Channel, req.Limit, req.Since)
	if e != nil {
		h.fail(c, req.ID, &e.Error)
		return
	}
	h.reply(c, req.ID, res)
}

func (h *Handler) reply(c *server.Conn[Session], id json.RawMessage, result any) {
	h.send(c, Reply{ID: id, Result: result})
}

// fail replies an error of wsd's and counts it by code.
func (h *Handler) fail(c *server.Conn[Session], id json.RawMessage, e *Error) {
	h.errors[codeIndex(e.Code)].Add(1)
	h.send(c, Reply{ID: id, Error: e})
}

// send queues a reply. Safe from any goroutine (proxied requests answer
// off the callbacks).
func (h *Handler) send(c *server.Conn[Session], r Reply) {
	h.sendJSON(c, r) // decoded backend answers marshal like our own types
}

// Stats are the handler's counters since New.
type Stats struct {
	Requests       uint64            // requests handled (after the rate limit)
	RateLimited    uint64            // connections closed with 1008 for their message rate
	AuthRejected   uint64            // upgrades refused with 401 (missing or bad token)
	OriginRejected uint64            // upgrades refused with 403 (Origin)
	Errors         map[string]uint64 // error replies by code (codes with none are absent)
	RefreshNotices uint64            // refresh notices pushed before a token's exp
	Refreshes      uint64            // refresh ops that brought a valid token
	TokenExpired   uint64            // connections closed with CloseTokenExpired
}

// Stats returns the handler's counters. Safe from any goroutine.
func (h *Handler) Stats() Stats {
	st := Stats{Requests: h.requests.Load(), RateLimited: h.rateLimited.Load(),
		AuthRejected: h.authRejected.Load(), OriginRejected: h.originRejected.Load(), Errors: map[string]uint64{},
		RefreshNotices: h.refreshNotices.Load(), Refreshes: h.refreshes.Load(), TokenExpired: h.tokenExpired.Load()}
	codes := allCodes()
	for i, code := range append(codes[:], otherCodes) {
		if n := h.errors[i].Load(); n > 0 {
			st.Errors[code] = n
		}
	}
	return st
}
