package main

import (
	"sync"

	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/wsproto"
)

// hub is the /broadcast endpoint: every message any client sends there goes
// to every client connected there, encoded once and shared by every queue (see docs/architecture.md).
type hub struct {
	srv   *server.Server[wsproto.Session]
	mu    sync.RWMutex
	conns map[*server.Conn[wsproto.Session]]struct{}
}

func newHub(srv *server.Server[wsproto.Session]) *hub {
	return &hub{srv: srv, conns: map[*server.Conn[wsproto.Session]]struct{}{}}
}

func (h *hub) OnOpen(c *server.Conn[wsproto.Session]) {
	h.mu.Lock()
	h.conns[c] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) OnClose(c *server.Conn[wsproto.Session], _ *server.CloseError) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

func (h *hub) OnMessage(_ *server.Conn[wsproto.Session], m server.Message) {
	p := h.srv.Prepare(m.Type, m.Data)
	h.mu.RLock()
	for c := range h.conns {
		_ = c.SendPrepared(p) // a slow subscriber is handled by its own queue cap
	}
	h.mu.RUnlock()
}
