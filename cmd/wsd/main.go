// Command wsd is the standalone WebSocket daemon.
//
//	wsd --listen 127.0.0.1:8080
//
// serves /echo (every message is sent back with its type) and /broadcast
// (every message goes to every client connected there).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/wsdhq/wsd/server"
)

type config struct {
	listen           string
	maxMessage       int64
	maxConns         int
	deflate          bool
	idleTimeout      time.Duration
	pingInterval     time.Duration
	handshakeTimeout time.Duration
	shutdownTimeout  time.Duration
	workers          int
	loops            int
	logLevel         string
	pprof            bool
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func parseFlags(args []string, stderr io.Writer) (*config, error) {
	var c config
	fs := flag.NewFlagSet("wsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: wsd [flags]\n\nwsd is a WebSocket server built to hold many mostly-idle connections.\nEndpoints: /echo (echoes every message with its type), /broadcast (every message to every client there).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&c.listen, "listen", "127.0.0.1:8080", "`address` to listen on (host:port)")
	fs.Int64Var(&c.maxMessage, "max-message", 16<<20, "largest message in `bytes` (after decompression); larger ones close with 1009")
	fs.IntVar(&c.maxConns, "max-conns", 0, "most connections at once; 0 = the file limit minus a reserve; excess gets 503")
	fs.BoolVar(&c.deflate, "deflate", true, "offer permessage-deflate (without context takeover)")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", 0, "close connections silent this long (0 = never)")
	fs.DurationVar(&c.pingInterval, "ping-interval", 0, "ping connections silent this long (0 = never)")
	fs.DurationVar(&c.handshakeTimeout, "handshake-timeout", 10*time.Second, "time from accept to a complete upgrade request")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM/SIGINT, how long to drain before closing what is left")
	fs.IntVar(&c.workers, "workers", 0, "handler goroutines (0 = 4 per core)")
	fs.IntVar(&c.loops, "loops", 0, "event loops (0 = one per core)")
	fs.StringVar(&c.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&c.pprof, "pprof", false, "serve net/http/pprof under /debug/pprof/ on the listen address (do not expose publicly)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return &c, nil
}

func run(args []string, stderr io.Writer) int {
	c, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "wsd:", err)
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		fmt.Fprintln(stderr, "wsd: --log-level:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	srv := server.New[state](server.Options{
		MaxConns:         c.maxConns,
		MaxMessageBytes:  c.maxMessage,
		Compression:      c.deflate,
		IdleTimeout:      c.idleTimeout,
		PingInterval:     c.pingInterval,
		HandshakeTimeout: c.handshakeTimeout,
		Workers:          c.workers,
		Loops:            c.loops,
		Logger:           log,
	})
	srv.Handle("/echo", server.Funcs[state]{
		Message: func(conn *server.Conn[state], m server.Message) { _ = conn.Send(m.Type, m.Data) },
	}, server.Inline())
	srv.Handle("/broadcast", newHub(srv))
	if c.pprof {
		srv.HandleHTTP("/debug/pprof/", http.HandlerFunc(pprof.Index))
		srv.HandleHTTP("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	}

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(c.listen) }()
	select {
	case <-srv.Ready():
		log.Info("wsd listening", "addr", c.listen, "max_conns", srv.Engine().Config().MaxConns)
	case err := <-done:
		log.Error("wsd could not start", "err", err)
		return 1
	}
	select {
	case sig := <-sigs:
		log.Info("shutting down", "signal", sig.String())
		ctx, cancel := context.WithTimeout(context.Background(), c.shutdownTimeout)
		err := srv.Shutdown(ctx)
		cancel()
		<-done
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			log.Error("shutdown", "err", err)
			return 1
		}
		log.Info("stopped")
		return 0
	case err := <-done:
		if err != nil {
			log.Error("wsd stopped", "err", err)
			return 1
		}
		return 0
	}
}
