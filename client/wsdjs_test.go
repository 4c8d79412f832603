package client

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/wsdhq/wsd/internal/testdep"
)

// jsDriver runs web/wsd.js under Node (testdata/wsdjs_driver.js) against
// the fake server: the same reconnect and exactly-once behaviour as the Go
// client, plus the browser's online/offline and visibility events. Node and
// the ws package (make test-deps installs it in test/interop/node) are
// needed; without them the test skips loudly, or fails under CI=true
// (internal/testdep).
type jsDriver struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin interface{ Write([]byte) (int, error) }
	mu    sync.Mutex
	evs   []jsEvent
	done  chan struct{}
}

type jsEvent struct {
	Ev         string          `json:"ev"`
	URL        string          `json:"url"`
	State      string          `json:"state"`
	Info       map[string]any  `json:"info"`
	Reconnects int             `json:"reconnects"`
	Channel    string          `json:"channel"`
	Offset     uint64          `json:"offset"`
	Epoch      string          `json:"epoch"`
	Data       json.RawMessage `json:"data"`
	Recovered  bool            `json:"recovered"`
	Result     json.RawMessage `json:"result"`
	Code       string          `json:"code"`
	Tag        string          `json:"tag"`
	Message    string          `json:"message"`
	Client     string          `json:"client"`
}

func startJS(t *testing.T, url string) *jsDriver {
	t.Helper()
	return startJSEnv(t, url)
}

// startJSEnv is startJS with extra environment variables for the driver
// ("WSD_TOKEN_URL=...").
func startJSEnv(t *testing.T, url string, env ...string) *jsDriver {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		testdep.Missing(t, "node (Debian nodejs)", testdep.InstallHint+"; without it wsd.js is not exercised")
	}
	modules := os.Getenv("WSD_NODE_MODULES")
	if modules == "" {
		modules, _ = filepath.Abs("../test/interop/node/node_modules")
	}
	if _, err := os.Stat(filepath.Join(modules, "ws")); err != nil {
		testdep.Missing(t, "the npm ws package in "+modules, testdep.InstallHint+"; without it wsd.js is not exercised")
	}
	cmd := exec.Command(node, "testdata/wsdjs_driver.js", url, "../web/wsd.js")
	cmd.Env = append(append(os.Environ(), "NODE_PATH="+modules), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &jsDriver{t: t, cmd: cmd, stdin: stdin, done: make(chan struct{})}
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var e jsEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Errorf("driver said %q: %v", sc.Text(), err)
				continue
			}
			d.mu.Lock()
			d.evs = append(d.evs, e)
			d.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		stdin.Close()
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-d.done
		}
		cmd.Wait()
	})
	return d
}

func (d *jsDriver) send(cmd map[string]any) {
	b, _ := json.Marshal(cmd)
	if _, err := d.stdin.Write(append(b, '\n')); err != nil {
		d.t.Fatal(err)
	}
}

func (d *jsDriver) events(ev string) []jsEvent {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []jsEvent
	for _, e := range d.evs {
		if e.Ev == ev {
			out = append(out, e)
		}
	}
	return out
}

func (d *jsDriver) lastState() jsEvent {
	st := d.events("state")
	if len(st) == 0 {
		return jsEvent{}
	}
	return st[len(st)-1]
}

func (d *jsDriver) offsets(ch string) []uint64 {
	var out []uint64
	for _, e := range d.events("pub") {
		if e.Channel == ch {
			out = append(out, e.Offset)
		}
	}
	return out
}

func TestWSDJS(t *testing.T) {
	t.Run("reply-then-replay", func(t *testing.T) { testWSDJS(t, false) })
	t.Run("replay-then-reply", func(t *testing.T) { testWSDJS(t, true) })
}

func testWSDJS(t *testing.T, jsReplayFirst bool) {
	s := newFakeServer(t)
	s.with(func() { s.replayOverlap = 2; s.fragment = true; s.skipLive[23] = true; s.replayFirst = jsReplayFirst })
	d := startJS(t, s.url())
	handshakes := func() int {
		var n int
		s.with(func() { n = s.handshakes })
		return n
	}

	d.send(map[string]any{"cmd": "subscribe", "channel": "news"})
	waitFor(t, "subscribed", func() bool { return len(d.events("subscribed")) == 1 })
	if st := d.events("state"); st[0].State != "connecting" || st[1].State != "connected" {
		t.Fatalf("first states %+v", st)
	}
	s.with(func() {
		if s.tokens[0] != "js-token" {
			t.Errorf("token %q", s.tokens[0])
		}
	})
	for i := 1; i <= 5; i++ {
		s.publish("news", fmt.Sprint(i))
	}
	waitFor(t, "5 publications", func() bool { return len(d.offsets("news")) == 5 })

	// Dropped and refused for a while; publications go on meanwhile.
	s.with(func() { s.refuse = 503 })
	s.dropAll()
	for i := 6; i <= 20; i++ {
		s.publish("news", fmt.Sprint(i))
	}
	waitFor(t, "refused attempts", func() bool { return handshakes() >= 4 })
	waitFor(t, "disconnected", func() bool { return d.lastState().State != "connected" })
	d.send(map[string]any{"cmd": "publish", "channel": "news", "data": "queued", "tag": "q"})
	s.with(func() { s.refuse = 0 })
	waitFor(t, "20 publications", func() bool { return len(d.offsets("news")) >= 21 })
	for i := 22; i <= 25; i++ { // 23 is not pushed live: a gap to repair
		s.publish("news", fmt.Sprint(i))
	}
	waitFor(t, "25 publications", func() bool { return len(d.offsets("news")) >= 25 })
	time.Sleep(30 * time.Millisecond)
	if got := d.offsets("news"); !equalU64(got, seq(1, 25)) {
		t.Fatalf("offsets %v", got)
	}
	var pr PublishResult
	if p := d.events("published"); len(p) != 1 || json.Unmarshal(p[0].Result, &pr) != nil || pr != (PublishResult{21, "e1"}) {
		t.Fatalf("queued publish: %+v", p)
	}
	if r := d.events("recover"); len(r) < 1 || !r[0].Recovered || r[0].Epoch != "e1" {
		t.Fatalf("recover events %+v", r)
	}
	if st := d.lastState(); st.State != "connected" || st.Reconnects != 1 {
		t.Fatalf("state %+v", st)
	}

	// Offline: no attempt at all until the browser is online again.
	d.send(map[string]any{"cmd": "offline"})
	s.dropAll()
	waitFor(t, "offline disconnect", func() bool {
		st := d.lastState()
		return st.State == "disconnected" && st.Info["offline"] == true
	})
	n := handshakes()
	time.Sleep(200 * time.Millisecond) // ~20 backoff periods
	if handshakes() != n {
		t.Fatal("reconnect attempts while offline")
	}
	d.send(map[string]any{"cmd": "online"})
	waitFor(t, "reconnect on online", func() bool { return d.lastState().State == "connected" })

	// A long backoff is cut short when the page becomes visible.
	d.send(map[string]any{"cmd": "set", "key": "minBackoff", "value": 60000})
	d.send(map[string]any{"cmd": "set", "key": "maxBackoff", "value": 60000})
	d.send(map[string]any{"cmd": "hidden"})
	s.dropAll()
	waitFor(t, "a long backoff", func() bool {
		st := d.lastState()
		if st.State == "connected" { // full jitter drew a short delay: again
			s.dropAll()
		}
		return st.State == "disconnected" && st.Info["delay"] != nil && st.Info["delay"].(float64) > 1000
	})
	start := time.Now()
	d.send(map[string]any{"cmd": "visible"})
	waitFor(t, "reconnect on visible", func() bool { return d.lastState().State == "connected" })
	if time.Since(start) > 5*time.Second {
		t.Fatal("visibility did not cut the backoff short")
	}

	d.send(map[string]any{"cmd": "set", "key": "minBackoff", "value": 10})
	d.send(map[string]any{"cmd": "set", "key": "maxBackoff", "value": 100})

	// Server restart: history reset is reported, then the new epoch flows.
	s.restart("e2")
	s.publish("news", `"lost"`)
	waitFor(t, "recover false", func() bool {
		for _, r := range d.events("recover") {
			if !r.Recovered && r.Epoch == "e2" {
				return true
			}
		}
		return false
	})
	waitFor(t, "connected", func() bool { return d.lastState().State == "connected" })
	s.publish("news", `"new"`)
	waitFor(t, "the new epoch's publication", func() bool {
		p := d.events("pub")
		return p[len(p)-1].Epoch == "e2"
	})
	p := d.events("pub")
	if last := p[len(p)-1]; last.Offset != 2 || string(last.Data) != `"new"` || len(p) != 26 {
		t.Fatalf("after the restart: %+v (%d publications)", last, len(p))
	}

	// 'online' while connected probes the connection: an answer keeps it,
	// silence replaces it.
	before := d.lastState().Reconnects
	d.send(map[string]any{"cmd": "set", "key": "probeTimeout", "value": 300})
	d.send(map[string]any{"cmd": "online"})
	time.Sleep(400 * time.Millisecond)
	if st := d.lastState(); st.State != "connected" || st.Reconnects != before {
		t.Fatalf("a healthy connection was replaced after a probe: %+v", st)
	}
	s.with(func() { s.blackhole = true })
	d.send(map[string]any{"cmd": "online"})
	waitFor(t, "probe timeout", func() bool {
		for _, st := range d.events("state") {
			if st.State == "disconnected" && st.Info["reason"] == "no answer to a probe" {
				return true
			}
		}
		return false
	})
	s.with(func() { s.blackhole = false })
	waitFor(t, "reconnect after the probe", func() bool { return d.lastState().Reconnects == before+1 })

	// After a slow-consumer close it comes back; after a rate-limit close it stops.
	before = d.lastState().Reconnects
	s.with(func() {
		for fc := range s.conns {
			fc.send(appendServerClose(1008, "slow consumer"))
		}
	})
	waitFor(t, "reconnect after 1008 slow consumer", func() bool {
		st := d.lastState()
		return st.State == "connected" && st.Reconnects == before+1
	})
	s.with(func() {
		for fc := range s.conns {
			fc.send(appendServerClose(1008, "rate limit exceeded"))
		}
	})
	waitFor(t, "closed after 1008 rate limit exceeded", func() bool { return d.lastState().State == "closed" })
	n = handshakes()
	time.Sleep(100 * time.Millisecond)
	if handshakes() != n {
		t.Fatal("reconnected after a rate-limit close")
	}
	d.send(map[string]any{"cmd": "close"})
}
