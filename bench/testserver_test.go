package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/leakcheck"
)

// TestMain lets the test binary act as a wsbench worker process, so that
// --procs runs can be tested without building cmd/wsbench.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == WorkerArg {
		if err := ServeWorker(os.Stdin, os.Stdout); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(leakcheck.After(m.Run()))
}

func workerExe() []string { return []string{os.Args[0], WorkerArg} }

// tinyServer is a goroutine-per-connection WebSocket server built on the
// codec, with knobs to misbehave so the client's verification can be tested.
type tinyServer struct {
	ln      net.Listener
	refuse  bool  // answer 503 instead of upgrading
	corrupt int64 // echo: flip a byte in every corrupt-th reply
	dropNth int64 // broadcast: skip every dropNth delivery
	dupNth  int64 // broadcast: send every dupNth delivery twice
	// /ws: every misroute-th push goes out on channel "elsewhere"
	misroute int64
	n        atomic.Int64

	mu     sync.Mutex
	subs   map[*tinyConn]struct{}
	wsSubs map[*tinyConn]string // /ws: each connection's channel
	offset uint64
	conns  sync.WaitGroup
	// Every upgraded conn, and when each upgrade was answered.
	live     map[*tinyConn]struct{}
	upgrades []time.Time
	// /ws: publications made here also reach these servers' subscribers,
	// like nodes of one cluster (linkTiny; under mu).
	linked    []*tinyServer
	published atomic.Int64 // /ws publish ops (or API posts) received here
}

type tinyConn struct {
	c  net.Conn
	mu sync.Mutex
}

func (tc *tinyConn) write(b []byte) {
	tc.mu.Lock()
	_, _ = tc.c.Write(b)
	tc.mu.Unlock()
}

func startTiny(t *testing.T, configure func(*tinyServer)) (*tinyServer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tinyServer{ln: ln, subs: map[*tinyConn]struct{}{}, wsSubs: map[*tinyConn]string{}, live: map[*tinyConn]struct{}{}}
	if configure != nil {
		configure(s)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			go s.serve(c)
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return s, ln.Addr().String()
}

func (s *tinyServer) serve(c net.Conn) {
	defer s.conns.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	var head []byte
	for codec.RequestEnd(head) < 0 {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return
		}
		head = append(head, line...)
	}
	if s.refuse {
		_, _ = c.Write(codec.AppendHTTPError(nil, &codec.HTTPError{Status: 503, Reason: "full"}))
		return
	}
	var u codec.Upgrader
	req, _, err := u.ReadRequest(head)
	if err != nil {
		return
	}
	acc, err := u.Negotiate(req)
	if err != nil {
		return
	}
	tc := &tinyConn{c: c}
	s.mu.Lock()
	tc.write(codec.AppendAccept(nil, req, acc))
	s.live[tc] = struct{}{}
	s.upgrades = append(s.upgrades, time.Now())
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.live, tc)
		s.mu.Unlock()
	}()
	if req.Path == "/broadcast" {
		s.mu.Lock()
		s.subs[tc] = struct{}{}
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.subs, tc)
			s.mu.Unlock()
		}()
	}
	if req.Path == "/ws" {
		defer func() {
			s.mu.Lock()
			delete(s.wsSubs, tc)
			s.mu.Unlock()
		}()
	}
	rd := codec.Reader{}
	buf := make([]byte, 0, 64<<10)
	var msg []byte
	var op codec.OpCode
	tmp := make([]byte, 32<<10)
	for {
		n, err := br.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		p := buf
		for {
			f, k, err := rd.Next(p)
			if err != nil {
				return
			}
			if k == 0 {
				break
			}
			p = p[k:]
			switch f.Op {
			case codec.OpPing:
				tc.write(codec.AppendFrame(nil, codec.OpPong, true, f.Payload))
				continue
			case codec.OpClose:
				tc.write(codec.AppendClose(nil, 1000, ""))
				return
			case codec.OpPong:
				continue
			}
			if f.First {
				msg, op = msg[:0], f.Op
			}
			msg = append(msg, f.Payload...)
			if f.Fin {
				s.onMessage(tc, req.Path, op, msg)
			}
		}
		buf = append(buf[:0], p...)
	}
}

func (s *tinyServer) onMessage(tc *tinyConn, path string, op codec.OpCode, msg []byte) {
	if path == "/ws" {
		s.onWS(tc, msg)
		return
	}
	if path != "/broadcast" {
		out := append([]byte(nil), msg...)
		if s.corrupt > 0 && s.n.Add(1)%s.corrupt == 0 && len(out) > 20 {
			out[20] ^= 0x01
		}
		tc.write(codec.AppendFrame(nil, op, true, out))
		return
	}
	frame := codec.AppendFrame(nil, op, true, msg)
	s.mu.Lock()
	subs := make([]*tinyConn, 0, len(s.subs))
	for c := range s.subs {
		subs = append(subs, c)
	}
	s.mu.Unlock()
	for _, c := range subs {
		k := s.n.Add(1)
		if s.dropNth > 0 && k%s.dropNth == 0 {
			continue
		}
		c.write(frame)
		if s.dupNth > 0 && k%s.dupNth == 0 {
			c.write(frame)
		}
	}
}

// onWS is a small subset of wsd's /ws protocol: subscribe (channels
// "forbidden…" are refused) and publish, with the broadcast knobs.
func (s *tinyServer) onWS(tc *tinyConn, msg []byte) {
	var req struct {
		ID      json.RawMessage `json:"id"`
		Op      string          `json:"op"`
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	type wsError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	reply := func(result any, e *wsError) { // the shape and order of wsd's replies
		b, _ := json.Marshal(struct {
			ID     json.RawMessage `json:"id,omitempty"`
			Result any             `json:"result,omitempty"`
			Error  *wsError        `json:"error,omitempty"`
		}{req.ID, result, e})
		tc.write(codec.AppendFrame(nil, codec.OpText, true, b))
	}
	if err := json.Unmarshal(msg, &req); err != nil {
		reply(nil, &wsError{"bad_request", err.Error()})
		return
	}
	switch {
	case req.Op == "subscribe" && strings.HasPrefix(req.Channel, "forbidden"):
		reply(nil, &wsError{"forbidden", "no"})
	case req.Op == "subscribe":
		s.mu.Lock()
		s.wsSubs[tc] = req.Channel
		off := s.offset
		s.mu.Unlock()
		reply(map[string]any{"epoch": "e", "offset": off, "recovered": false}, nil)
	case req.Op == "publish":
		off := s.publish(req.Channel, req.Data)
		reply(map[string]any{"offset": off, "epoch": "e"}, nil)
	default:
		reply(nil, &wsError{"unknown_op", req.Op})
	}
}

// publish pushes data to the channel's /ws subscribers, here and on the
// linked servers, as wsd encodes it.
func (s *tinyServer) publish(channel string, data []byte) uint64 {
	s.published.Add(1)
	s.mu.Lock()
	s.offset++
	off := s.offset
	nodes := append([]*tinyServer{s}, s.linked...)
	s.mu.Unlock()
	var subs []*tinyConn
	for _, n := range nodes {
		n.mu.Lock()
		for c, ch := range n.wsSubs {
			if ch == channel {
				subs = append(subs, c)
			}
		}
		n.mu.Unlock()
	}
	push := func(ch string) []byte {
		b := fmt.Appendf(nil, `{"channel":%q,"offset":%d,"epoch":"e","data":`, ch, off)
		b = append(append(b, data...), '}')
		return codec.AppendFrame(nil, codec.OpText, true, b)
	}
	frame, wrong := push(channel), push("elsewhere")
	for _, c := range subs {
		k := s.n.Add(1)
		switch {
		case s.dropNth > 0 && k%s.dropNth == 0:
			continue
		case s.misroute > 0 && k%s.misroute == 0:
			c.write(wrong)
			continue
		}
		c.write(frame)
		if s.dupNth > 0 && k%s.dupNth == 0 {
			c.write(frame)
		}
	}
	return off
}

// apiHandler is POST /api/publish with key.
func (s *tinyServer) apiHandler(key string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "apikey "+key {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprint(w, `{"error":{"code":"unauthorized","message":"wrong key"}}`)
			return
		}
		var body struct {
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Channel == "" || len(body.Data) == 0 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":{"code":"bad_request","message":"body"}}`)
			return
		}
		off := s.publish(body.Channel, body.Data)
		fmt.Fprintf(w, `{"offset":%d,"epoch":"e"}`, off)
	})
}

// linkTiny makes servers nodes of one cluster: a publication on any of
// them reaches the /ws subscribers of all.
func linkTiny(ss ...*tinyServer) {
	for _, s := range ss {
		s.mu.Lock()
		for _, o := range ss {
			if o != s {
				s.linked = append(s.linked, o)
			}
		}
		s.mu.Unlock()
	}
}

// wsSubscribers is how many /ws conns are subscribed here now.
func (s *tinyServer) wsSubscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.wsSubs)
}

// upgraded returns how many conns are open now and the upgrade times so far.
func (s *tinyServer) upgraded() (open int, times []time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live), append([]time.Time(nil), s.upgrades...)
}

// closeEach sends every open conn a close frame with code and the i-th
// conn's reason(i), as a draining node does, and returns when it began.
func (s *tinyServer) closeEach(code uint16, reason func(i int) string) time.Time {
	s.mu.Lock()
	conns := make([]*tinyConn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	began := time.Now()
	for i, c := range conns {
		c.write(codec.AppendClose(nil, code, reason(i)))
	}
	return began
}
