package wsproto

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/wsdhq/wsd/pubsub"
)

// PubSub is what the HTTP API needs of a hub; every pubsub.Hub[F] has it.
type PubSub interface {
	PublishWith(ctx context.Context, channel string, data []byte, p pubsub.PublishParams) (pubsub.StreamPosition, error)
	Channels() []pubsub.ChannelInfo
	Presence(ctx context.Context, channel string) (pubsub.Presence, error)
	Namespace(channel string) (pubsub.NamespaceOptions, error)
	Broker() pubsub.Broker
}

// Users is what the API needs of the /ws handler to act on connected
// users; *Handler has it.
type Users interface {
	DisconnectUser(user string, retry time.Duration) int
	Connections() (conns, clients int)
}

// APIConfig configures the HTTP API.
type APIConfig struct {
	// Key is the API key, sent as "Authorization: apikey <key>". Empty:
	// the API is off and answers 403 to everything.
	Key string
	// MaxDataBytes bounds a publication's data; default 64 KiB (413 past
	// it).
	MaxDataBytes int
	// Users, if set, enables disconnect and the connection counts of info
	// (the /ws handler of this node).
	Users Users
}

// Limits of one API request.
const (
	maxAPIBody     = 1 << 20 // a request body (a batch); the port allows no more
	maxAPIChannels = 1000    // channels of one publish
	maxAPIBatch    = 1000    // commands of one batch
	maxAPIHistory  = 1000    // publications one history answer returns
	maxAPIRetry    = 3600    // seconds of reconnect advice
)

// API is the HTTP API for backends, documented with examples in
// docs/api.md:
//
//	POST /api/publish     {"channel":"news","data":...} or {"channels":[...],"data":...}
//	POST /api/batch       {"commands":[{"method":"publish","params":{...}},...]}
//	POST /api/history     {"channel":"news","limit":10} or {"channel":"news","since":{...}}
//	POST /api/disconnect  {"user":"alice","reconnect_after":2.5}
//	POST /api/subscribe   {"user":"alice","channel":"news"}   (and /api/unsubscribe)
//	GET  /api/presence?channel=chat   (or POST {"channel":"chat"})
//	GET  /api/channels, GET /api/info (or POST {})
//
// Every endpoint needs "Authorization: apikey <key>": 403 when no key is
// configured, 401 when it is missing or wrong. Errors are JSON:
// {"error":{"code":"...","message":"..."}}. ServeHTTP routes by the last
// path element, so the API may be mounted at "/api/" or anywhere else.
// Safe for concurrent use.
type API struct {
	hub     PubSub
	users   Users
	key     []byte
	maxData int
	cmds    map[string]command

	requests, published, rejected atomic.Uint64
}

// command runs one API method on its JSON params (nil: none given).
type command func(ctx context.Context, params json.RawMessage) (any, *apiError)

// apiError is an Error with the HTTP status it is answered with.
type apiError struct {
	status int
	Error
}

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status, Error{code, fmt.Sprintf(format, args...)}}
}

// NewAPI returns the HTTP API on hub.
func NewAPI(hub PubSub, cfg APIConfig) *API {
	if cfg.MaxDataBytes <= 0 {
		cfg.MaxDataBytes = DefaultMaxDataBytes
	}
	a := &API{hub: hub, users: cfg.Users, key: []byte(cfg.Key), maxData: cfg.MaxDataBytes}
	a.cmds = map[string]command{
		"publish": a.publish, "history": a.history, "presence": a.presence,
		"channels": a.channels, "info": a.info, "disconnect": a.disconnect,
		"subscribe": a.subscribeUser, "unsubscribe": a.unsubscribeUser,
	}
	return a
}

// getOK are the methods that may also be called with GET (no body).
var getOK = map[string]bool{"channels": true, "info": true, "presence": true}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:]
	a.endpoint(name, w, r)
}

// Publish is POST /api/publish, for routers that mount endpoints one by one.
func (a *API) Publish() http.Handler { return a.single("publish") }

// Channels is GET /api/channels: this node's channels with subscribers.
func (a *API) Channels() http.Handler { return a.single("channels") }

// Presence is GET /api/presence?channel=NAME.
func (a *API) Presence() http.Handler { return a.single("presence") }

func (a *API) single(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { a.endpoint(name, w, r) })
}

// endpoint checks the key and the method, reads the params and runs name.
func (a *API) endpoint(name string, w http.ResponseWriter, r *http.Request) {
	a.requests.Add(1)
	if e := a.auth(w, r); e != nil {
		writeError(w, e)
		return
	}
	cmd := a.cmds[name]
	if cmd == nil && name != "batch" {
		writeError(w, errf(http.StatusNotFound, CodeNotFound, "no API endpoint at %s (publish, batch, history, presence, channels, info, disconnect)", r.URL.Path))
		return
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	if r.Method != http.MethodPost && !(get && getOK[name]) {
		allow := "POST"
		if getOK[name] {
			allow = "GET, POST"
		}
		w.Header().Set("Allow", allow)
		writeError(w, errf(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "use %s", allow))
		return
	}
	var params json.RawMessage
	if get {
		if ch := r.URL.Query().Get("channel"); ch != "" {
			params, _ = json.Marshal(map[string]string{"channel": ch})
		}
	} else {
		var e *apiError
		if params, e = readBody(w, r); e != nil {
			writeError(w, e)
			return
		}
	}
	if name == "batch" {
		res, e := a.batch(r.Context(), params)
		answer(w, res, e)
		return
	}
	res, e := cmd(r.Context(), params)
	answer(w, res, e)
}

// auth checks the API key; nil when it is right.
func (a *API) auth(w http.ResponseWriter, r *http.Request) *apiError {
	if len(a.key) == 0 {
		a.rejected.Add(1)
		return errf(http.StatusForbidden, CodeAPIDisabled, "the HTTP API is off: no api_key is configured")
	}
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "apikey") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), a.key) != 1 {
		a.rejected.Add(1)
		w.Header().Set("WWW-Authenticate", "apikey")
		return errf(http.StatusUnauthorized, CodeUnauthorized, "missing or wrong API key (send Authorization: apikey KEY)")
	}
	return nil
}

// readBody reads a JSON object body of at most maxAPIBody bytes; an empty
// body is no params.
func readBody(w http.ResponseWriter, r *http.Request) (json.RawMessage, *apiError) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, errf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body over %d bytes", maxAPIBody)
		}
		return nil, errf(http.StatusBadRequest, CodeBadRequest, "reading the body: %v", err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil, nil
	}
	if !json.Valid(b) || strings.TrimSpace(string(b))[0] != '{' {
		return nil, errf(http.StatusBadRequest, CodeBadRequest, "the body is not a JSON object")
	}
	return b, nil
}

// decode reads params into v, refusing unknown fields (a typo must not be
// ignored silently).
func decode(params json.RawMessage, v any) *apiError {
	if params == nil {
		return nil
	}
	dec := json.NewDecoder(strings.NewReader(string(params)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errf(http.StatusBadRequest, CodeBadRequest, "invalid params: %v", err)
	}
	return nil
}

func answer(w http.ResponseWriter, res any, e *apiError) {
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// PublishResults answers a publish to several channels: one entry per
// channel, in the order given.
type PublishResults struct {
	Results []ChannelPublishResult `json:"results"`
}

// ChannelPublishResult is one channel's outcome in PublishResults.
type ChannelPublishResult struct {
	Channel string `json:"channel"`
	Offset  uint64 `json:"offset,omitempty"`
	Epoch   string `json:"epoch,omitempty"`
	Error   *Error `json:"error,omitempty"`
}

// publish is {"channel":C,"data":D} → PublishResult, or
// {"channels":[...],"data":D} → PublishResults. "data_b64" (standard
// base64) instead of "data" makes a binary publication of the bytes.
func (a *API) publish(ctx context.Context, params json.RawMessage) (any, *apiError) {
	var p struct {
		Channel  string          `json:"channel"`
		Channels []string        `json:"channels"`
		Data     json.RawMessage `json:"data"`
		Key      string          `json:"idempotency_key"`
		DataB64  []byte          `json:"data_b64"`
	}
	if e := decode(params, &p); e != nil {
		return nil, e
	}
	if !validKey(p.Key) {
		return nil, errf(http.StatusBadRequest, CodeBadRequest, errBadKey)
	}
	if (p.Channel == "") == (len(p.Channels) == 0) || len(p.Data) == 0 && len(p.DataB64) == 0 {
		return nil, errf(http.StatusBadRequest, CodeBadRequest, `publish needs "data" and one of "channel" or "channels"`)
	}
	if len(p.Data) > 0 && len(p.DataB64) > 0 {
		return nil, errf(http.StatusBadRequest, CodeBadRequest, `publish takes "data" or "data_b64", not both`)
	}
	data, pp := []byte(p.Data), pubsub.PublishParams{IdempotencyKey: p.Key, Binary: len(p.DataB64) > 0}
	if pp.Binary {
		data = p.DataB64
	}
	if len(data) > a.maxData {
		return nil, errf(http.StatusRequestEntityTooLarge, CodeTooLarge, "data over %d bytes", a.maxData)
	}
	if p.Channel != "" {
		pos, err := a.hub.PublishWith(ctx, p.Channel, data, pp)
		if err != nil {
			return nil, brokerError(err)
		}
		a.published.Add(1)
		return PublishResult{Offset: pos.Offset, Epoch: pos.Epoch}, nil
	}
	if len(p.Channels) > maxAPIChannels {
		return nil, errf(http.StatusBadRequest, CodeBadRequest, "over %d channels", maxAPIChannels)
	}
	out := PublishResults{Results: make([]ChannelPublishResult, len(p.Channels))}
	for i, ch := range p.Channels {
		out.Results[i].Channel = ch
		pos, err := a.hub.PublishWith(ctx, ch, data, pp)
		if err != nil {
			out.Results[i].Error = &brokerError(err).Error
			continue
		}
		a.published.Add(1)
		out.Results[i].Offset, out.Results[i].Epoch = pos.Offset, pos.Epoch
	}
	return out, nil
}

// brokerError maps a hub error to its answer: the caller's fault (400)
// unless the broker failed (500).
func brokerError(err error) *apiError {
	e := errorFor(err)
	status := http.StatusBadRequest
	if e.Code == CodeInternal {
		status = http.StatusInternalServerError
	}
	return &apiError{status, *e}
}

// HistoryResult answers history: the publications, oldest first, and the
// channel's latest position.
type HistoryResult struct {
	Publications []HistoryPublication `json:"publications"`
	Offset       uint64               `json:"offset"`
	Epoch        string               `json:"epoch"`
}

// HistoryPublication is one kept publication: its data in Data, or, for
// a binary publication, in DataB64 (standard base64 in JSON).
type HistoryPublication struct {
	Offset  uint64          `json:"offset"`
	Data    json.RawMessage `json:"data,omitempty"`
	DataB64 []byte          `json:"data_b64,omitempty"`
}

// history is {"channel":C,"limit":N} (the newest N) or with "since":
// {"offset":O,"epoch":E} (the oldest N after it; none if the epoch is not
// the stream's). limit defaults to and is capped at 1000.
func (a *API) history(ctx context.Context, params json.RawMessage) (any, *apiError) {
	var p struct {
		Channel string                 `json:"channel"`
		Limit   *int                   `json:"limit"`
		Since   *pubsub.StreamPosition `json:"since"`
	}
	if e := decode(params, &p); e != nil {
		return nil, e
	}
	if p.Channel == "" {
		return nil, errf(http.StatusBadRequest, CodeBadRequest, `history needs "channel"`)
	}
	return readHistory(ctx, a.hub.Broker(), p.Channel, p.Limit, p.Since)
}

// readHistory is history's read, for the API and the /ws op: limit nil
// means maxAPIHistory.
func readHistory(ctx context.Context, b pubsub.Broker, channel string, limit *int, since *pubsub.StreamPosition) (HistoryResult, *apiError) {
	if !pubsub.ValidChannel(channel) {
		return HistoryResult{}, brokerError(pubsub.ErrBadChannel)
	}
	n := maxAPIHistory
	if limit != nil {
		if *limit < 0 || *limit > maxAPIHistory {
			return HistoryResult{}, errf(http.StatusBadRequest, CodeBadRequest, "limit must be 0..%d", maxAPIHistory)
		}
		n = *limit
	}
	pubs, pos, err := b.History(ctx, channel, pubsub.HistoryOptions{Since: since, Limit: n})
	if err != nil {
		return HistoryResult{}, brokerError(err)
	}
	out := HistoryResult{Publications: make([]HistoryPublication, len(pubs)), Offset: pos.Offset, Epoch: pos.Epoch}
	for i, pb := range pubs {
		out.Publications[i] = HistoryPublication{Offset: pb.Offset, Data: pb.Data}
		if pb.Binary {
			out.Publications[i] = HistoryPublication{Offset: pb.Offset, DataB64: pb.Data}
		}
	}
	return out, nil
}

// presence is {"channel":C} → PresenceResult.
func (a *API) presence(ctx context.Context, params json.RawMessage) (any, *apiError) {
	var p struct {
		Channel string `json:"channel"`
	}
	if e := decode(params, &p); e != nil {
		return nil, e
	}
	if p.Channel == "" {
		return nil, errf(http.StatusBadRequest, CodeBadRequest, "the channel query parameter (or param) is required")
	}
	pr, err := a.hub.Presence(ctx, p.Channel)
	if err != nil {
		return nil, brokerError(err) // 500 e.g. when the other nodes' presence is unreadable
	}
	return PresenceResult{Channel: p.Channel, Count: pr.Count, Connections: pr.Connections, Clients: pr.Clients}, nil
}

// channels is this node's channels with subscribers.
func (a *API) channels(_ context.Context, params json.RawMessage) (any, *apiError) {
	if e := decode(params, &struct{}{}); e != nil {
		return nil, e
	}
	return struct {
		Channels []pubsub.ChannelInfo `json:"channels"`
	}{a.hub.Channels()}, nil
}

// InfoResult answers info: this node's counts.
type InfoResult struct {
	Connections int `json:"connections"` // /ws connections
	Clients     int `json:"clients"`     // distinct client IDs among them
	Channels    int `json:"channels"`    // channels with subscribers here
	Subscribers int `json:"subscribers"` // subscriptions over all channels
}

func (a *API) info(_ context.Context, params json.RawMessage) (any, *apiError) {
	if e := decode(params, &struct{}{}); e != nil {
		return nil, e
	}
	var out InfoResult
	if a.users != nil {
		out.Connections, out.Clients = a.users.Connections()
	}
	chs := a.hub.Channels()
	out.Channels = len(chs)
	for _, c := range chs {
		out.Subscribers += c.Subscribers
	}
	return out, nil
}

// DisconnectResult answers disconnect.
type DisconnectResult struct {
	Disconnected int `json:"disconnected"` // connections closed on this node (the other nodes close theirs)
}

// disconnect is {"user":U} (close 4001) or with "reconnect_after":S
// seconds (close 1012 "disconnected; retry=S").
func (a *API) disconnect(_ context.Context, params json.RawMessage) (any, *apiError) {
	var p struct {
		User           string   `json:"user"`
		ReconnectAfter *float64 `json:"reconnect_after"`
	}
	if e := decode(params, &p); e != nil {
		return nil, e
	}
	if p.User == "" {
		return nil, errf(http.StatusBadRequest, CodeBadRequest, `disconnect needs "user"`)
	}
	var retry time.Duration
	if p.ReconnectAfter != nil {
		if !(*p.ReconnectAfter > 0 && *p.ReconnectAfter <= maxAPIRetry) {
			return nil, errf(http.StatusBadRequest, CodeBadRequest, "reconnect_after must be over 0 and at most %d seconds", maxAPIRetry)
		}
		retry = max(time.Duration(*p.ReconnectAfter*float64(time.Second)), time.Millisecond)
	}
	if a.users == nil {
		return nil, errf(http.StatusNotImplemented, CodeNotFound, "disconnect needs the /ws handler (APIConfig.Users)")
	}
	return DisconnectResult{Disconnected: a.users.DisconnectUser(p.User, retry)}, nil
}

// subscribeUser is {"user":U,"channel":C}: a server-side subscription,
// kept by the broker until unsubscribe, for every connection of U on every
// node, now and when they reconnect.
func (a *API) subscribeUser(ctx context.Context, params json.RawMessage) (any, *apiError) {
	return a.setUserSub(ctx, params, true)
}

// unsubscribeUser is {"user":U,"channel":C}: the server-side subscription
// ends, and every connection of U leaves C.
func (a *API) unsubscribeUser(ctx context.Context, params json.RawMessage) (any, *apiError) {
	return a.setUserSub(ctx, params, false)
}

func (a *API) setUserSub(ctx context.Context, params json.RawMessage, on bool) (any, *apiError) {
	var p struct {
		User    string `json:"user"`
		Channel string `json:"channel"`
	}
	if e := decode(params, &p); e != nil {
		return nil, e
	}
	if p.User == "" || p.Channel == "" {
		return nil, errf(http.StatusBadRequest, CodeBadRequest, `needs "user" and "channel"`)
	}
	if _, err := a.hub.Namespace(p.Channel); err != nil {
		return nil, brokerError(err)
	}
	us, ok := a.hub.Broker().(pubsub.UserSubscriptions)
	if !ok {
		return nil, errf(http.StatusNotImplemented, CodeNotFound, "the broker keeps no server-side subscriptions")
	}
	var err error
	if on {
		err = us.SubscribeUser(ctx, p.User, p.Channel)
	} else {
		err = us.UnsubscribeUser(ctx, p.User, p.Channel)
	}
	if err != nil {
		return nil, brokerError(err)
	}
	return struct{}{}, nil
}

// BatchResult answers batch: one reply per command, in order, each with
// its result or its error (a failed command does not stop the others).
type BatchResult struct {
	Replies []Reply `json:"replies"`
}

// batch is {"commands":[{"method":M,"params":{...}},...]}.
func (a *API) batch(ctx context.Context, params json.RawMessage) (any, *apiError) {
	var p struct {
		Commands []struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		} `json:"commands"`
	}
	if e := decode(params, &p); e != nil {
		return nil, e
	}
	if len(p.Commands) == 0 || len(p.Commands) > maxAPIBatch {
		return nil, errf(http.StatusBadRequest, CodeBadRequest, `batch needs "commands": 1 to %d of them`, maxAPIBatch)
	}
	out := BatchResult{Replies: make([]Reply, len(p.Commands))}
	for i, c := range p.Commands {
		cmd := a.cmds[c.Method]
		if cmd == nil {
			out.Replies[i].Error = &Error{CodeUnknownOp, fmt.Sprintf("unknown method %q", c.Method)}
			continue
		}
		if string(c.Params) == "null" {
			c.Params = nil
		}
		res, e := cmd(ctx, c.Params)
		if e != nil {
			out.Replies[i].Error = &e.Error
			continue
		}
		out.Replies[i].Result = res
	}
	return out, nil
}

// APIStats are the HTTP API's counters.
type APIStats struct {
	Requests  uint64 // all requests
	Published uint64 // successful publications
	Rejected  uint64 // refused for the API key (401, 403)
}

// Stats returns the API's counters. Safe from any goroutine.
func (a *API) Stats() APIStats {
	return APIStats{Requests: a.requests.Load(), Published: a.published.Load(), Rejected: a.rejected.Load()}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encoding failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, Reply{Error: &e.Error})
}
