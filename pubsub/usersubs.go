package pubsub

import (
	"context"
	"maps"
	"slices"
	"sync"
)

// UserSubscriptions is an optional interface of a Broker that keeps
// server-side subscriptions: channels a backend subscribed a user to, held
// until it unsubscribes them, for every node that shares the broker. A node
// subscribes each of the user's connections to them, those open now (told
// by the watcher) and those that open later (UserChannels). Memory keeps
// them in the process; natsbroker in a JetStream key-value bucket, so they
// outlive a node's restart. All methods are safe for concurrent use.
type UserSubscriptions interface {
	// WatchUserSubscriptions registers f, which is told of every change
	// made by any node (this one included), one call at a time, after
	// UserChannels shows it; it returns once UserChannels shows every
	// subscription kept so far. A broker serves one watcher: it is called
	// once, before the other methods are used. f must not call back into
	// the broker's UserSubscriptions methods.
	WatchUserSubscriptions(ctx context.Context, f func(user, channel string, subscribed bool)) error

	// SubscribeUser keeps channel for user; UnsubscribeUser drops it. Both
	// are idempotent.
	SubscribeUser(ctx context.Context, user, channel string) error
	UnsubscribeUser(ctx context.Context, user, channel string) error

	// UserChannels returns user's channels as this node knows them now,
	// sorted (nil: none).
	UserChannels(user string) []string
}

var _ UserSubscriptions = (*Memory)(nil)

// userSubs is Memory's store of server-side subscriptions. mu is held
// while the watcher runs, so that changes reach it one at a time and in
// the order UserChannels saw them.
type userSubs struct {
	mu    sync.Mutex
	m     map[string]map[string]struct{}
	watch func(user, channel string, subscribed bool)
}

// WatchUserSubscriptions implements UserSubscriptions.
func (m *Memory) WatchUserSubscriptions(_ context.Context, f func(user, channel string, subscribed bool)) error {
	m.users.mu.Lock()
	defer m.users.mu.Unlock()
	m.users.watch = f
	return nil
}

// SubscribeUser implements UserSubscriptions; the watcher runs before it
// returns.
func (m *Memory) SubscribeUser(ctx context.Context, user, channel string) error {
	return m.users.set(ctx, user, channel, true)
}

// UnsubscribeUser implements UserSubscriptions; the watcher runs before it
// returns.
func (m *Memory) UnsubscribeUser(ctx context.Context, user, channel string) error {
	return m.users.set(ctx, user, channel, false)
}

// UserChannels implements UserSubscriptions.
func (m *Memory) UserChannels(user string) []string {
	m.users.mu.Lock()
	defer m.users.mu.Unlock()
	return sortedKeys(m.users.m[user])
}

func (u *userSubs) set(ctx context.Context, user, channel string, on bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !ValidChannel(channel) {
		return ErrBadChannel
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	set := u.m[user]
	if _, had := set[channel]; had == on {
		return nil
	}
	if on {
		if u.m == nil {
			u.m = map[string]map[string]struct{}{}
		}
		if set == nil {
			set = map[string]struct{}{}
			u.m[user] = set
		}
		set[channel] = struct{}{}
	} else if delete(set, channel); len(set) == 0 {
		delete(u.m, user)
	}
	if u.watch != nil {
		u.watch(user, channel, on)
	}
	return nil
}

func sortedKeys(set map[string]struct{}) []string {
	if len(set) == 0 {
		return nil
	}
	return slices.Sorted(maps.Keys(set))
}

// UserCommands is an optional interface of a Broker that carries commands
// about a user (wsd's disconnect) to the other nodes that share it. They
// are best effort, like join and leave: a node cut off from the broker
// misses them. All methods are safe for concurrent use.
type UserCommands interface {
	// WatchUserCommands registers f, which gets every command another
	// node sent (never this node's own), one call at a time. A broker
	// serves one watcher; it is called once, before SendUserCommand.
	WatchUserCommands(f func(user string, cmd []byte))
	// SendUserCommand sends cmd (copied) about user to the other nodes.
	SendUserCommand(ctx context.Context, user string, cmd []byte) error
}
