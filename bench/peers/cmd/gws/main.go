// Command gws serves /echo and /broadcast with lxzan/gws as its README
// recommends: an Upgrader on net/http, one ReadLoop goroutine per
// connection, ParallelEnabled off (in-order handling), and gws.Broadcaster
// (frame encoded once) for the broadcast.
package main

import (
	"flag"
	"log"
	"net/http"
	"sync"

	"github.com/lxzan/gws"
)

type echoHandler struct{ gws.BuiltinEventHandler }

func (echoHandler) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

func (echoHandler) OnMessage(socket *gws.Conn, message *gws.Message) {
	defer message.Close()
	_ = socket.WriteMessage(message.Opcode, message.Bytes())
}

type hub struct {
	gws.BuiltinEventHandler
	mu    sync.RWMutex
	conns map[*gws.Conn]struct{}
}

func (h *hub) OnOpen(socket *gws.Conn) {
	h.mu.Lock()
	h.conns[socket] = struct{}{}
	h.mu.Unlock()
}

func (h *hub) OnClose(socket *gws.Conn, _ error) {
	h.mu.Lock()
	delete(h.conns, socket)
	h.mu.Unlock()
}

func (h *hub) OnPing(socket *gws.Conn, payload []byte) { _ = socket.WritePong(payload) }

func (h *hub) OnMessage(_ *gws.Conn, message *gws.Message) {
	defer message.Close()
	b := gws.NewBroadcaster(message.Opcode, message.Bytes())
	defer b.Close()
	h.mu.RLock()
	for c := range h.conns {
		_ = b.Broadcast(c)
	}
	h.mu.RUnlock()
}

func serve(up *gws.Upgrader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		socket, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		go socket.ReadLoop()
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	flag.Parse()
	opt := &gws.ServerOption{Recovery: gws.Recovery, ReadMaxPayloadSize: 16 << 20}
	mux := http.NewServeMux()
	mux.HandleFunc("/echo", serve(gws.NewUpgrader(echoHandler{}, opt)))
	mux.HandleFunc("/broadcast", serve(gws.NewUpgrader(&hub{conns: map[*gws.Conn]struct{}{}}, opt)))
	log.Printf("gws listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}
