// Package browser drives the wsd demo page (web/index.html + web/wsd.js) in a
// real headless Chromium with chromedp: two tabs chat with each other, the
// page's TCP connections are cut while publications go on, and wsd is
// restarted. The page must reconnect on its own, show every publication
// exactly once and in order, and say plainly when the history was reset.
//
// It is a module of its own so that the main module does not depend on
// chromedp. It builds cmd/wsd from ../.. and needs /usr/bin/chromium (Debian
// chromium; scripts/install-test-deps.sh installs it). Without a browser it
// skips with a loud reason, or fails under CI=true.
//
// Environment: WSD_CHROMIUM overrides the browser path.
package browser

import (
	"context"
	"errors"
	"fmt"
	"os"
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
	chatChannel = "chat:lobby"
	// scenarioTimeout bounds everything after the build: browser start, the
	// chat, the cuts and the restart.
	scenarioTimeout = 90 * time.Second
	pollEvery       = 100 * time.Millisecond
	cutFor          = 1500 * time.Millisecond // how long the proxy refuses connections
	cutPublications = 20
)

func TestDemoPageInChromium(t *testing.T) {
	chromium := findChromium(t)
	t0 := time.Now()
	bin := buildDaemon(t)
	t.Logf("built wsd in %v", time.Since(t0).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	start := time.Now()
	phase := func(name string, since time.Time) {
		t.Logf("%-28s %6.2fs (at %5.2fs)", name, time.Since(since).Seconds(), time.Since(start).Seconds())
	}

	// ---- wsd and the two proxies (one per tab, so a cut can hit one tab) ----
	dir := t.TempDir()
	wsdAddr := freeLoopbackAddr(t)
	wsdLog := filepath.Join(dir, "wsd.log")
	d := startDaemon(t, bin, wsdAddr, wsdLog)
	api := newAPI(wsdAddr)
	proxies := map[string]*cutProxy{}
	for _, name := range []string{"A", "B"} {
		p, err := startProxy(wsdAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.close)
		proxies[name] = p
	}
	pa, pb := proxies["A"], proxies["B"]
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("proxy A: %d forwarded, %d refused; proxy B: %d forwarded, %d refused",
				pa.accepted.Load(), pa.refused.Load(), pb.accepted.Load(), pb.refused.Load())
			t.Logf("---- wsd log (%s) ----\n%s\n---- end of wsd log ----", wsdLog, logTail(wsdLog, 60))
		}
	})

	// ---- Chromium ----
	allocCtx := startChromium(t, ctx, chromium, dir)

	p0 := time.Now()
	A := openTab(t, allocCtx, "A", "http://"+pa.addr()+"/")
	B := openTab(t, A.ctx, "B", "http://"+pb.addr()+"/") // a child context: a second tab of the same browser
	tabs := []*tab{A, B}
	for _, tb := range tabs {
		tb.waitFor(t, "connected after load", 15*time.Second, func(s pageState) error {
			return s.connected()
		})
	}
	waitSubscribers(t, ctx, api, 2, 15*time.Second)
	phase("open two tabs", p0)

	// want is what every tab must show, in this order.
	var want []wantMsg

	// ---- 1. chat between the tabs ----
	p0 = time.Now()
	A.say(t, "alice", "hello from alice")
	want = append(want, wantMsg{offset: 1, nick: "alice", text: "hello from alice"})
	for _, tb := range tabs {
		tb.waitList(t, "alice's message", 10*time.Second, want)
	}
	B.say(t, "bob", "hi alice, bob here")
	want = append(want, wantMsg{offset: 2, nick: "bob", text: "hi alice, bob here"})
	for _, tb := range tabs {
		tb.waitList(t, "bob's message", 10*time.Second, want)
	}
	phase("chat A<->B", p0)

	// ---- 2. cut both tabs; publish meanwhile straight to wsd ----
	p0 = time.Now()
	rA, rB := A.snapshot(t).reconnectCount(t), B.snapshot(t).reconnectCount(t)
	nA, nB := pa.cut(), pb.cut()
	cutAt := time.Now()
	if nA == 0 || nB == 0 {
		t.Fatalf("the proxies had no open connection to cut (A %d, B %d): the page's /ws does not go through them?", nA, nB)
	}
	for _, tb := range tabs {
		tb.waitFor(t, "not connected after the cut", 5*time.Second, func(s pageState) error {
			if s.State == "connected" {
				return errors.New("still says connected")
			}
			return nil
		})
	}
	var epoch1 string
	for i := 1; i <= cutPublications; i++ {
		pos := publish(t, ctx, api, "api", fmt.Sprintf("published while cut %02d", i), len(want)+1, epoch1)
		if epoch1 == "" {
			epoch1 = pos.Epoch
			for j := range want {
				want[j].epoch = epoch1
			}
		}
		want = append(want, wantMsg{offset: pos.Offset, epoch: pos.Epoch, nick: "api", text: fmt.Sprintf("published while cut %02d", i)})
	}
	for _, tb := range tabs { // the cut is real: nothing arrived meanwhile
		if s := tb.snapshot(t); len(s.Msgs) != 2 {
			t.Fatalf("tab %s: %d messages while its connection was cut, want 2:\n%s", tb.name, len(s.Msgs), s.dump())
		}
	}
	time.Sleep(time.Until(cutAt.Add(cutFor)))
	pa.resume()
	pb.resume()
	resumedAt := time.Now()
	for _, tb := range tabs {
		r := map[*tab]int{A: rA, B: rB}[tb]
		tb.waitFor(t, "reconnected with every message after the cut", 30*time.Second, func(s pageState) error {
			if err := s.reconnectedSince(r); err != nil {
				return err
			}
			return s.matches(want)
		})
		t.Logf("tab %s: reconnected and caught up (seen %.2fs after the proxy accepted again)", tb.name, time.Since(resumedAt).Seconds())
	}
	phase("cut both, 20 missed", p0)

	// ---- 3. cut tab A only, while publications go on before, during and after ----
	p0 = time.Now()
	rA, rB = A.snapshot(t).reconnectCount(t), B.snapshot(t).reconnectCount(t)
	if pa.cut() == 0 {
		t.Fatal("proxy A had no open connection to cut")
	}
	cutAt = time.Now()
	resumed, after := false, 0
	// At most 40: with --demo, chat keeps 50 publications, and A must
	// recover all of them however long its reconnect takes.
	for n := 1; n <= 40 && after < 10; n++ {
		text := fmt.Sprintf("published around A's cut %02d", n)
		pos := publish(t, ctx, api, "api", text, len(want)+1, epoch1)
		want = append(want, wantMsg{offset: pos.Offset, epoch: pos.Epoch, nick: "api", text: text})
		if !resumed && time.Since(cutAt) >= time.Second {
			pa.resume()
			resumed = true
		}
		if resumed {
			if after > 0 || A.snapshot(t).reconnectedSince(rA) == nil {
				after++ // A is back: keep publishing while it resubscribes and replays
			}
		}
		time.Sleep(pollEvery)
	}
	if !resumed {
		pa.resume()
	}
	A.waitFor(t, "reconnected with every message after its cut", 30*time.Second, func(s pageState) error {
		if err := s.reconnectedSince(rA); err != nil {
			return err
		}
		return s.matches(want)
	})
	B.waitFor(t, "every message, live (B was not cut)", 10*time.Second, func(s pageState) error {
		if err := s.connected(); err != nil {
			return err
		}
		if n := s.reconnectCount(t); n != rB {
			return fmt.Errorf("B reconnected (%d -> %d) although only A was cut", rB, n)
		}
		return s.matches(want)
	})
	phase(fmt.Sprintf("cut A, %d published", len(want)-2-cutPublications), p0)

	// ---- 4. restart wsd on the same port: history is gone (new epoch) ----
	p0 = time.Now()
	rA, rB = A.snapshot(t).reconnectCount(t), B.snapshot(t).reconnectCount(t)
	for _, tb := range tabs {
		if s := tb.snapshot(t); s.NoticeVisible {
			t.Fatalf("tab %s shows the notice before the restart: %q", tb.name, s.NoticeText)
		}
	}
	newsEpochBefore := map[*tab]string{}
	for _, tb := range tabs {
		s := tb.waitDemo(t, "a news item before the restart", 10*time.Second, func(s demoState) error {
			if len(s.News) == 0 || s.NewsResets != 0 {
				return fmt.Errorf("%d news items, %d resets", len(s.News), s.NewsResets)
			}
			return nil
		})
		newsEpochBefore[tb] = s.News[0].Epoch
	}
	if err := d.stop(); err != nil {
		t.Fatalf("stop wsd: %v", err)
	}
	d = startDaemon(t, bin, wsdAddr, wsdLog)
	restartedAt := time.Now()
	resetText := regexp.MustCompile(`(?i)\breset\b`)
	for _, tb := range tabs {
		r := map[*tab]int{A: rA, B: rB}[tb]
		tb.waitFor(t, "reconnected after the restart, saying history was reset", 40*time.Second, func(s pageState) error {
			if err := s.reconnectedSince(r); err != nil {
				return err
			}
			if !s.NoticeVisible {
				return errors.New("#notice is not visible")
			}
			if !resetText.MatchString(s.NoticeText) {
				return fmt.Errorf("#notice does not say the history was reset: %q", s.NoticeText)
			}
			return nil
		})
		t.Logf("tab %s: reconnected after the restart (seen %.2fs after wsd was up again); notice: %q",
			tb.name, time.Since(restartedAt).Seconds(), tb.snapshot(t).NoticeText)
	}
	waitSubscribers(t, ctx, api, 2, 15*time.Second)
	var epoch2 string
	for i := 1; i <= 3; i++ {
		text := fmt.Sprintf("after the restart %d", i)
		pos := publish(t, ctx, api, "api", text, i, epoch2)
		if pos.Epoch == epoch1 {
			t.Fatalf("wsd restarted but the epoch of %s is still %q", chatChannel, epoch1)
		}
		epoch2 = pos.Epoch
		want = append(want, wantMsg{offset: pos.Offset, epoch: pos.Epoch, nick: "api", text: text})
	}
	for _, tb := range tabs {
		tb.waitFor(t, "the new epoch's messages after the old ones", 10*time.Second, func(s pageState) error {
			if !s.NoticeVisible {
				return errors.New("#notice went away")
			}
			return s.matches(want)
		})
	}
	// The news column's EventSource came back with a Last-Event-ID of the
	// old epoch: the page says the stream was reset and goes on in the new one.
	for _, tb := range tabs {
		s := tb.waitDemo(t, "the news stream reset and live again", 20*time.Second, func(s demoState) error {
			if s.NewsResets == 0 {
				return errors.New("no reset line in #news")
			}
			if len(s.News) == 0 || s.News[0].Epoch == newsEpochBefore[tb] {
				return errors.New("no news item of the new epoch yet")
			}
			return s.newsConsecutive(s.News[0].Epoch)
		})
		t.Logf("tab %s: news reset, now at %s:%d", tb.name, s.News[0].Epoch, s.News[0].Offset)
	}
	phase("restart wsd", p0)

	for _, tb := range tabs {
		tb.checkConsole(t)
	}
	t.Logf("scenario took %.2fs; %d messages on %s; proxy A %d/%d, proxy B %d/%d connections forwarded/refused",
		time.Since(start).Seconds(), len(want), chatChannel,
		pa.accepted.Load(), pa.refused.Load(), pb.accepted.Load(), pb.refused.Load())
}

// ---- Chromium ----

// findChromium returns the browser to use: $WSD_CHROMIUM, else Debian's
// /usr/bin/chromium. A missing browser skips the test loudly, or fails it
// under CI=true (missingDep).
func findChromium(t *testing.T) string {
	t.Helper()
	path := os.Getenv("WSD_CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if !isExecutable(path) {
		missingDep(t, "chromium ("+path+" is not an executable file)",
			"Debian chromium; scripts/install-test-deps.sh installs it (as root; make test runs it first)")
	}
	return path
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---- one tab of the demo page ----

type tab struct {
	name string
	ctx  context.Context

	mu       sync.Mutex
	problems []string // page exceptions and console errors: each fails the test
	console  []string // every console message, for the failure dump
}

// openTab opens url in a new tab (the first context of a browser starts the
// browser) and records its console from the very start.
func openTab(t *testing.T, parent context.Context, name, url string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	tb := &tab{name: name, ctx: ctx}
	messages := chromedp.Console(ctx) // starts the browser/tab; subscribes before the page loads
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.record(m)
		}
	}()
	t.Cleanup(func() {
		if t.Failed() {
			tb.mu.Lock()
			t.Logf("---- tab %s console ----\n%s\n---- end ----", tb.name, strings.Join(tb.console, "\n"))
			tb.mu.Unlock()
		}
	})
	nctx, ncancel := context.WithTimeout(ctx, 20*time.Second)
	defer ncancel()
	if err := chromedp.Do(nctx, chromedp.Navigate(url)); err != nil {
		t.Fatalf("tab %s: open %s: %v", name, url, err)
	}
	return tb
}

// expectedNoise are browser log entries that the cuts and restarts cause on
// purpose: the refused WebSocket handshakes, and the page's missing favicon.
var expectedNoise = regexp.MustCompile(`WebSocket connection to '.*' failed|Failed to load resource: the server responded with a status of 404|ERR_CONNECTION_(RESET|REFUSED|CLOSED)|net::ERR_`)

func (tb *tab) record(m chromedp.ConsoleMessage) {
	where := ""
	if m.URL != "" {
		where = fmt.Sprintf(" (%s:%d)", m.URL, m.Line+1)
	}
	line := fmt.Sprintf("%s [%s%s] %s%s", m.Time.Format("15:04:05.000"), m.Type, sourceTag(m.Source), m.Text, where)
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.console = append(tb.console, line)
	switch {
	case m.IsException():
		detail := m.Text
		if m.Exception != nil && m.Exception.Exception != nil && m.Exception.Exception.Description != "" {
			detail = m.Exception.Exception.Description
		}
		tb.problems = append(tb.problems, "uncaught exception: "+detail+where)
	case m.Type == chromedp.ConsoleError && m.Source == "":
		tb.problems = append(tb.problems, "console.error: "+m.Text+where)
	case m.Type == chromedp.ConsoleError && !expectedNoise.MatchString(m.Text):
		tb.problems = append(tb.problems, "browser log error ("+m.Source+"): "+m.Text+where)
	}
}

func sourceTag(s string) string {
	if s == "" {
		return ""
	}
	return "/" + s
}

func (tb *tab) checkConsole(t *testing.T) {
	t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.problems) > 0 {
		t.Fatalf("tab %s: the page reported %d error(s):\n  %s", tb.name, len(tb.problems), strings.Join(tb.problems, "\n  "))
	}
}

// say types nick and text into the chat form and presses Send.
func (tb *tab) say(t *testing.T, nick, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	err := chromedp.Do(ctx,
		// Empty both fields as a user would (select and delete). chromedp's
		// Clear only resets the value attribute, which an input whose value
		// a script set (the page pre-fills a guest nickname) ignores.
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`(() => {
				for (const id of ['nick-input', 'msg-input']) document.getElementById(id).value = '';
				return true;
			})()`)(ctx, t)
			return err
		}),
		chromedp.SendKeys(chromedp.ID("nick-input"), nick),
		chromedp.SendKeys(chromedp.ID("msg-input"), text),
		chromedp.Click(chromedp.ID("send")),
	)
	if err != nil {
		t.Fatalf("tab %s: send %q as %q: %v", tb.name, text, nick, err)
	}
}

// pageState is what the test reads from the page, through the stable ids.
type pageState struct {
	State         string   `json:"state"`
	Reconnects    string   `json:"reconnects"`
	NoticeVisible bool     `json:"noticeVisible"`
	NoticeText    string   `json:"noticeText"`
	Visibility    string   `json:"visibility"`
	Msgs          []liInfo `json:"msgs"`
	Log           []string `json:"log"`
}

type liInfo struct {
	Offset string  `json:"offset"`
	Epoch  string  `json:"epoch"` // data-epoch, when the page sets it
	Text   string  `json:"text"`
	Nick   *string `json:"nick"` // the .nick element's text, when the page has one
}

const snapshotJS = `(() => {
  const $ = (id) => document.getElementById(id);
  const n = $('notice');
  const log = $('log');
  return {
    state: ($('state').textContent || '').trim(),
    reconnects: ($('reconnects').textContent || '').trim(),
    noticeVisible: !!n && !n.hidden && getComputedStyle(n).display !== 'none' && getComputedStyle(n).visibility !== 'hidden',
    noticeText: n ? (n.textContent || '').replace(/\s+/g, ' ').trim() : '',
    visibility: document.visibilityState,
    msgs: Array.from(document.querySelectorAll('#messages li[data-offset]')).map((li) => ({
      offset: li.dataset.offset === undefined ? '' : li.dataset.offset,
      epoch: li.dataset.epoch || '',
      text: (li.textContent || '').replace(/\s+/g, ' ').trim(),
      nick: li.querySelector('.nick') ? li.querySelector('.nick').textContent.trim() : null,
    })),
    log: log ? Array.from(log.querySelectorAll('li')).slice(0, 20).map((li) => li.textContent) : [],
  };
})()`

func (tb *tab) snapshot(t *testing.T) pageState {
	t.Helper()
	s, err := tb.read()
	if err != nil {
		t.Fatalf("tab %s: read the page: %v", tb.name, err)
	}
	return s
}

func (tb *tab) read() (pageState, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[pageState](snapshotJS))
}

// waitFor polls the page until cond holds, failing after timeout (or at the
// scenario deadline) with the last reason and a dump of the page. A page
// error fails at once.
func (tb *tab) waitFor(t *testing.T, what string, timeout time.Duration, cond func(pageState) error) pageState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	if d, ok := tb.ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d.Add(-time.Second)
	}
	for {
		tb.checkConsole(t)
		s, err := tb.read()
		if err == nil {
			if err = cond(s); err == nil {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tab %s: %s: not so after %v: %v\n%s", tb.name, what, timeout, err, s.dump())
		}
		time.Sleep(pollEvery)
	}
}

func (tb *tab) waitList(t *testing.T, what string, timeout time.Duration, want []wantMsg) {
	t.Helper()
	tb.waitFor(t, what, timeout, func(s pageState) error { return s.matches(want) })
}

func (s pageState) connected() error {
	if s.State != "connected" {
		return fmt.Errorf("#state is %q, want connected", s.State)
	}
	return nil
}

func (s pageState) reconnectCount(t *testing.T) int {
	t.Helper()
	n, err := strconv.Atoi(s.Reconnects)
	if err != nil {
		t.Fatalf("#reconnects is %q, not a number", s.Reconnects)
	}
	return n
}

// reconnectedSince: connected again, with more reconnects than before.
func (s pageState) reconnectedSince(before int) error {
	if err := s.connected(); err != nil {
		return err
	}
	n, err := strconv.Atoi(s.Reconnects)
	if err != nil {
		return fmt.Errorf("#reconnects is %q, not a number", s.Reconnects)
	}
	if n <= before {
		return fmt.Errorf("#reconnects is %d, want more than %d", n, before)
	}
	return nil
}

type wantMsg struct {
	offset int
	epoch  string // "" until the test knows it (messages sent from the page)
	nick   string
	text   string
}

// matches checks the whole #messages list: each li's data-offset must
// follow the previous one by exactly 1 within an epoch (no gap, no
// duplicate, no reordering), and the list must be exactly want, in order.
func (s pageState) matches(want []wantMsg) error {
	seen := map[string]int{}
	prev := 0
	for i, li := range s.Msgs {
		off, err := strconv.Atoi(li.Offset)
		if err != nil {
			return fmt.Errorf("li %d: data-offset %q is not a number", i, li.Offset)
		}
		key := li.Epoch + "/" + li.Offset
		if j, dup := seen[key]; dup {
			return fmt.Errorf("li %d: offset %d (epoch %q) shown twice, also at li %d", i, off, li.Epoch, j)
		}
		seen[key] = i
		newEpoch := i > 0 && li.Epoch != s.Msgs[i-1].Epoch
		if i > 0 && li.Epoch == "" && i < len(want) && want[i].epoch != "" && want[i].epoch != want[i-1].epoch {
			newEpoch = true // the page does not tag epochs: trust the test's knowledge of the restart
		}
		switch {
		case i == 0 || newEpoch:
			if i > 0 && off != 1 {
				return fmt.Errorf("li %d: first message of a new epoch has offset %d, want 1", i, off)
			}
		case off != prev+1:
			return fmt.Errorf("li %d: offset %d after %d: a gap, duplicate or reordering", i, off, prev)
		}
		prev = off
	}
	if len(s.Msgs) > len(want) {
		return fmt.Errorf("%d messages shown, want %d: extra from li %d: %q", len(s.Msgs), len(want), len(want), s.Msgs[len(want)].Text)
	}
	for i, li := range s.Msgs {
		w := want[i]
		if li.Offset != strconv.Itoa(w.offset) {
			return fmt.Errorf("li %d: offset %s, want %d (%q)", i, li.Offset, w.offset, w.text)
		}
		if w.epoch != "" && li.Epoch != "" && li.Epoch != w.epoch {
			return fmt.Errorf("li %d: epoch %q, want %q", i, li.Epoch, w.epoch)
		}
		if !strings.Contains(li.Text, w.text) || !strings.Contains(li.Text, w.nick) {
			return fmt.Errorf("li %d (offset %d): text %q, want %q from %q", i, w.offset, li.Text, w.text, w.nick)
		}
		if li.Nick != nil && strings.TrimSuffix(strings.TrimSpace(*li.Nick), ":") != w.nick {
			return fmt.Errorf("li %d (offset %d): nickname %q, want %q", i, w.offset, *li.Nick, w.nick)
		}
	}
	if len(s.Msgs) < len(want) {
		return fmt.Errorf("%d of %d messages shown; next missing: offset %d %q", len(s.Msgs), len(want), want[len(s.Msgs)].offset, want[len(s.Msgs)].text)
	}
	return nil
}

func (s pageState) dump() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  #state %q, #reconnects %q, visibility %q\n", s.State, s.Reconnects, s.Visibility)
	fmt.Fprintf(&b, "  #notice visible=%v %q\n", s.NoticeVisible, s.NoticeText)
	fmt.Fprintf(&b, "  #messages (%d):\n", len(s.Msgs))
	for i, li := range s.Msgs {
		fmt.Fprintf(&b, "    %3d offset=%s epoch=%s %q\n", i, li.Offset, li.Epoch, li.Text)
	}
	fmt.Fprintf(&b, "  #log (newest first):\n")
	for _, l := range s.Log {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	return b.String()
}

// ---- wsd side ----

// publish sends one chat message through the HTTP API, straight to wsd, and
// checks that it landed at wantOffset (and in epoch, when given).
func publish(t *testing.T, ctx context.Context, a *api, nick, text string, wantOffset int, epoch string) position {
	t.Helper()
	pos, err := a.publish(ctx, chatChannel, nick, text)
	if err != nil {
		t.Fatalf("publish %q: %v", text, err)
	}
	if pos.Offset != wantOffset || (epoch != "" && pos.Epoch != epoch) {
		t.Fatalf("publish %q landed at %+v, want offset %d epoch %q (someone else publishes to %s?)", text, pos, wantOffset, epoch, chatChannel)
	}
	return pos
}

// waitSubscribers waits until wsd counts n subscriptions to the chat
// channel: both tabs are subscribed, so what is published next reaches them.
func waitSubscribers(t *testing.T, ctx context.Context, a *api, n int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got, err := a.connections(ctx, chatChannel)
		if err == nil && got == n {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("wsd has %d subscriptions to %s (err %v), want %d", got, chatChannel, err, n)
		}
		time.Sleep(pollEvery)
	}
}

// startChromium returns an allocator context for a headless Chromium with
// its own profile in dir (extra: more options, e.g. a window size); the
// browser is killed in cleanup, and its output is logged if the test
// failed.
func startChromium(t *testing.T, ctx context.Context, path, dir string, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	chromeLog, err := os.Create(filepath.Join(dir, "chromium.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chromeLog.Close() })
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(filepath.Join(dir, "chromium-profile")),
		chromedp.CombinedOutput(chromeLog),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(ctx, append(opts, extra...)...)
	t.Cleanup(allocCancel) // kills Chromium (and what it left) even on failure
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(chromeLog.Name())
			var keep []string // without the D-Bus complaints of a machine with no session bus
			for _, l := range strings.Split(string(b), "\n") {
				if l != "" && !strings.Contains(l, "dbus/") {
					keep = append(keep, l)
				}
			}
			t.Logf("---- chromium output ----\n%s\n---- end ----", tail(strings.Join(keep, "\n"), 30))
		}
	})
	return allocCtx
}
