package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsdhq/wsd/pubsub"
)

// Options configure a Broker. Zero values take the defaults given.
type Options struct {
	// URLs of the NATS servers (nats://, tls://); several may be given, the
	// client picks one and moves to another when it is lost. Required.
	URLs []string
	// Name is the connection's name as NATS monitoring shows it.
	Name string

	// Authentication: a .creds file (JWT + nkey), user and password, or a
	// token; at most one of them is usually set.
	CredsFile, User, Password, Token string
	// TLS: CA file to trust, client certificate and key (mutual TLS).
	TLSCA, TLSCert, TLSKey string

	// Namespaces give each namespace's history size and TTL (the stream's
	// limits); a namespace not listed takes the default namespace's ("").
	// The limits in pubsub.PublishOptions are ignored: a stream is shared
	// by every node, so its limits are configuration, not per call.
	Namespaces pubsub.Namespaces

	// StreamPrefix starts every stream's name; default "WSD".
	StreamPrefix string
	// SubjectPrefix is the first token of every subject; default "wsd".
	SubjectPrefix string
	// Replicas of each stream (1, 3 or 5 on a NATS cluster); default 1.
	Replicas int
	// MemoryStorage keeps streams in memory instead of on disk (history
	// then does not survive a NATS restart). Default false.
	MemoryStorage bool

	// Timeout bounds each call that has no deadline of its own; default 5 s.
	Timeout time.Duration
	// ConnectTimeout bounds the first connection; default 5 s.
	ConnectTimeout time.Duration
	// Logger gets connection changes and background errors; default none.
	Logger *slog.Logger
	// NewEpoch makes a new stream's epoch (letters and digits only, no
	// '_'); default 10 random characters.
	NewEpoch func() string

	// NodeID names this node in the cluster's presence (letters, digits,
	// '-' and '_'); default random, a new one per Connect, so a restarted
	// node never takes over a dead one's entries.
	NodeID string
	// PresenceTTL is how long a node's presence entries outlive it when it
	// dies without cleaning up (each node rewrites its entries every
	// PresenceTTL/3); default 30 s. The first node to create the presence
	// bucket sets it: the others use the bucket's.
	PresenceTTL time.Duration
	// PresenceMaxClients bounds the client IDs one node lists per channel
	// (the others are counted, not listed); default 1000.
	PresenceMaxClients int
}

// Errors.
var (
	// ErrUnavailable: the NATS connection is down (reconnecting or closed).
	ErrUnavailable = errors.New("natsbroker: NATS unavailable")
	// ErrContention: publishPublishAttempts attempts all lost the race for
	// the channel's next offset to other publishers.
	ErrContention = errors.New("natsbroker: too many concurrent publishers on one channel")
	// ErrClosed: Close was called.
	ErrClosed = errors.New("natsbroker: broker closed")
)

// ConnectError is a failure to reach NATS or JetStream at start.
type ConnectError struct {
	URLs []string
	Err  error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("natsbroker: cannot use NATS JetStream at %s: %v", strings.Join(e.URLs, ","), e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Broker is a pubsub.Broker on NATS JetStream. Create it with Connect;
// Close it when done. All methods are safe for concurrent use.
type Broker struct {
	opts Options
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger

	handler atomic.Pointer[func(pubsub.Publication)]

	lookupMu  sync.Mutex         // serialises stream lookups and creations
	reg       jetstream.KeyValue // the stream registry; under lookupMu
	streamsMu sync.RWMutex
	streams   map[string]*nsStream // namespace → its current stream

	shards [numShards]shard // per-channel publish order and last-position cache

	subsMu sync.Mutex
	subs   map[string]*liveSub // subscribed channels
	closed bool                // under subsMu

	state   stateBox
	cleanup sync.WaitGroup // background consumer deletions

	presence  *presence  // cluster presence (PresenceStore)
	joinLeave *joinLeave // join/leave events between nodes (JoinLeaveBus)
	users     userSubs   // server-side subscriptions (usersubs.go)
}

var _ pubsub.Broker = (*Broker)(nil)

// Connect connects to NATS, checks that JetStream answers, and returns the
// broker. A NATS that cannot be reached within ConnectTimeout, or without
// JetStream, is a *ConnectError.
func Connect(ctx context.Context, opts Options) (*Broker, error) {
	opts = opts.withDefaults()
	if len(opts.URLs) == 0 {
		return nil, &ConnectError{Err: errors.New("no URL given")}
	}
	if !validNodeID(opts.NodeID) {
		return nil, &ConnectError{URLs: opts.URLs, Err: fmt.Errorf("node ID %q: want letters, digits, '-' and '_'", opts.NodeID)}
	}
	b := &Broker{opts: opts, log: opts.Logger, streams: map[string]*nsStream{}, subs: map[string]*liveSub{}}
	for i := range b.shards {
		b.shards[i].last = map[string]lastPos{}
	}
	b.presence = newPresence(b)
	b.joinLeave = newJoinLeave(b)
	nopts, err := b.natsOptions()
	if err != nil {
		return nil, &ConnectError{URLs: opts.URLs, Err: err}
	}
	nc, err := nats.Connect(strings.Join(opts.URLs, ","), nopts...)
	if err != nil {
		return nil, &ConnectError{URLs: opts.URLs, Err: err}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, &ConnectError{URLs: opts.URLs, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.ConnectTimeout)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		nc.Close()
		return nil, &ConnectError{URLs: opts.URLs, Err: fmt.Errorf("JetStream: %w", err)}
	}
	b.nc, b.js = nc, js
	b.state.set(true, "connected", nc.ConnectedUrlRedacted(), "")
	return b, nil
}

func (o Options) withDefaults() Options {
	if o.StreamPrefix == "" {
		o.StreamPrefix = "WSD"
	}
	if o.SubjectPrefix == "" {
		o.SubjectPrefix = "wsd"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.NewEpoch == nil {
		o.NewEpoch = randomEpoch
	}
	if o.Namespaces == nil {
		o.Namespaces = pubsub.Namespaces{}
	}
	if o.NodeID == "" {
		o.NodeID = randomEpoch()
	}
	if o.PresenceTTL <= 0 {
		o.PresenceTTL = defaultPresenceTTL
	}
	if o.PresenceMaxClients <= 0 {
		o.PresenceMaxClients = defaultPresenceMaxClients
	}
	return o
}

func (b *Broker) natsOptions() ([]nats.Option, error) {
	o := b.opts
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.Timeout(o.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(500 * time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			msg := ""
			if err != nil {
				msg = err.Error()
			}
			b.state.set(false, "reconnecting", "", msg)
			b.log.Warn("NATS connection lost", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.state.set(true, "connected", nc.ConnectedUrlRedacted(), "")
			b.log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { b.state.set(false, "closed", "", "") }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			b.log.Warn("NATS error", "err", err)
		}),
	}
	if o.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(o.CredsFile))
	}
	if o.User != "" || o.Password != "" {
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	if o.Token != "" {
		opts = append(opts, nats.Token(o.Token))
	}
	if o.TLSCA != "" {
		opts = append(opts, nats.RootCAs(o.TLSCA))
	}
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return nil, errors.New("a TLS client certificate needs both a cert and a key file")
	}
	if o.TLSCert != "" {
		opts = append(opts, nats.ClientCert(o.TLSCert, o.TLSKey))
	}
	return opts, nil
}

// SetHandler implements pubsub.Broker.
func (b *Broker) SetHandler(h func(pubsub.Publication)) { b.handler.Store(&h) }

// Close stops every live consumer, deletes this node's presence entries
// and closes the NATS connection. Later calls do nothing. Safe from any
// goroutine.
func (b *Broker) Close() {
	b.subsMu.Lock()
	if b.closed {
		b.subsMu.Unlock()
		return
	}
	b.closed = true
	subs := b.subs
	b.subs = map[string]*liveSub{}
	b.subsMu.Unlock()
	for _, s := range subs {
		s.stop()()
	}
	b.cleanup.Wait()
	b.users.stop()
	b.presence.close()
	b.joinLeave.close(b.presence.abandon.Load())
	b.nc.Close()
}

// usable fails fast when NATS is not connected, and adds the default
// timeout to ctx when it has no deadline. Call cancel when done.
func (b *Broker) usable(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if err := ctx.Err(); err != nil {
		return ctx, func() {}, err
	}
	if b.nc.IsClosed() {
		return ctx, func() {}, ErrClosed
	}
	if !b.nc.IsConnected() {
		return ctx, func() {}, ErrUnavailable
	}
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, b.opts.Timeout)
	return ctx, cancel, nil
}

// unavailable turns a request's failure into ErrUnavailable when the
// connection went down meanwhile, so callers see one error for "NATS lost".
func (b *Broker) unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	if !b.nc.IsConnected() || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionReconnecting) {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// State is the broker's connection as /healthz reports it.
type State struct {
	Connected bool      `json:"connected"`
	Status    string    `json:"status"`          // "connected", "reconnecting" or "closed"
	URL       string    `json:"url,omitempty"`   // the server connected to
	Error     string    `json:"error,omitempty"` // why it was lost
	Since     time.Time `json:"since"`           // of the last change
}

// State returns the connection's state. Safe from any goroutine.
func (b *Broker) State() State { return b.state.get() }

type stateBox struct {
	mu sync.Mutex
	s  State
}

func (s *stateBox) set(connected bool, status, url, errText string) {
	s.mu.Lock()
	s.s = State{Connected: connected, Status: status, URL: url, Error: errText, Since: time.Now()}
	s.mu.Unlock()
}

func (s *stateBox) get() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.s
}

// apiCode returns the JetStream API error code in err, or 0.
func apiCode(err error) jetstream.ErrorCode {
	var je jetstream.JetStreamError
	if errors.As(err, &je) && je.APIError() != nil {
		return je.APIError().ErrorCode
	}
	return 0
}
