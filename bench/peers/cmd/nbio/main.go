// Command nbio serves /echo and /broadcast with lesismal/nbio as its
// examples recommend for many connections: an nbhttp.Engine in the default
// non-blocking IO mode (a few poller goroutines, no goroutine per
// connection), one websocket.Upgrader per route with OnMessage handlers, and
// ReleaseWebsocketPayload so payload buffers return to nbio's pool.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/lesismal/nbio/nbhttp"
	"github.com/lesismal/nbio/nbhttp/websocket"
)

type hub struct {
	mu    sync.RWMutex
	conns map[*websocket.Conn]struct{}
}

func serve(u *websocket.Upgrader) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = u.Upgrade(w, r, nil)
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	flag.Parse()

	echo := websocket.NewUpgrader()
	echo.OnMessage(func(c *websocket.Conn, mt websocket.MessageType, data []byte) {
		_ = c.WriteMessage(mt, data)
	})

	h := &hub{conns: map[*websocket.Conn]struct{}{}}
	bc := websocket.NewUpgrader()
	bc.OnOpen(func(c *websocket.Conn) {
		h.mu.Lock()
		h.conns[c] = struct{}{}
		h.mu.Unlock()
	})
	bc.OnClose(func(c *websocket.Conn, _ error) {
		h.mu.Lock()
		delete(h.conns, c)
		h.mu.Unlock()
	})
	bc.OnMessage(func(_ *websocket.Conn, mt websocket.MessageType, data []byte) {
		h.mu.RLock()
		for c := range h.conns {
			_ = c.WriteMessage(mt, data)
		}
		h.mu.RUnlock()
	})

	mux := http.NewServeMux()
	mux.HandleFunc("/echo", serve(echo))
	mux.HandleFunc("/broadcast", serve(bc))
	engine := nbhttp.NewEngine(nbhttp.Config{
		Network:                 "tcp",
		Addrs:                   []string{*listen},
		MaxLoad:                 1_000_000,
		ReleaseWebsocketPayload: true,
		Handler:                 mux,
	})
	if err := engine.Start(); err != nil {
		log.Fatal(err)
	}
	log.Printf("nbio listening on %s", *listen)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	engine.Stop()
}
