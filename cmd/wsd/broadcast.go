package main

import (
	"sync"

	"github.com/wsdhq/wsd/server"
)

// hub is the /broadcast endpoint: every message any client sends there goes
// to every client connected there, encoded once (DESIGN rule 4).
type hub struct {
	srv   *server.Server[state]
	mu    sync.RWMutex
	conns map[*server.Conn[state]]struct{}
}

// state is wsd's per-connection value.
type state struct{}

func newHub(srv *server.Server[state]) *hub {
	return &hub{srv: srv, conns: map[*server.Conn[state]]struct{}{}}
}

func (h *hub) OnOpen(c *server.Conn[state]) {
	h.mu.Lock()
	h.conns[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) OnClose(c *server.Conn[state], _ *server.CloseError) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

func (h *hub) OnMessage(_ *server.Conn[state], m server.Message) {
	p := h.srv.Prepare(m.Type, m.Data)
	h.mu.RLock()
	for c := range h.conns {
		_ = c.SendPrepared(p) // a slow subscriber is handled by its own queue cap
	}
	h.mu.RUnlock()
}
