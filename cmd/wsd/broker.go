package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/wsdhq/wsd/pubsub"
	"github.com/wsdhq/wsd/pubsub/natsbroker"
	"github.com/wsdhq/wsd/server"
	"github.com/wsdhq/wsd/wsproto"
)

// natsConfig holds the --nats-* flags (nats_* config keys).
type natsConfig struct {
	urls                   string
	creds                  string
	user, password, token  string
	tlsCA, tlsCert, tlsKey string
	streamPrefix           string
	subjectPrefix          string
	replicas               int
	storage                string
	timeout                time.Duration
	connectTimeout         time.Duration
	nodeID                 string
	presenceTTL            time.Duration
}

func (n *natsConfig) flags(fs *flag.FlagSet) {
	fs.StringVar(&n.urls, "nats-url", "nats://127.0.0.1:4222", "with --broker nats: comma-separated NATS server `URLs` (nats://, tls://)")
	fs.StringVar(&n.creds, "nats-creds", "", "NATS credentials `file` (JWT and nkey seed)")
	fs.StringVar(&n.user, "nats-user", "", "NATS user name")
	fs.StringVar(&n.password, "nats-password", "", "NATS password")
	fs.StringVar(&n.token, "nats-token", "", "NATS authentication token")
	fs.StringVar(&n.tlsCA, "nats-tls-ca", "", "CA `file` to verify the NATS servers with")
	fs.StringVar(&n.tlsCert, "nats-tls-cert", "", "client certificate `file` for NATS (mutual TLS; with --nats-tls-key)")
	fs.StringVar(&n.tlsKey, "nats-tls-key", "", "client key `file` for NATS")
	fs.StringVar(&n.streamPrefix, "nats-stream-prefix", "WSD", "JetStream stream names start with this (one stream per namespace)")
	fs.StringVar(&n.subjectPrefix, "nats-subject-prefix", "wsd", "first token of the NATS subjects")
	fs.IntVar(&n.replicas, "nats-replicas", 1, "replicas of each JetStream stream (3 on a three-node NATS cluster)")
	fs.StringVar(&n.storage, "nats-storage", "file", "JetStream storage: file (history survives a NATS restart) or memory")
	fs.DurationVar(&n.timeout, "nats-timeout", 5*time.Second, "bound on each NATS request (publish, history)")
	fs.DurationVar(&n.connectTimeout, "nats-connect-timeout", 5*time.Second, "how long to try reaching NATS at start before exiting with status 2")
	fs.StringVar(&n.nodeID, "nats-node-id", "", "this node's `ID` in the cluster's presence (letters, digits, - and _; default random per start)")
	fs.DurationVar(&n.presenceTTL, "nats-presence-ttl", 30*time.Second, "how long a dead node's clients stay in the cluster's presence (nodes refresh every third of it; the first node to create the presence bucket sets it)")
}

func (c *config) checkBroker() error {
	switch c.broker {
	case "memory":
		return nil
	case "nats":
	default:
		return &configError{fmt.Sprintf("--broker %q: want memory or nats", c.broker)}
	}
	switch {
	case len(splitList(c.nats.urls)) == 0:
		return &configError{"--broker nats needs --nats-url"}
	case c.nats.storage != "file" && c.nats.storage != "memory":
		return &configError{fmt.Sprintf("--nats-storage %q: want file or memory", c.nats.storage)}
	case (c.nats.tlsCert == "") != (c.nats.tlsKey == ""):
		return &configError{"--nats-tls-cert and --nats-tls-key go together"}
	case c.nats.replicas < 1:
		return &configError{fmt.Sprintf("--nats-replicas %d: want 1 or more", c.nats.replicas)}
	case c.nats.presenceTTL < time.Second:
		return &configError{fmt.Sprintf("--nats-presence-ttl %v: want 1s or more", c.nats.presenceTTL)}
	}
	return nil
}

// brokerHandle is the broker in use and what wsd needs around it.
type brokerHandle struct {
	pubsub.Broker
	memory *pubsub.Memory     // the memory broker, else nil
	nats   *natsbroker.Broker // the NATS broker, else nil
}

// historyBytes is what the memory broker keeps for recovery, counted
// against --max-memory (JetStream keeps its history outside wsd: 0). Safe
// from any goroutine.
func (b *brokerHandle) historyBytes() int64 {
	if b.memory == nil {
		return 0
	}
	return b.memory.Stats().HistoryBytes
}

// newBroker makes the broker --broker names. A NATS that cannot be
// reached is an error (wsd exits 2 with it).
func newBroker(c *config, log *slog.Logger) (*brokerHandle, error) {
	if c.broker != "nats" {
		m := pubsub.NewMemory(pubsub.MemoryOptions{})
		return &brokerHandle{Broker: m, memory: m}, nil
	}
	n := c.nats
	storage := n.storage == "memory"
	b, err := natsbroker.Connect(context.Background(), natsbroker.Options{
		URLs: splitList(n.urls), Name: "wsd " + c.listen,
		CredsFile: n.creds, User: n.user, Password: n.password, Token: n.token,
		TLSCA: n.tlsCA, TLSCert: n.tlsCert, TLSKey: n.tlsKey,
		Namespaces: c.namespaces, StreamPrefix: n.streamPrefix, SubjectPrefix: n.subjectPrefix,
		Replicas: n.replicas, MemoryStorage: storage, Timeout: n.timeout, ConnectTimeout: n.connectTimeout,
		NodeID: n.nodeID, PresenceTTL: n.presenceTTL,
		Logger: log.With("component", "nats"),
	})
	if err != nil {
		return nil, err
	}
	log.Info("broker: NATS JetStream", "url", b.State().URL, "node", b.NodeID())
	return &brokerHandle{Broker: b, nats: b}, nil
}

func (b *brokerHandle) close() {
	if b.nats != nil {
		b.nats.Close()
	}
}

// healthz answers "ok N connections" and the broker's state; 503 while
// the broker cannot serve (NATS unreachable): publications and new
// subscriptions fail there, so a load balancer should prefer another node.
func healthz(srv *server.Server[wsproto.Session], b *brokerHandle) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		conns := srv.Stats().Conns
		if b.nats == nil {
			fmt.Fprintf(w, "ok %d connections\nbroker memory\n", conns)
			return
		}
		st := b.nats.State()
		if !st.Connected {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "unavailable %d connections\nbroker nats %s since %s: %s\n", conns, st.Status,
				st.Since.UTC().Format(time.RFC3339), st.Error)
			return
		}
		fmt.Fprintf(w, "ok %d connections\nbroker nats %s %s\n", conns, st.Status, st.URL)
	})
}
