package client

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
)

// fakeServer speaks just enough of wsd's /ws protocol for the client tests:
// subscribe (with since), unsubscribe, publish, presence, an in-memory
// history per channel, and knobs to misbehave. Its connections run on
// goroutines; it is a test double, not the server.
type fakeServer struct {
	t  testing.TB
	ln net.Listener
	up codec.Upgrader
	wg sync.WaitGroup

	mu      sync.Mutex
	epoch   string
	hist    map[string][]json.RawMessage // hist[ch][i] has offset i+1
	evicted map[string]uint64            // offsets ≤ this are gone
	subs    map[string]map[*fakeConn]bool
	conns   map[*fakeConn]bool
	nextCID int

	// knobs (under mu)
	refuse        int               // answer upgrades with this status
	retryAfter    string            // with refuse: the Retry-After value, if any
	badAccept     bool              // send a wrong Sec-WebSocket-Accept
	ignoreClose   bool              // never answer a close frame
	blackhole     bool              // after the upgrade, answer nothing
	pingOnOpen    bool              // send a ping right after the upgrade
	replayOverlap uint64            // replay this many already-seen publications too
	skipLive      map[uint64]bool   // offsets not pushed live (to make a gap)
	fragment      bool              // send every message in two frames
	forbidden     string            // subscribing here gets an error reply
	replayFirst   bool              // push the replay before the subscribe reply
	losePublish   int               // the next this many publishes are made but their connection drops before the reply
	keys          map[string]uint64 // idempotency keys seen: their offsets

	// records (under mu)
	tokens      []string // from Authorization: Bearer, else ?token=
	tokenInURL  bool     // some upgrade had ?token=
	handshakes  int
	handshakeAt []time.Time // when each upgrade request was read
	sinces      []sinceRec
	pongs       []string
	requests    []string
}

type sinceRec struct {
	channel string
	since   *Position
}

type fakeConn struct {
	nc  net.Conn
	id  string
	wmu sync.Mutex
}

func (fc *fakeConn) send(frames ...[]byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	_ = fc.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = fc.nc.Write(bytes.Join(frames, nil))
}

func newFakeServer(t testing.TB) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startFakeServer(t, ln)
}

// newFakeTLSServer is a fake server behind TLS with a fresh self-signed
// certificate for 127.0.0.1, and a pool that trusts it.
func newFakeTLSServer(t testing.TB) (*fakeServer, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "wsd test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	return startFakeServer(t, ln), pool
}

func startFakeServer(t testing.TB, ln net.Listener) *fakeServer {
	s := &fakeServer{
		t: t, ln: ln, epoch: "e1",
		hist: map[string][]json.RawMessage{}, evicted: map[string]uint64{},
		subs: map[string]map[*fakeConn]bool{}, conns: map[*fakeConn]bool{},
		skipLive: map[uint64]bool{},
	}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

// requestsWith returns the requests received that contain sub. Call it
// under s.mu (inside s.with).
func (s *fakeServer) requestsWith(sub string) []string {
	var out []string
	for _, r := range s.requests {
		if strings.Contains(r, sub) {
			out = append(out, r)
		}
	}
	return out
}

func (s *fakeServer) url() string { return "ws://" + s.ln.Addr().String() + "/ws" }

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go s.serve(nc)
	}
}

func (s *fakeServer) close() {
	s.ln.Close()
	s.dropAll()
	s.wg.Wait()
}

// with runs f under the server's lock (to set knobs and read records).
func (s *fakeServer) with(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// dropAll cuts every connection's TCP without a close frame.
func (s *fakeServer) dropAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns {
		fc.nc.Close()
	}
}

// restart forgets all history under a new epoch and drops every connection,
// like a server restart.
func (s *fakeServer) restart(epoch string) {
	s.mu.Lock()
	s.epoch = epoch
	s.hist = map[string][]json.RawMessage{}
	s.evicted = map[string]uint64{}
	s.mu.Unlock()
	s.dropAll()
}

// publish publishes as the HTTP API would.
func (s *fakeServer) publish(ch string, data string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.publishLocked(ch, json.RawMessage(data))
}

func (s *fakeServer) publishLocked(ch string, data json.RawMessage) uint64 {
	s.hist[ch] = append(s.hist[ch], data)
	off := uint64(len(s.hist[ch]))
	if !s.skipLive[off] {
		msg := s.pushMsg(ch, off, data)
		for fc := range s.subs[ch] {
			fc.send(msg...)
		}
	}
	return off
}

// serverSubscribe subscribes every connection to ch as wsd's server-side
// subscriptions do: a subscribed push, then publications.
func (s *fakeServer) serverSubscribe(ch string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, _ := json.Marshal(map[string]any{"channel": ch, "subscribed": map[string]any{"epoch": s.epoch, "offset": len(s.hist[ch]), "recovered": false}})
	if s.subs[ch] == nil {
		s.subs[ch] = map[*fakeConn]bool{}
	}
	for fc := range s.conns {
		s.subs[ch][fc] = true
		fc.send(s.frames(b)...)
	}
}

func (s *fakeServer) pushMsg(ch string, off uint64, data json.RawMessage) [][]byte {
	b, _ := json.Marshal(map[string]any{"channel": ch, "offset": off, "epoch": s.epoch, "data": data})
	return s.frames(b)
}

func (s *fakeServer) frames(p []byte) [][]byte {
	if s.fragment && len(p) > 2 {
		k := len(p) / 2
		return [][]byte{codec.AppendFrame(nil, codec.OpText, false, p[:k]), codec.AppendFrame(nil, codec.OpContinuation, true, p[k:])}
	}
	return [][]byte{codec.AppendFrame(nil, codec.OpText, true, p)}
}

func (s *fakeServer) subscribers(ch string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs[ch])
}

func (s *fakeServer) serve(nc net.Conn) {
	defer s.wg.Done()
	defer nc.Close()
	buf := make([]byte, 0, 64<<10)
	var req *codec.Request
	for req == nil {
		tmp := make([]byte, 4096)
		n, err := nc.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
		r, m, err := s.up.ReadRequest(buf)
		if errors.Is(err, codec.ErrNeedMore) {
			continue
		}
		if err != nil {
			return
		}
		req, buf = r, buf[m:]
	}
	s.mu.Lock()
	s.handshakes++
	s.handshakeAt = append(s.handshakeAt, time.Now())
	q, _ := url.ParseQuery(req.RawQuery)
	tok, inURL := q.Get("token"), q.Has("token")
	if b, ok := strings.CutPrefix(req.Get("Authorization"), "Bearer "); ok {
		tok = b
	}
	s.tokens = append(s.tokens, tok)
	s.tokenInURL = s.tokenInURL || inURL
	refuse, retryAfter, badAccept, blackhole, ping := s.refuse, s.retryAfter, s.badAccept, s.blackhole, s.pingOnOpen
	s.nextCID++
	fc := &fakeConn{nc: nc, id: fmt.Sprintf("c%d", s.nextCID)}
	s.mu.Unlock()
	if refuse != 0 {
		herr := &codec.HTTPError{Status: refuse, Reason: "refused by the test"}
		if retryAfter != "" {
			herr.Header = []codec.HeaderField{{Name: "Retry-After", Value: retryAfter}}
		}
		nc.Write(codec.AppendHTTPError(nil, herr))
		return
	}
	acc, err := s.up.Negotiate(req)
	if err != nil {
		nc.Write(codec.AppendHTTPError(nil, err.(*codec.HTTPError)))
		return
	}
	resp := codec.AppendAccept(nil, req, acc)
	if badAccept {
		resp = bytes.Replace(resp, []byte("Sec-WebSocket-Accept: "), []byte("Sec-WebSocket-Accept: x"), 1)
	}
	if ping {
		resp = codec.AppendFrame(resp, codec.OpPing, true, []byte("hello"))
	}
	s.mu.Lock()
	s.conns[fc] = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.conns, fc)
		for _, m := range s.subs {
			delete(m, fc)
		}
		s.mu.Unlock()
	}()
	fc.send(resp)

	var rd codec.Reader
	var msg []byte
	tmp := make([]byte, 64<<10)
	for {
		for {
			f, n, err := rd.Next(buf)
			if err != nil {
				return
			}
			if f.Op == 0 {
				break
			}
			payload := append([]byte(nil), f.Payload...)
			buf = buf[n:]
			s.mu.Lock()
			bh := s.blackhole || blackhole
			s.mu.Unlock()
			if bh {
				continue
			}
			switch f.Op {
			case codec.OpPing:
				fc.send(codec.AppendFrame(nil, codec.OpPong, true, payload))
			case codec.OpPong:
				s.with(func() { s.pongs = append(s.pongs, string(payload)) })
			case codec.OpClose:
				s.mu.Lock()
				ignore := s.ignoreClose
				s.mu.Unlock()
				if ignore {
					continue
				}
				fc.send(codec.AppendFrame(nil, codec.OpClose, true, payload))
				return
			default:
				if f.First {
					msg = msg[:0]
				}
				msg = append(msg, payload...)
				if f.Fin {
					s.handle(fc, msg)
				}
			}
		}
		n, err := nc.Read(tmp)
		if err != nil {
			return
		}
		buf = append(buf, tmp[:n]...)
	}
}

func (s *fakeServer) handle(fc *fakeConn, p []byte) {
	var r struct {
		ID      uint64          `json:"id"`
		Op      string          `json:"op"`
		Channel string          `json:"channel"`
		Since   *Position       `json:"since"`
		Data    json.RawMessage `json:"data"`
		Key     string          `json:"idempotency_key"`
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, string(p))
	reply := func(result any) {
		b, _ := json.Marshal(map[string]any{"id": r.ID, "result": result})
		fc.send(s.frames(b)...)
	}
	fail := func(code, msg string) {
		b, _ := json.Marshal(map[string]any{"id": r.ID, "error": map[string]string{"code": code, "message": msg}})
		fc.send(s.frames(b)...)
	}
	if err := json.Unmarshal(p, &r); err != nil {
		fail("bad_request", err.Error())
		return
	}
	switch r.Op {
	case "subscribe":
		s.sinces = append(s.sinces, sinceRec{r.Channel, r.Since})
		if r.Channel == s.forbidden {
			fail("forbidden", "channel not allowed")
			return
		}
		latest := uint64(len(s.hist[r.Channel]))
		recovered := false
		var replay [][]byte
		if r.Since != nil && r.Since.Epoch == s.epoch && r.Since.Offset <= latest && r.Since.Offset >= s.evicted[r.Channel] {
			recovered = true
			from := r.Since.Offset - min(r.Since.Offset, s.replayOverlap)
			for off := from + 1; off <= latest; off++ {
				replay = append(replay, s.pushMsg(r.Channel, off, s.hist[r.Channel][off-1])...)
			}
		}
		if s.subs[r.Channel] == nil {
			s.subs[r.Channel] = map[*fakeConn]bool{}
		}
		s.subs[r.Channel][fc] = true
		if s.replayFirst {
			fc.send(replay...)
		}
		reply(map[string]any{"epoch": s.epoch, "offset": latest, "recovered": recovered})
		if !s.replayFirst {
			fc.send(replay...)
		}
	case "unsubscribe":
		delete(s.subs[r.Channel], fc)
		reply(map[string]any{})
	case "publish":
		off, dup := s.keys[r.Channel+" "+r.Key]
		if !dup || r.Key == "" {
			off = s.publishLocked(r.Channel, r.Data)
		}
		if r.Key != "" {
			if s.keys == nil {
				s.keys = map[string]uint64{}
			}
			s.keys[r.Channel+" "+r.Key] = off
		}
		if s.losePublish > 0 {
			s.losePublish--
			fc.nc.Close()
			return
		}
		reply(map[string]any{"offset": off, "epoch": s.epoch})
	case "presence":
		var ids []string
		for c := range s.subs[r.Channel] {
			ids = append(ids, c.id)
		}
		sort.Strings(ids)
		reply(map[string]any{"channel": r.Channel, "count": len(ids), "connections": len(ids), "clients": ids})
	default:
		fail("unknown_op", "unknown op "+r.Op)
	}
}

func appendServerClose(code uint16, reason string) []byte {
	return codec.AppendClose(nil, code, reason)
}

// closeAllWith sends a close frame to every connection and returns when it
// was written: a reconnect can only start after that instant.
func (s *fakeServer) closeAllWith(code uint16, reason string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	for fc := range s.conns {
		fc.send(appendServerClose(code, reason))
	}
	return time.Now()
}

// handshakesSince returns the upgrade requests read after t.
func (s *fakeServer) handshakesSince(t time.Time) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Time
	for _, at := range s.handshakeAt {
		if at.After(t) {
			out = append(out, at)
		}
	}
	return out
}
