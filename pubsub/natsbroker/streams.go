package natsbroker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
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

// findOrCreate finds the stream bound to ns's subjects, creating it when
// there is none. Two nodes creating at once: one wins, the other finds
// its stream on the next round.
func (b *Broker) findOrCreate(ctx context.Context, ns string) (*nsStream, error) {
	lim := b.limits(ns)
	subject := b.opts.SubjectPrefix + "." + nsToken(ns) + "."
	for range 3 {
		name, err := b.js.StreamNameBySubject(ctx, subject+"*")
		switch {
		case err == nil:
			return b.adopt(ctx, ns, name, subject, lim)
		case !errors.Is(err, jetstream.ErrStreamNotFound):
			return nil, fmt.Errorf("looking up the stream of namespace %q: %w", ns, err)
		}
		s := &nsStream{ns: ns, epoch: b.opts.NewEpoch(), subject: subject, size: lim.HistorySize, ttl: lim.HistoryTTL}
		s.name = b.streamName(ns, s.epoch)
		s.h, err = b.js.CreateStream(ctx, b.streamConfig(s))
		switch code := apiCode(err); {
		case err == nil:
			b.log.Info("JetStream stream created", "stream", s.name, "namespace", ns)
			return s, nil
		case code == jetstream.JSErrCodeStreamNameInUse || code == codeSubjectsOverlap:
			continue // another node created it first: adopt that one
		default:
			return nil, fmt.Errorf("creating stream %s: %w", s.name, err)
		}
	}
	return nil, fmt.Errorf("namespace %q: its stream keeps disappearing while being created", ns)
}

// codeSubjectsOverlap: "subjects overlap with an existing stream".
const codeSubjectsOverlap jetstream.ErrorCode = 10065

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
