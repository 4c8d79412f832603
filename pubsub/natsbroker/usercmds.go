package natsbroker

import (
	"context"
	"encoding/json"

	"github.com/nats-io/nats.go"
	"github.com/wsdhq/wsd/pubsub"
)

// User commands (pubsub.UserCommands) go over core NATS on one subject,
// "<SubjectPrefix>.~usercmd", that every node subscribes to; a node skips
// its own.

var _ pubsub.UserCommands = (*Broker)(nil)

type userCmdMsg struct {
	Node string          `json:"node"`
	User string          `json:"user"`
	Cmd  json.RawMessage `json:"cmd"`
}

func (b *Broker) userCmdSubject() string { return b.opts.SubjectPrefix + ".~usercmd" }

// WatchUserCommands implements pubsub.UserCommands; f runs on the NATS
// connection's delivery goroutine for the subject, one message at a time.
func (b *Broker) WatchUserCommands(f func(user string, cmd []byte)) {
	_, err := b.nc.Subscribe(b.userCmdSubject(), func(m *nats.Msg) {
		var msg userCmdMsg
		if json.Unmarshal(m.Data, &msg) != nil || msg.Node == b.opts.NodeID || msg.User == "" {
			return
		}
		f(msg.User, msg.Cmd)
	})
	if err != nil {
		b.log.Warn("user commands: cannot subscribe", "err", err)
		return
	}
	_ = b.nc.FlushTimeout(b.opts.Timeout) // commands sent once this returns reach f
}

// SendUserCommand implements pubsub.UserCommands. cmd must be JSON.
func (b *Broker) SendUserCommand(ctx context.Context, user string, cmd []byte) error {
	data, err := json.Marshal(userCmdMsg{Node: b.opts.NodeID, User: user, Cmd: cmd})
	if err != nil {
		return err
	}
	_, cancel, err := b.usable(ctx)
	defer cancel()
	if err != nil {
		return err
	}
	if err := b.nc.Publish(b.userCmdSubject(), data); err != nil {
		return b.unavailable(err)
	}
	return nil
}
