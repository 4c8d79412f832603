package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wsdhq/wsd/pubsub"
)

// nsStream is a namespace's stream as this node knows it. Immutable: a
// refresh replaces it.
type nsStream struct {
	ns      string
	name    string // the JetStream stream
	epoch   string
	subject string        // "<prefix>.<ns token>." — add a channel token
	size    int           // HistorySize: publications History returns at most
	ttl     time.Duration // HistoryTTL: applied when reading
	h       jetstream.Stream
}

func (s *nsStream) subjectOf(channel string) string {
	return s.subject + base64.RawURLEncoding.EncodeToString([]byte(channel))
}

// Stream metadata keys (informational: what wsd set the limits from).
const (
	metaNamespace   = "wsd_namespace"
	metaHistorySize = "wsd_history_size"
	metaHistoryTTL  = "wsd_history_ttl"
)

// nsToken is the namespace's subject token: '.' (a subject separator)
// becomes '^', and the default namespace is "~"; neither character can
// appear in a namespace name, so the mapping is one to one.
func nsToken(ns string) string {
	if ns == "" {
		return "~"
	}
	return strings.ReplaceAll(ns, ".", "^")
}

func (b *Broker) limits(ns string) pubsub.NamespaceOptions {
	if o, ok := b.opts.Namespaces[ns]; ok {
		return o
	}
	return b.opts.Namespaces[""]
}

// stream returns ns's stream, looking it up (or creating it) the first
// time, or again when stale is the one cached (the caller found it gone).
func (b *Broker) stream(ctx context.Context, ns string, stale *nsStream) (*nsStream, error) {
	b.streamsMu.RLock()
	s := b.streams[ns]
	b.streamsMu.RUnlock()
	if s != nil && s != stale {
		return s, nil
	}
	b.lookupMu.Lock()
	defer b.lookupMu.Unlock()
	b.streamsMu.RLock()
	s = b.streams[ns]
	b.streamsMu.RUnlock()
	if s != nil && s != stale {
		return s, nil // another caller refreshed it meanwhile
	}
	s, err := b.findOrCreate(ctx, ns)
	if err != nil {
		return nil, b.unavailable(err)
	}
	b.streamsMu.Lock()
	b.streams[ns] = s
	b.streamsMu.Unlock()
	return s, nil
}

// findOrCreate finds ns's stream, creating it when there is none.
//
// Which stream a namespace uses is recorded in a KV bucket (the registry),
// written with compare-and-set: nats-server does not reliably refuse a
// second stream with the same subjects when two nodes create theirs at the
// same moment (v2.15.3 took both, and the nodes split the channel between
// them), but a KV create or update with an expected revision has exactly
// one winner. A node creates a stream only after winning the registry
// entry, and uses only the stream the entry names.
func (b *Broker) findOrCreate(ctx context.Context, ns string) (*nsStream, error) {
	lim := b.limits(ns)
	subject := b.opts.SubjectPrefix + "." + nsToken(ns) + "."
	reg, err := b.registry(ctx)
	if err != nil {
		return nil, err
	}
	key := registryKey(ns)
	for attempt := 0; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, err := reg.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			// Nothing registered: take a stream that holds the subjects
			// already (made before the registry), else make one.
			name, err := b.js.StreamNameBySubject(ctx, subject+"*")
			if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
				return nil, fmt.Errorf("looking up the stream of namespace %q: %w", ns, err)
			}
			if err == nil {
				if _, err := reg.Create(ctx, key, []byte(name)); err == nil {
					return b.adopt(ctx, ns, name, subject, lim)
				}
				continue
			}
			if s, err := b.createRegistered(ctx, reg, key, 0, ns, subject, lim); s != nil || err != nil {
				return s, err
			}
		case err != nil:
			return nil, fmt.Errorf("reading the stream registry for namespace %q: %w", ns, err)
		default:
			name := string(e.Value())
			if _, err := b.js.Stream(ctx, name); err == nil {
				return b.adopt(ctx, ns, name, subject, lim)
			} else if !errors.Is(err, jetstream.ErrStreamNotFound) {
				return nil, fmt.Errorf("reading stream %s: %w", name, err)
			}
			// Registered but missing: its creator may be between the
			// registry and the stream; past a grace period it is gone
			// (deleted by an operator, or its creator died) and a new one
			// replaces it.
			if attempt < registryGrace {
				sleepCtx(ctx, registryPoll)
				continue
			}
			if s, err := b.createRegistered(ctx, reg, key, e.Revision(), ns, subject, lim); s != nil || err != nil {
				return s, err
			}
		}
	}
}

// Registry timing: a registered stream that does not exist yet is waited
// for registryGrace × registryPoll (its creator is mid-way) before it is
// taken for lost.
const (
	registryGrace = 20
	registryPoll  = 50 * time.Millisecond
)

// createRegistered claims key for a new stream (revision 0: the key must
// not exist; else it must still be at revision) and creates the stream.
// It returns nil, nil when another node won the key: look again.
func (b *Broker) createRegistered(ctx context.Context, reg jetstream.KeyValue, key string, revision uint64,
	ns, subject string, lim pubsub.NamespaceOptions) (*nsStream, error) {
	s := &nsStream{ns: ns, epoch: b.opts.NewEpoch(), subject: subject, size: lim.HistorySize, ttl: lim.HistoryTTL}
	s.name = b.streamName(ns, s.epoch)
	var err error
	if revision == 0 {
		_, err = reg.Create(ctx, key, []byte(s.name))
	} else {
		_, err = reg.Update(ctx, key, []byte(s.name), revision)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) || apiCode(err) == jetstream.JSErrCodeStreamWrongLastSequence {
			return nil, nil
		}
		return nil, fmt.Errorf("registering the stream of namespace %q: %w", ns, err)
	}
	if s.h, err = b.js.CreateStream(ctx, b.streamConfig(s)); err != nil {
		return nil, fmt.Errorf("creating stream %s: %w", s.name, err)
	}
	// A creator slower than the grace period may have been replaced
	// meanwhile: then its stream is unused and goes.
	if e, err := reg.Get(ctx, key); err == nil && string(e.Value()) != s.name {
		_ = b.js.DeleteStream(ctx, s.name)
		return nil, nil
	}
	b.log.Info("JetStream stream created", "stream", s.name, "namespace", ns)
	return s, nil
}

// registry returns the bucket naming each namespace's stream, creating it
// the first time (an identical create by another node is not an error).
func (b *Broker) registry(ctx context.Context) (jetstream.KeyValue, error) {
	if b.reg != nil {
		return b.reg, nil
	}
	storage := jetstream.FileStorage
	if b.opts.MemoryStorage {
		storage = jetstream.MemoryStorage
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: b.opts.StreamPrefix + "_streams", Description: "wsd: the JetStream stream of each namespace",
		History: 1, Storage: storage, Replicas: b.opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("stream registry: %w", err)
	}
	b.reg = kv
	return kv, nil
}

// registryKey is ns as a KV key (letters and digits only).
func registryKey(ns string) string { return "ns_" + hex.EncodeToString([]byte(ns)) }

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func (b *Broker) streamName(ns, epoch string) string {
	n := ns
	if n == "" {
		n = "default"
	}
	n = strings.ReplaceAll(n, ".", "-")
	if len(n) > 64 {
		n = n[:64]
	}
	return b.opts.StreamPrefix + "_" + n + "_" + epoch
}

// adopt takes an existing stream, bringing its limits in line with this
// node's configuration.
func (b *Broker) adopt(ctx context.Context, ns, name, subject string, lim pubsub.NamespaceOptions) (*nsStream, error) {
	st, err := b.js.Stream(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", name, err)
	}
	epoch := name
	if i := strings.LastIndexByte(name, '_'); strings.HasPrefix(name, b.opts.StreamPrefix+"_") && i >= 0 {
		epoch = name[i+1:]
	}
	s := &nsStream{ns: ns, name: name, epoch: epoch, subject: subject, size: lim.HistorySize, ttl: lim.HistoryTTL, h: st}
	cfg := st.CachedInfo().Config
	want := b.streamConfig(s)
	if cfg.MaxMsgsPerSubject != want.MaxMsgsPerSubject || cfg.MaxAge != 0 || !cfg.DenyDelete || !cfg.DenyPurge ||
		cfg.Metadata[metaHistoryTTL] != want.Metadata[metaHistoryTTL] {
		cfg.MaxMsgsPerSubject, cfg.MaxAge = want.MaxMsgsPerSubject, 0
		cfg.DenyDelete, cfg.DenyPurge = true, true
		if cfg.Metadata == nil {
			cfg.Metadata = map[string]string{}
		}
		for k, v := range want.Metadata {
			cfg.Metadata[k] = v
		}
		if s.h, err = b.js.UpdateStream(ctx, cfg); err != nil {
			return nil, fmt.Errorf("updating stream %s to this node's limits: %w", name, err)
		}
		b.log.Info("JetStream stream limits updated", "stream", name, "history_size", lim.HistorySize)
	}
	return s, nil
}

// streamConfig: see the package doc (no MaxAge, at least one message per
// subject, no deletes or purges) for why offsets never restart.
func (b *Broker) streamConfig(s *nsStream) jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if b.opts.MemoryStorage {
		storage = jetstream.MemoryStorage
	}
	return jetstream.StreamConfig{
		Name:              s.name,
		Description:       fmt.Sprintf("wsd channels of namespace %q", s.ns),
		Subjects:          []string{s.subject + "*"},
		Storage:           storage,
		Replicas:          b.opts.Replicas,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: int64(max(1, s.size)),
		DenyDelete:        true,
		DenyPurge:         true,
		Duplicates:        pubsub.DedupWindow,
		Metadata: map[string]string{
			metaNamespace:   s.ns,
			metaHistorySize: strconv.Itoa(s.size),
			metaHistoryTTL:  s.ttl.String(),
		},
	}
}

// randomEpoch: 10 characters of base32 (lowercase letters and digits),
// 50 random bits — streams of one namespace are created rarely.
func randomEpoch() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	var b [10]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand documents it)
	for i := range b {
		b[i] = alphabet[b[i]%32]
	}
	return string(b[:])
}
