package wsproto

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"github.com/wsdhq/wsd/pubsub"
)

// Close codes of POST /api/disconnect (docs/protocol.md).
const (
	// CloseDisconnected ends a user's connections at the backend's request.
	CloseDisconnected = 4001
	// CloseDisconnectedRetry is 1012 (service restart): the reason carries
	// the backend's reconnect advice, "disconnected; retry=S".
	CloseDisconnectedRetry = 1012
)

// users indexes the node's /ws sessions by client ID, for the API's
// disconnect and info. Safe for concurrent use.
type users struct {
	mu    sync.Mutex
	m     map[string]map[*session]struct{}
	conns int
}

func (u *users) add(s *session) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.m == nil {
		u.m = map[string]map[*session]struct{}{}
	}
	set := u.m[s.clientID]
	if set == nil {
		set = map[*session]struct{}{}
		u.m[s.clientID] = set
	}
	if _, dup := set[s]; !dup {
		set[s] = struct{}{}
		u.conns++
	}
}

func (u *users) remove(s *session) {
	u.mu.Lock()
	defer u.mu.Unlock()
	set := u.m[s.clientID]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	u.conns--
	if len(set) == 0 {
		delete(u.m, s.clientID)
	}
}

// rename moves s to the client ID a connect proxy answered with. Its
// clientID is written under u.mu, where remove reads it: the session's own
// requests are held until the answer, so nothing else reads it meanwhile.
func (u *users) rename(s *session, id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	set := u.m[s.clientID]
	if _, ok := set[s]; !ok {
		s.clientID = id // not indexed (closed already): nothing to move
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(u.m, s.clientID)
	}
	s.clientID = id
	if u.m[id] == nil {
		u.m[id] = map[*session]struct{}{}
	}
	u.m[id][s] = struct{}{}
}

// of returns user's sessions now.
func (u *users) of(user string) []*session {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]*session, 0, len(u.m[user]))
	for s := range u.m[user] {
		out = append(out, s)
	}
	return out
}

// DisconnectUser closes every connection of user and returns how many it
// closed on this node; on a broker that carries user commands
// (natsbroker) the other nodes are told to close theirs. With retry > 0
// the close is 1012 "disconnected; retry=S" (reconnect after S seconds,
// the hint format of docs/protocol.md); otherwise 4001 "disconnected".
// Safe from any goroutine.
func (h *Handler) DisconnectUser(user string, retry time.Duration) int {
	if uc, ok := h.hub.Broker().(pubsub.UserCommands); ok {
		cmd, _ := json.Marshal(userCommand{Disconnect: &disconnectCmd{RetryMs: retry.Milliseconds()}})
		if err := uc.SendUserCommand(context.Background(), user, cmd); err != nil {
			h.cfg.Logger.Warn("ws: disconnect not sent to the other nodes", "err", err)
		}
	}
	return h.disconnectLocal(user, retry)
}

// userCommand is what a node sends the others about a user.
type userCommand struct {
	Disconnect *disconnectCmd `json:"disconnect,omitempty"`
}

type disconnectCmd struct {
	RetryMs int64 `json:"retry_ms"`
}

// userCommandIn runs another node's command.
func (h *Handler) userCommandIn(user string, cmd []byte) {
	var c userCommand
	if json.Unmarshal(cmd, &c) != nil || c.Disconnect == nil {
		return
	}
	h.disconnectLocal(user, time.Duration(c.Disconnect.RetryMs)*time.Millisecond)
}

func (h *Handler) disconnectLocal(user string, retry time.Duration) int {
	code, reason := CloseDisconnected, "disconnected"
	if retry > 0 {
		code = CloseDisconnectedRetry
		ms := retry.Milliseconds()
		frac := strconv.FormatInt(ms%1000+1000, 10)[1:]
		reason = "disconnected; retry=" + strconv.FormatInt(ms/1000, 10) + "." + frac
	}
	ss := h.users.of(user)
	for _, s := range ss {
		s.conn.Close(code, reason)
	}
	return len(ss)
}

// Connections returns the node's /ws connections and distinct client IDs.
// Safe from any goroutine.
func (h *Handler) Connections() (conns, clients int) {
	h.users.mu.Lock()
	defer h.users.mu.Unlock()
	return h.users.conns, len(h.users.m)
}
