package server_test

import (
	"log"

	"github.com/wsdhq/wsd/server"
)

// Embedding wsd: an echo server in a few lines.
func Example() {
	srv := server.New[struct{}](server.Options{Compression: true})
	srv.Handle("/echo", server.Funcs[struct{}]{
		Message: func(c *server.Conn[struct{}], m server.Message) {
			_ = c.Send(m.Type, m.Data) // safe from any goroutine
		},
	})
	if false { // the example is compiled, not run: it would serve forever
		log.Fatal(srv.ListenAndServe("127.0.0.1:8080"))
	}
}
