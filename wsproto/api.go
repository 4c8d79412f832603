package wsproto

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/wsdhq/wsd/pubsub"
)

// PubSub is what the HTTP API needs of a hub; every pubsub.Hub[F] has it.
type PubSub interface {
	Publish(ctx context.Context, channel string, data []byte) (pubsub.StreamPosition, error)
	Channels() []pubsub.ChannelInfo
	Presence(ctx context.Context, channel string) (pubsub.Presence, error)
}

// APIConfig configures the HTTP API.
type APIConfig struct {
	// Key is the API key, sent as "Authorization: apikey <key>". Empty:
	// the API is off and answers 403 to everything.
	Key string
	// MaxDataBytes bounds a publication's data; default 64 KiB (413 past
	// it).
	MaxDataBytes int
}

// API is the HTTP API for backends:
//
//	POST /api/publish   {"channel":"news","data":...} → {"offset":42,"epoch":"e1"}
//	GET  /api/channels  → {"channels":[{"channel":"news","subscribers":3}]}
//	GET  /api/presence?channel=chat → {"channel":"chat","count":2,"connections":3,"clients":[...]}
//
// Every endpoint needs "Authorization: apikey <key>": 403 when no key is
// configured, 401 when it is missing or wrong. Errors are JSON:
// {"error":{"code":"...","message":"..."}}. ServeHTTP routes by the last
// path element (publish, channels, presence), so the API may be mounted at
// "/api/" or anywhere else; Publish, Channels and Presence return the
// single endpoints for routers that mount them one by one.
type API struct {
	hub     PubSub
	key     []byte
	maxData int

	requests, published, rejected atomic.Uint64
}

// NewAPI returns the HTTP API on hub.
func NewAPI(hub PubSub, cfg APIConfig) *API {
	if cfg.MaxDataBytes <= 0 {
		cfg.MaxDataBytes = DefaultMaxDataBytes
	}
	return &API{hub: hub, key: []byte(cfg.Key), maxData: cfg.MaxDataBytes}
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:] {
	case "publish":
		a.Publish().ServeHTTP(w, r)
	case "channels":
		a.Channels().ServeHTTP(w, r)
	case "presence":
		a.Presence().ServeHTTP(w, r)
	default:
		a.requests.Add(1)
		apiError(w, http.StatusNotFound, CodeNotFound, "no API endpoint at "+r.URL.Path+" (publish, channels, presence)")
	}
}

// Publish is POST /api/publish.
func (a *API) Publish() http.Handler {
	return a.endpoint(http.MethodPost, func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		}
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, int64(a.maxData+maxEnvelope)))
		if err := dec.Decode(&body); err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				apiError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("data over %d bytes", a.maxData))
				return
			}
			apiError(w, http.StatusBadRequest, CodeBadRequest, "invalid JSON body: "+err.Error())
			return
		}
		if body.Channel == "" || len(body.Data) == 0 {
			apiError(w, http.StatusBadRequest, CodeBadRequest, `the body needs "channel" and "data"`)
			return
		}
		if len(body.Data) > a.maxData {
			apiError(w, http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("data over %d bytes", a.maxData))
			return
		}
		pos, err := a.hub.Publish(r.Context(), body.Channel, body.Data)
		if err != nil {
			e := errorFor(err)
			status := http.StatusBadRequest
			if e.Code == CodeInternal {
				status = http.StatusInternalServerError
			}
			apiError(w, status, e.Code, e.Message)
			return
		}
		a.published.Add(1)
		writeJSON(w, http.StatusOK, PublishResult{Offset: pos.Offset, Epoch: pos.Epoch})
	})
}

// Channels is GET /api/channels: this node's channels with subscribers.
func (a *API) Channels() http.Handler {
	return a.endpoint(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			Channels []pubsub.ChannelInfo `json:"channels"`
		}{a.hub.Channels()})
	})
}

// Presence is GET /api/presence?channel=NAME.
func (a *API) Presence() http.Handler {
	return a.endpoint(http.MethodGet, func(w http.ResponseWriter, r *http.Request) {
		ch := r.URL.Query().Get("channel")
		if ch == "" {
			apiError(w, http.StatusBadRequest, CodeBadRequest, "the channel query parameter is required")
			return
		}
		p, err := a.hub.Presence(r.Context(), ch)
		if err != nil {
			e := errorFor(err)
			status := http.StatusBadRequest
			if e.Code == CodeInternal {
				status = http.StatusInternalServerError // e.g. the other nodes' presence unreadable
			}
			apiError(w, status, e.Code, e.Message)
			return
		}
		writeJSON(w, http.StatusOK, PresenceResult{Channel: ch, Count: p.Count, Connections: p.Connections, Clients: p.Clients})
	})
}

// endpoint wraps f with the method and API key checks.
func (a *API) endpoint(method string, f http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		if len(a.key) == 0 {
			a.rejected.Add(1)
			apiError(w, http.StatusForbidden, CodeAPIDisabled, "the HTTP API is off: no api_key is configured")
			return
		}
		scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		if !strings.EqualFold(scheme, "apikey") || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(cred)), a.key) != 1 {
			a.rejected.Add(1)
			w.Header().Set("WWW-Authenticate", "apikey")
			apiError(w, http.StatusUnauthorized, CodeUnauthorized, "missing or wrong API key (send Authorization: apikey KEY)")
			return
		}
		if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", method)
			apiError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "use "+method)
			return
		}
		f(w, r)
	})
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

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, Reply{Error: &Error{Code: code, Message: msg}})
}
