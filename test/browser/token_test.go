package browser

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

const (
	tokenSecret  = "browser-token-test-secret"
	tokenSub     = "alice"
	tokenChannel = "news"
	tokenTTL     = 2 * time.Second
	// tokenScenarioTimeout bounds everything after the build.
	tokenScenarioTimeout = 60 * time.Second
	// keepFor is how long client A must stay on one connection: three token
	// lifetimes.
	keepFor    = 3 * tokenTTL
	publishGap = 150 * time.Millisecond
	// maxTokenPubs stays under the default namespace's history (100), so a
	// recovery never falls off the end of it.
	maxTokenPubs = 90
	// holdMax bounds how long the token endpoint holds B's reconnect token
	// if the test never releases it.
	holdMax = 20 * time.Second
)

// TestTokenLifecycleInChromium runs wsd.js's token refresh in a real
// Chromium against a wsd process with an HS256 secret. One page holds two
// clients of the same channel, both getting 2 s tokens from the test's
// token endpoint:
//
//   - A refreshes on every refresh notice: over three token lifetimes it
//     keeps its one connection and gets every publication once, in order.
//   - B's first refresh is refused by the endpoint (401), so wsd closes it
//     with 3000 "token expired" at exp. B reconnects with a fresh token
//     (held by the endpoint until publications happened meanwhile) and
//     recovers them with since: none lost, none twice.
func TestTokenLifecycleInChromium(t *testing.T) {
	chromium := findChromium(t)
	t0 := time.Now()
	bin := buildDaemon(t)
	t.Logf("built wsd in %v", time.Since(t0).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), tokenScenarioTimeout)
	defer cancel()
	dir := t.TempDir()
	wsdAddr := freeLoopbackAddr(t)
	wsdLog := filepath.Join(dir, "wsd.log")
	startDaemon(t, bin, wsdAddr, wsdLog, "--token-secret", tokenSecret)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- wsd log (%s) ----\n%s\n---- end of wsd log ----", wsdLog, logTail(wsdLog, 60))
		}
	})
	a := newAPI(wsdAddr)

	backend := newTokenBackend(tokenSecret)
	site := httptest.NewServer(tokenSite(t, backend, wsdAddr))
	t.Cleanup(site.Close)
	t.Cleanup(backend.releaseHeld) // before site.Close: a held request must not block it

	allocCtx := startChromium(t, ctx, chromium, dir)
	tb := openTab(t, allocCtx, "token", site.URL+"/")

	start := time.Now()
	page := waitTokenPage(t, tb, "both clients subscribed", 15*time.Second, func(p tokenPage) error {
		for _, c := range p.clients() {
			if !c.Subscribed {
				return fmt.Errorf("client %s is not subscribed (state %q)", c.Name, c.State)
			}
		}
		return nil
	})
	t.Logf("both clients subscribed %.2fs after the page opened", time.Since(start).Seconds())
	if len(page.A.Pubs)+len(page.B.Pubs) != 0 {
		t.Fatalf("publications before the test published any:\n%s", page.dump())
	}

	pub := newPublisher(ctx, a)
	keepFrom := time.Now()
	runTokenScenario(t, tb, backend, pub, keepFrom)

	want := pub.want
	page = waitTokenPage(t, tb, "every publication on both clients", 10*time.Second, func(p tokenPage) error {
		for _, c := range p.clients() {
			if err := c.matches(want); err != nil {
				return fmt.Errorf("client %s: %w", c.Name, err)
			}
		}
		return nil
	})
	checkKeptConnection(t, page, keepFrom)
	checkExpiredAndBack(t, page)
	checkTokenMetrics(t, ctx, a, page)
	checkTokenConsole(t, tb)
	t.Logf("%d publications; A: %d refreshes, 0 reconnects; B: closed with 3000 once, %d refreshes after its reconnect; scenario %.2fs",
		len(want), len(page.A.Refreshes), len(page.B.Refreshes), time.Since(start).Seconds())
}

// runTokenScenario publishes every publishGap until A has been connected
// for keepFor and B has come back after its 3000 close and seen three more
// publications live. While B's reconnect token is held, three publications
// go out, so B's resubscribe has something to recover.
func runTokenScenario(t *testing.T, tb *tab, backend *tokenBackend, pub *publisher, keepFrom time.Time) {
	t.Helper()
	deadline := keepFrom.Add(25 * time.Second)
	released, afterBack := false, 0
	for {
		if time.Now().After(deadline) || len(pub.want) >= maxTokenPubs {
			p, _ := readTokenPage(tb)
			t.Fatalf("after %d publications in %.1fs: released=%v, %d publications since B came back; want A kept for %v and B back:\n%s",
				len(pub.want), time.Since(keepFrom).Seconds(), released, afterBack, keepFor, p.dump())
		}
		pub.one(t)
		if !released {
			select {
			case <-backend.held:
				waitTokenPage(t, tb, "B closed with 3000 before asking for a new token", 5*time.Second, func(p tokenPage) error {
					return p.B.lastDisconnect(3000)
				})
				for range 3 {
					pub.one(t) // missed by B: it must recover them
				}
				backend.releaseHeld()
				released = true
			default:
			}
		} else if afterBack > 0 || func() bool { p, err := readTokenPage(tb); return err == nil && p.B.State == "connected" }() {
			afterBack++
		}
		if released && afterBack >= 3 && time.Since(keepFrom) >= keepFor {
			return
		}
		time.Sleep(publishGap) // the publication rate, not a synchronisation
	}
}

// ---- checks ----

// checkKeptConnection: A stayed on its first connection over keepFor,
// refreshed at least twice with a later exp each time, and had no error.
func checkKeptConnection(t *testing.T, p tokenPage, keepFrom time.Time) {
	t.Helper()
	A := p.A
	var states []string
	for _, s := range A.States {
		states = append(states, s.State)
	}
	if A.Reconnects != 0 || strings.Join(states, ",") != "connecting,connected" {
		t.Fatalf("A: %d reconnects, states %v; want one connection kept for %v:\n%s", A.Reconnects, states, keepFor, p.dump())
	}
	if up := time.Since(time.UnixMilli(A.States[1].At)); up < keepFor {
		t.Fatalf("A has been connected only %v, want at least %v", up, keepFor)
	}
	if len(A.Refreshes) < 2 {
		t.Fatalf("A refreshed %d times in %.1fs, want at least 2:\n%s", len(A.Refreshes), time.Since(keepFrom).Seconds(), p.dump())
	}
	for i := 1; i < len(A.Refreshes); i++ {
		if A.Refreshes[i].Exp <= A.Refreshes[i-1].Exp {
			t.Fatalf("A's refresh %d has exp %d, not after the previous %d", i, A.Refreshes[i].Exp, A.Refreshes[i-1].Exp)
		}
	}
	if len(A.Errors) != 0 || len(A.Recovers) != 0 {
		t.Fatalf("A: errors %v, recovers %v; want none:\n%s", A.Errors, A.Recovers, p.dump())
	}
}

// checkExpiredAndBack: B's only disconnect is the 3000 close after its
// refused refresh, it reconnected once, recovered what it missed, and
// refreshed its new token normally.
func checkExpiredAndBack(t *testing.T, p tokenPage) {
	t.Helper()
	B := p.B
	var downs []stateEvent
	for _, s := range B.States {
		if s.State == "disconnected" || s.State == "closed" {
			downs = append(downs, s)
		}
	}
	if len(downs) != 1 || downs[0].Code != 3000 || downs[0].Reason != "token expired" {
		t.Fatalf("B's disconnects %+v, want exactly one with 3000 \"token expired\":\n%s", downs, p.dump())
	}
	if B.Reconnects != 1 || B.State != "connected" {
		t.Fatalf("B: %d reconnects, state %q; want 1 and connected:\n%s", B.Reconnects, B.State, p.dump())
	}
	if len(B.Errors) != 1 || !B.Errors[0].Refresh {
		t.Fatalf("B's errors %+v, want exactly the refused refresh:\n%s", B.Errors, p.dump())
	}
	if len(B.Recovers) != 1 || !B.Recovers[0].Recovered {
		t.Fatalf("B's recover events %+v, want one with recovered=true:\n%s", B.Recovers, p.dump())
	}
	if len(B.Refreshes) == 0 {
		t.Fatalf("B never refreshed its second token:\n%s", p.dump())
	}
}

// checkTokenMetrics: wsd counted the one 3000 close and at least the
// refreshes the page saw succeed.
func checkTokenMetrics(t *testing.T, ctx context.Context, a *api, p tokenPage) {
	t.Helper()
	m, err := a.metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := m["wsd_ws_token_expired_total"]; got != 1 {
		t.Errorf("wsd_ws_token_expired_total = %v, want 1", got)
	}
	if got, min := m["wsd_ws_token_refreshes_total"], float64(len(p.A.Refreshes)+len(p.B.Refreshes)); got < min {
		t.Errorf("wsd_ws_token_refreshes_total = %v, want at least the %v the page saw", got, min)
	}
	if got := m["wsd_recoveries_total"]; got < 1 {
		t.Errorf("wsd_recoveries_total = %v, want at least B's", got)
	}
}

// refusedRefresh is the browser's log line for the 401 the test's endpoint
// gives B's first refresh: expected once, any other page error fails.
var refusedRefresh = regexp.MustCompile(`status of 401 .*/token\?client=B&phase=refresh`)

func checkTokenConsole(t *testing.T, tb *tab) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var other []string
	refused := 0
	for _, p := range tb.problems {
		if refusedRefresh.MatchString(p) {
			refused++
		} else {
			other = append(other, p)
		}
	}
	if len(other) != 0 || refused > 1 {
		t.Fatalf("tab %s: the page reported %d error(s) (and %d refused refreshes, want at most 1):\n  %s",
			tb.name, len(other), refused, strings.Join(other, "\n  "))
	}
}

// ---- the page ----

// tokenPageHTML loads wsd.js from wsd itself (a cross-origin script) and
// connects two clients to wsd's /ws. Each records in window.T what the
// test reads: states with close codes, refreshes, errors, recoveries and
// publications. getToken says whether it asks for the connection's token
// or a refresh (the client is connected only when it answers a notice).
var tokenPageHTML = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>wsd token lifecycle</title>
<script src="http://{{.Addr}}/wsd.js"></script>
</head><body>
<script>
'use strict';
window.T = {};
const CHANNEL = {{.Channel}};
async function fetchToken(name, phase) {
  const res = await fetch('/token?client=' + name + '&phase=' + phase, {cache: 'no-store'});
  if (!res.ok) throw new Error('token endpoint: HTTP ' + res.status);
  return res.text();
}
function track(name) {
  const r = {name: name, state: '', reconnects: 0, subscribed: false,
    states: [], refreshes: [], errors: [], recovers: [], pubs: []};
  window.T[name] = r;
  const c = new WSD.Client('ws://{{.Addr}}/ws', {
    getToken: () => fetchToken(name, c.state === 'connected' ? 'refresh' : 'connect'),
    minBackoff: 200,
  });
  c.on('state', (s, info) => {
    r.state = s;
    r.reconnects = c.reconnects;
    r.states.push({state: s, code: info.code || 0, reason: info.reason || '', at: Date.now()});
  });
  c.on('refresh', (e) => r.refreshes.push({exp: e.exp || 0, at: Date.now()}));
  c.on('error', (e) => r.errors.push({code: String(e.code || ''), message: String(e.message), refresh: !!e.refresh}));
  c.on('recover', (e) => r.recovers.push({recovered: !!e.recovered, offset: e.offset}));
  c.subscribe(CHANNEL, (p) => r.pubs.push({offset: p.offset, epoch: p.epoch, text: p.data && p.data.text}))
    .then(() => { r.subscribed = true; },
      (e) => r.errors.push({code: String(e.code || ''), message: 'subscribe: ' + e.message, refresh: false}));
}
track('A');
track('B');
</script>
</body></html>
`))

// tokenSite serves the page at / and the token endpoint at /token.
func tokenSite(t *testing.T, backend *tokenBackend, wsdAddr string) http.Handler {
	t.Helper()
	var page strings.Builder
	if err := tokenPageHTML.Execute(&page, map[string]string{"Addr": wsdAddr, "Channel": tokenChannel}); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(page.String()))
	})
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.Handle("GET /token", backend)
	return mux
}

type stateEvent struct {
	State  string `json:"state"`
	Code   int    `json:"code"`
	Reason string `json:"reason"`
	At     int64  `json:"at"` // Unix ms, the browser's clock
}

type tokenClient struct {
	Name       string       `json:"name"`
	State      string       `json:"state"`
	Reconnects int          `json:"reconnects"`
	Subscribed bool         `json:"subscribed"`
	States     []stateEvent `json:"states"`
	Refreshes  []struct {
		Exp int64 `json:"exp"`
		At  int64 `json:"at"`
	} `json:"refreshes"`
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Refresh bool   `json:"refresh"`
	} `json:"errors"`
	Recovers []struct {
		Recovered bool `json:"recovered"`
		Offset    int  `json:"offset"`
	} `json:"recovers"`
	Pubs []struct {
		Offset int    `json:"offset"`
		Epoch  string `json:"epoch"`
		Text   string `json:"text"`
	} `json:"pubs"`
}

type tokenPage struct {
	A *tokenClient `json:"A"`
	B *tokenClient `json:"B"`
}

func (p tokenPage) clients() []*tokenClient { return []*tokenClient{p.A, p.B} }

func readTokenPage(tb *tab) (tokenPage, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	p, err := chromedp.Run(ctx, chromedp.Evaluate[tokenPage](`window.T || {}`))
	if err == nil && (p.A == nil || p.B == nil) {
		err = errors.New("window.T has no clients A and B yet (wsd.js not loaded?)")
	}
	return p, err
}

// waitTokenPage polls the page until cond holds, failing after timeout
// with the last reason and a dump. Unexpected page errors fail at once.
func waitTokenPage(t *testing.T, tb *tab, what string, timeout time.Duration, cond func(tokenPage) error) tokenPage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		checkTokenConsole(t, tb)
		p, err := readTokenPage(tb)
		if err == nil {
			if err = cond(p); err == nil {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v: %v\n%s", what, timeout, err, p.dump())
		}
		time.Sleep(pollEvery)
	}
}

// lastDisconnect: the client's latest state is disconnected with code.
func (c *tokenClient) lastDisconnect(code int) error {
	for i := len(c.States) - 1; i >= 0; i-- {
		s := c.States[i]
		if s.State == "connecting" {
			continue // the attempt that asks for the token
		}
		if s.State != "disconnected" || s.Code != code {
			return fmt.Errorf("latest state of %s: %+v, want disconnected with %d", c.Name, s, code)
		}
		return nil
	}
	return fmt.Errorf("%s has no state yet", c.Name)
}

// matches: the client's publications are exactly want (offsets 1..n of
// one epoch), each once and in order.
func (c *tokenClient) matches(want []position) error {
	for i, p := range c.Pubs {
		if i >= len(want) {
			return fmt.Errorf("%d publications, want %d: extra %+v", len(c.Pubs), len(want), p)
		}
		w := want[i]
		if p.Offset != w.Offset || p.Epoch != w.Epoch || p.Text != pubText(w.Offset) {
			return fmt.Errorf("publication %d is %+v, want offset %d epoch %q text %q (a loss, duplicate or reordering)",
				i, p, w.Offset, w.Epoch, pubText(w.Offset))
		}
	}
	if len(c.Pubs) < len(want) {
		return fmt.Errorf("%d of %d publications", len(c.Pubs), len(want))
	}
	return nil
}

func (p tokenPage) dump() string {
	var b strings.Builder
	for _, c := range p.clients() {
		if c == nil {
			continue
		}
		fmt.Fprintf(&b, "  client %s: state %q, %d reconnects, subscribed %v\n", c.Name, c.State, c.Reconnects, c.Subscribed)
		for _, s := range c.States {
			fmt.Fprintf(&b, "    state %s code %d %q at %s\n", s.State, s.Code, s.Reason, time.UnixMilli(s.At).Format("15:04:05.000"))
		}
		for _, r := range c.Refreshes {
			fmt.Fprintf(&b, "    refresh exp %d at %s\n", r.Exp, time.UnixMilli(r.At).Format("15:04:05.000"))
		}
		fmt.Fprintf(&b, "    errors %+v\n    recovers %+v\n    %d publications:", c.Errors, c.Recovers, len(c.Pubs))
		for _, pub := range c.Pubs {
			fmt.Fprintf(&b, " %d", pub.Offset)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// ---- the application's backend: token endpoint ----

// tokenBackend signs a fresh tokenTTL token for tokenSub on each GET
// /token?client=A|B&phase=connect|refresh, except:
//   - B's first refresh gets a 401 (its session "ended"): wsd closes B at exp;
//   - B's second connect token is held until releaseHeld, so that the test
//     publishes while B is surely disconnected.
//
// Safe for concurrent use (the HTTP server calls it from many goroutines).
type tokenBackend struct {
	secret  string
	held    chan struct{} // closed when B's second connect request arrives
	release chan struct{} // closed by releaseHeld

	mu       sync.Mutex
	calls    map[string]int
	released bool
}

func newTokenBackend(secret string) *tokenBackend {
	return &tokenBackend{secret: secret, held: make(chan struct{}), release: make(chan struct{}), calls: map[string]int{}}
}

// releaseHeld lets the held request answer; later calls do nothing. Safe
// from any goroutine.
func (b *tokenBackend) releaseHeld() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.released {
		b.released = true
		close(b.release)
	}
}

func (b *tokenBackend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	client, phase := r.URL.Query().Get("client"), r.URL.Query().Get("phase")
	if (client != "A" && client != "B") || (phase != "connect" && phase != "refresh") {
		http.Error(w, "want client=A|B and phase=connect|refresh", http.StatusBadRequest)
		return
	}
	b.mu.Lock()
	b.calls[client+"/"+phase]++
	n := b.calls[client+"/"+phase]
	b.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	switch {
	case client == "B" && phase == "refresh" && n == 1:
		http.Error(w, "session ended", http.StatusUnauthorized)
		return
	case client == "B" && phase == "connect" && n == 2:
		close(b.held)
		select {
		case <-b.release:
		case <-r.Context().Done():
			return
		case <-time.After(holdMax):
		}
	}
	_, _ = w.Write([]byte(signHS256(b.secret, tokenSub, []string{tokenChannel}, time.Now(), tokenTTL)))
}

// signHS256 makes the JWT wsd checks: sub, channels, iat and exp. exp is
// whole seconds, rounded up so the token lives at least ttl.
func signHS256(secret, sub string, channels []string, now time.Time, ttl time.Duration) string {
	exp := now.Add(ttl + time.Second - 1).Truncate(time.Second)
	claims, _ := json.Marshal(map[string]any{"sub": sub, "channels": channels, "iat": now.Unix(), "exp": exp.Unix()})
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(signing))
	return signing + "." + enc.EncodeToString(mac.Sum(nil))
}

// ---- publishing ----

// publisher publishes "pub NN" through wsd's HTTP API and keeps what every
// client must receive.
type publisher struct {
	ctx  context.Context
	a    *api
	want []position
}

func newPublisher(ctx context.Context, a *api) *publisher { return &publisher{ctx: ctx, a: a} }

func pubText(offset int) string { return fmt.Sprintf("pub %02d", offset) }

func (p *publisher) one(t *testing.T) {
	t.Helper()
	n := len(p.want) + 1
	pos, err := p.a.publish(p.ctx, tokenChannel, "api", pubText(n))
	if err != nil {
		t.Fatalf("publish %d: %v", n, err)
	}
	if pos.Offset != n || (n > 1 && pos.Epoch != p.want[0].Epoch) {
		t.Fatalf("publication %d landed at %+v (first epoch %v): someone else publishes to %s?", n, pos, p.want, tokenChannel)
	}
	p.want = append(p.want, pos)
}

// metrics reads wsd's /metrics: unlabelled samples by name.
func (a *api) metrics(ctx context.Context) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "apikey "+apiKey)
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			m[name] = v
		}
	}
	return m, sc.Err()
}

// ---- Chromium ----
