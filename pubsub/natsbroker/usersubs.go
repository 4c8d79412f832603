package natsbroker

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/wsdhq/wsd/pubsub"
)

// Server-side subscriptions (pubsub.UserSubscriptions) live in the KV
// bucket "<StreamPrefix>_usersubs", one key per user and channel,
// "<base64url user>.<base64url channel>", without TTL: they last until
// unsubscribed. Every node watches the whole bucket and keeps a copy in
// memory, so a connecting user's channels are read without a round trip,
// and the watch is how the other nodes hear of a change.

var _ pubsub.UserSubscriptions = (*Broker)(nil)

// userSubs is this node's copy of the bucket.
type userSubs struct {
	mu     sync.Mutex
	m      map[string]map[string]struct{} // user → channels
	kv     jetstream.KeyValue
	cancel context.CancelFunc // stops the watch
	done   chan struct{}      // closed when the watch goroutine ends
}

// WatchUserSubscriptions implements pubsub.UserSubscriptions: it opens the
// bucket (creating it the first time), loads it, and keeps watching until
// Close. f runs on the watch goroutine.
func (b *Broker) WatchUserSubscriptions(ctx context.Context, f func(user, channel string, subscribed bool)) error {
	ctx, cancel, err := b.usable(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	kv, err := b.userBucket(ctx)
	if err != nil {
		return err
	}
	wctx, stop := context.WithCancel(context.Background())
	w, err := kv.WatchAll(wctx)
	if err != nil {
		stop()
		return fmt.Errorf("server-side subscriptions: %w", err)
	}
	u := &b.users
	u.mu.Lock()
	u.kv, u.cancel, u.done = kv, stop, make(chan struct{})
	u.mu.Unlock()
	loaded := make(chan struct{})
	go u.watch(w, f, loaded)
	select {
	case <-loaded:
		return nil
	case <-ctx.Done():
		stop()
		return fmt.Errorf("server-side subscriptions: loading: %w", ctx.Err())
	}
}

func (b *Broker) userBucket(ctx context.Context) (jetstream.KeyValue, error) {
	storage := jetstream.FileStorage
	if b.opts.MemoryStorage {
		storage = jetstream.MemoryStorage
	}
	kv, err := b.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: b.opts.StreamPrefix + "_usersubs", Description: "wsd: server-side subscriptions, one key per user and channel",
		History: 1, Storage: storage, Replicas: b.opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("server-side subscriptions bucket: %w", err)
	}
	return kv, nil
}

// watch applies the bucket's entries to the copy and tells f, until the
// watch is stopped; loaded is closed once the initial values are in.
func (u *userSubs) watch(w jetstream.KeyWatcher, f func(user, channel string, subscribed bool), loaded chan struct{}) {
	defer close(u.done)
	defer func() { _ = w.Stop() }()
	initial := true
	for e := range w.Updates() {
		if e == nil {
			if initial {
				initial = false
				close(loaded)
			}
			continue
		}
		user, channel, ok := userKeyParts(e.Key())
		if !ok {
			continue // not ours
		}
		on := e.Operation() == jetstream.KeyValuePut
		if u.apply(user, channel, on) && !initial {
			f(user, channel, on)
		}
	}
}

// apply records one change and reports whether it was one.
func (u *userSubs) apply(user, channel string, on bool) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	set := u.m[user]
	if _, had := set[channel]; had == on {
		return false
	}
	if !on {
		if delete(set, channel); len(set) == 0 {
			delete(u.m, user)
		}
		return true
	}
	if u.m == nil {
		u.m = map[string]map[string]struct{}{}
	}
	if set == nil {
		set = map[string]struct{}{}
		u.m[user] = set
	}
	set[channel] = struct{}{}
	return true
}

// SubscribeUser implements pubsub.UserSubscriptions. It returns when the
// bucket has the key; the nodes' copies (this one's too) follow through
// the watch.
func (b *Broker) SubscribeUser(ctx context.Context, user, channel string) error {
	return b.setUser(ctx, user, channel, true)
}

// UnsubscribeUser implements pubsub.UserSubscriptions, like SubscribeUser.
func (b *Broker) UnsubscribeUser(ctx context.Context, user, channel string) error {
	return b.setUser(ctx, user, channel, false)
}

var errNotWatching = errors.New("natsbroker: server-side subscriptions are not loaded (WatchUserSubscriptions)")

func (b *Broker) setUser(ctx context.Context, user, channel string, on bool) error {
	if !pubsub.ValidChannel(channel) {
		return pubsub.ErrBadChannel
	}
	if user == "" {
		return errors.New("natsbroker: empty user")
	}
	b.users.mu.Lock()
	kv := b.users.kv
	b.users.mu.Unlock()
	if kv == nil {
		return errNotWatching
	}
	ctx, cancel, err := b.usable(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	key := userKey(user, channel)
	if on {
		_, err = kv.Put(ctx, key, []byte{'1'})
	} else {
		err = kv.Delete(ctx, key)
	}
	if err != nil {
		return b.unavailable(err)
	}
	return nil
}

// UserChannels implements pubsub.UserSubscriptions.
func (b *Broker) UserChannels(user string) []string {
	b.users.mu.Lock()
	defer b.users.mu.Unlock()
	if set := b.users.m[user]; len(set) > 0 {
		return slices.Sorted(maps.Keys(set))
	}
	return nil
}

// stop ends the watch (Close).
func (u *userSubs) stop() {
	u.mu.Lock()
	cancel, done := u.cancel, u.done
	u.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

func userKey(user, channel string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(user)) + "." + channelKey(channel)
}

func userKeyParts(key string) (user, channel string, ok bool) {
	a, c, found := strings.Cut(key, ".")
	if !found {
		return "", "", false
	}
	ub, err1 := base64.RawURLEncoding.DecodeString(a)
	cb, err2 := base64.RawURLEncoding.DecodeString(c)
	if err1 != nil || err2 != nil || len(ub) == 0 || !pubsub.ValidChannel(string(cb)) {
		return "", "", false
	}
	return string(ub), string(cb), true
}
