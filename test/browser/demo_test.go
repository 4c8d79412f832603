package browser

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

var demoSymbols = []string{"WSD", "GNET", "NATS", "GOPH", "RFC"}

const newsChannel = "news:wire"

// The demo page's panels with wsd --demo, as a user sees them in two tabs:
// the stocks board paints prices and charts, two tabs see each other's
// dots move (binary publications) and each other's chat lines and joins,
// a news stream cut and restored loses and repeats no item, and a tab
// reloaded mid-stream shows the chat history, the prices and charts
// back-filled from history at once. Screenshots go to artifactsDir.
func TestDemoPanelsInChromium(t *testing.T) {
	chromium := findChromium(t)
	bin := buildDaemon(t)
	ctx, cancel := context.WithTimeout(context.Background(), scenarioTimeout)
	defer cancel()
	start := time.Now()
	phase := func(name string, since time.Time) {
		t.Logf("%-28s %6.2fs (at %5.2fs)", name, time.Since(since).Seconds(), time.Since(start).Seconds())
	}
	shots := artifactsDir(t)

	dir := t.TempDir()
	wsdAddr := freeLoopbackAddr(t)
	wsdLog := filepath.Join(dir, "wsd.log")
	startDaemon(t, bin, wsdAddr, wsdLog)
	a := newAPI(wsdAddr)
	pa, pb := mustProxy(t, wsdAddr), mustProxy(t, wsdAddr)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- wsd log (%s) ----\n%s\n---- end of wsd log ----", wsdLog, logTail(wsdLog, 60))
		}
	})
	allocCtx := startChromium(t, ctx, chromium, dir, chromedp.WindowSize(1400, 1000))

	p0 := time.Now()
	A := openTab(t, allocCtx, "A", "http://"+pa.addr()+"/")
	B := openTab(t, A.ctx, "B", "http://"+pb.addr()+"/")
	tabs := []*tab{A, B}
	for _, tb := range tabs {
		tb.waitDemo(t, "connected, prices, news stream open", 20*time.Second, func(s demoState) error {
			if s.State != "connected" {
				return fmt.Errorf("#state %q", s.State)
			}
			if s.NewsState != "open" {
				return fmt.Errorf("#news-state %q", s.NewsState)
			}
			return s.pricesShown()
		})
	}
	waitSubscribers(t, ctx, a, 2, 15*time.Second)
	phase("open two tabs", p0)

	// ---- chat: lines, joins and presence across the tabs ----
	p0 = time.Now()
	A.say(t, "alice", "hello from alice")
	B.waitDemo(t, "alice's line", 10*time.Second, func(s demoState) error {
		if len(s.Chat) != 1 {
			return fmt.Errorf("chat %q", s.Chat)
		}
		return nil
	})
	B.say(t, "bob", "hi alice")
	for _, tb := range tabs {
		tb.waitDemo(t, "both chat lines, two present", 10*time.Second, func(s demoState) error {
			if got := strings.Join(s.Chat, "|"); got != "1 alice: hello from alice|2 bob: hi alice" {
				return fmt.Errorf("chat %q", got)
			}
			if s.Present != "2" {
				return fmt.Errorf("#presence counts %q, want 2", s.Present)
			}
			return nil
		})
	}
	// B opened after A: A was told B joined.
	A.waitDemo(t, "a join line for B", 5*time.Second, func(s demoState) error {
		if len(s.Joins) == 0 {
			return errors.New("no join line in #messages")
		}
		return nil
	})
	phase("chat and joins", p0)

	// ---- multiplayer board: each tab sees the other's dot move ----
	p0 = time.Now()
	for i, pos := range [][2]float64{{0.2, 0.3}, {0.7, 0.6}} {
		A.eval(t, fmt.Sprintf("wsdDemo.moveDot(%v, %v)", pos[0], pos[1]))
		B.eval(t, fmt.Sprintf("wsdDemo.moveDot(%v, %v)", 1-pos[0], 1-pos[1]))
		for _, w := range []struct {
			tb   *tab
			x, y float64
		}{{B, pos[0], pos[1]}, {A, 1 - pos[0], 1 - pos[1]}} {
			w.tb.waitDemo(t, fmt.Sprintf("the other tab's dot at move %d", i+1), 10*time.Second, func(s demoState) error {
				if len(s.Dots) != 1 {
					return fmt.Errorf("%d other dots, want 1: %+v", len(s.Dots), s.Dots)
				}
				if d := s.Dots[0]; math.Abs(d.X-w.x) > 0.001 || math.Abs(d.Y-w.y) > 0.001 {
					return fmt.Errorf("the other dot is at (%.3f, %.3f), want (%.3f, %.3f)", d.X, d.Y, w.x, w.y)
				}
				return nil
			})
		}
	}
	phase("dots move", p0)
	A.screenshot(t, shots, "tab-A-panels")

	// ---- news: the SSE stream is cut and comes back, nothing lost or doubled ----
	p0 = time.Now()
	before := A.waitDemo(t, "a news item", 10*time.Second, func(s demoState) error {
		if len(s.News) == 0 {
			return errors.New("no news item yet")
		}
		return s.newsConsecutive("")
	})
	if pa.cut() == 0 {
		t.Fatal("proxy A had no open connection to cut")
	}
	A.waitDemo(t, "news stream down", 5*time.Second, func(s demoState) error {
		if s.NewsState == "open" {
			return errors.New("#news-state still open")
		}
		return nil
	})
	var cutTitles []string
	for i := 1; i <= 3; i++ {
		title := fmt.Sprintf("published while the stream was cut %d", i)
		if _, err := a.publishData(ctx, newsChannel, map[string]any{"n": 1000 + i, "title": title}); err != nil {
			t.Fatal(err)
		}
		cutTitles = append(cutTitles, title)
	}
	time.Sleep(cutFor) // the proxy keeps refusing a while, as a dead path would
	pa.resume()
	after := A.waitDemo(t, "news caught up after the cut", 30*time.Second, func(s demoState) error {
		if s.NewsState != "open" {
			return fmt.Errorf("#news-state %q", s.NewsState)
		}
		if err := s.newsConsecutive(""); err != nil {
			return err
		}
		for _, title := range cutTitles {
			if n := strings.Count(strings.Join(s.NewsTitles(), "\n"), title); n != 1 {
				return fmt.Errorf("%q shown %d times", title, n)
			}
		}
		if s.News[0].Offset < before.News[0].Offset+len(cutTitles) {
			return errors.New("not past the cut yet")
		}
		return nil
	})
	t.Logf("news offsets %d..%d before the cut, %d..%d after (no gap, no repeat)",
		before.News[len(before.News)-1].Offset, before.News[0].Offset, after.News[len(after.News)-1].Offset, after.News[0].Offset)
	phase("news cut and resumed", p0)

	// ---- reload B mid-stream: history at first paint ----
	p0 = time.Now()
	A.waitDemo(t, "a minute's chart filling", 15*time.Second, func(s demoState) error {
		return s.chartsAtLeast(16)
	})
	lastA := A.snapshotDemo(t)
	if err := chromedp.Do(B.ctx, chromedp.Reload()); err != nil {
		t.Fatalf("reload B: %v", err)
	}
	reloadedAt := time.Now()
	s := B.waitDemo(t, "history, prices and charts after the reload", 10*time.Second, func(s demoState) error {
		if got := strings.Join(s.Chat, "|"); got != "1 alice: hello from alice|2 bob: hi alice" {
			return fmt.Errorf("chat after reload %q (want the history)", got)
		}
		if err := s.pricesShown(); err != nil {
			return err
		}
		return s.chartsAtLeast(16)
	})
	for _, st := range s.Stocks {
		if st.From != "latest" { // not a tick's wait: the latest-on-subscribe push
			t.Errorf("%s: the first price came from %q, want the latest push", st.Symbol, st.From)
		}
	}
	for _, st := range s.Stocks {
		// Points older than A's newest before the reload came from history:
		// B was not subscribed then.
		old := 0
		for _, a := range lastA.Stocks {
			if a.Symbol == st.Symbol && st.First+8 <= a.Last {
				old = a.Last - st.First
			}
		}
		if old == 0 {
			t.Fatalf("%s: the chart starts at offset %d, not back-filled from before the reload: %+v vs %+v", st.Symbol, st.First, st, lastA.Stocks)
		}
	}
	t.Logf("tab B reloaded: chat history, 5 prices and charts of %s points %.2fs after the reload", s.chartPoints(), time.Since(reloadedAt).Seconds())
	phase("reload B", p0)
	B.screenshot(t, shots, "tab-B-after-reload")
	A.screenshot(t, shots, "tab-A-end")

	for _, tb := range tabs {
		tb.checkConsole(t)
	}
}

// ---- setup ----

func mustProxy(t *testing.T, upstream string) *cutProxy {
	t.Helper()
	p, err := startProxy(upstream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.close)
	return p
}

// artifactsDir is where screenshots go: $WSD_ARTIFACTS (kept), else a
// temporary directory kept only when the test fails. Its path is logged.
func artifactsDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("WSD_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshots go to %s ($WSD_ARTIFACTS)", d)
		return d
	}
	d, err := os.MkdirTemp("", "wsd-browser-artifacts-")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots go to %s (removed if the test passes; set WSD_ARTIFACTS to keep them)", d)
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(d)
		}
	})
	return d
}

func (tb *tab) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 10*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("tab %s: screenshot: %v", tb.name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot %s (%d bytes)", path, len(png))
}

func (tb *tab) eval(t *testing.T, js string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](js)); err != nil {
		t.Fatalf("tab %s: %s: %v", tb.name, js, err)
	}
}

// publishData posts data to channel through the HTTP API.
func (a *api) publishData(ctx context.Context, channel string, data any) (position, error) {
	var pos position
	err := a.do(ctx, "POST", "/api/publish", map[string]any{"channel": channel, "data": data}, &pos)
	return pos, err
}

// ---- what the test reads from the demo page ----

type demoState struct {
	State      string     `json:"state"`
	NewsState  string     `json:"newsState"`
	Chat       []string   `json:"chat"`  // "<offset> <nick>: <text>"
	Joins      []string   `json:"joins"` // client IDs of the join lines
	Present    string     `json:"present"`
	Stocks     []stockRow `json:"stocks"`
	Dots       []dot      `json:"dots"`
	News       []newsItem `json:"news"` // newest first
	NewsResets int        `json:"newsResets"`
	Log        []string   `json:"log"`
}

type stockRow struct {
	Symbol string `json:"symbol"`
	Price  string `json:"price"`
	From   string `json:"from"` // what painted the first price: latest, history or live
	Points int    `json:"points"`
	First  int    `json:"first"` // the chart's oldest offset
	Last   int    `json:"last"`
}

type dot struct {
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

type newsItem struct {
	Offset int    `json:"offset"`
	Epoch  string `json:"epoch"`
	Title  string `json:"title"`
}

const demoJS = `(() => {
  const $ = (id) => document.getElementById(id);
  const q = (sel) => Array.from(document.querySelectorAll(sel));
  return {
    state: ($('state').textContent || '').trim(),
    newsState: ($('news-state').textContent || '').trim(),
    chat: q('#messages li[data-offset]').map((li) => li.dataset.offset + ' ' +
      li.querySelector('.nick').textContent.trim() + ' ' + li.querySelector('.text').textContent.trim()),
    joins: q('#messages li.sys.join').map((li) => li.dataset.client),
    present: $('presence').dataset.count || '',
    stocks: q('#ticker .tick').map((row) => {
      const svg = row.querySelector('svg');
      return {symbol: row.dataset.symbol, price: row.dataset.value || '', from: row.dataset.firstFrom || '',
        points: Number(svg.dataset.points || 0), first: Number(svg.dataset.first || 0), last: Number(svg.dataset.last || 0)};
    }),
    dots: window.wsdDemo ? window.wsdDemo.dots() : [],
    news: q('#news li[data-offset]').map((li) => ({offset: Number(li.dataset.offset), epoch: li.dataset.epoch,
      title: li.querySelector('.title').textContent})),
    newsResets: q('#news li.reset').length,
    log: q('#log li').slice(0, 15).map((li) => li.textContent),
  };
})()`

func (tb *tab) readDemo() (demoState, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[demoState](demoJS))
}

func (tb *tab) snapshotDemo(t *testing.T) demoState {
	t.Helper()
	s, err := tb.readDemo()
	if err != nil {
		t.Fatalf("tab %s: read the page: %v", tb.name, err)
	}
	return s
}

// waitDemo polls the page until cond holds; a page error fails at once.
func (tb *tab) waitDemo(t *testing.T, what string, timeout time.Duration, cond func(demoState) error) demoState {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		tb.checkConsole(t)
		s, err := tb.readDemo()
		if err == nil {
			if err = cond(s); err == nil {
				return s
			}
		}
		if time.Now().After(deadline) || tb.ctx.Err() != nil {
			t.Fatalf("tab %s: %s: not so after %v: %v\n%s", tb.name, what, timeout, err, s.dump())
		}
		time.Sleep(pollEvery)
	}
}

func (s demoState) pricesShown() error {
	if len(s.Stocks) != len(demoSymbols) {
		return fmt.Errorf("%d stock rows, want %d", len(s.Stocks), len(demoSymbols))
	}
	for i, st := range s.Stocks {
		if st.Symbol != demoSymbols[i] {
			return fmt.Errorf("row %d is %q, want %q", i, st.Symbol, demoSymbols[i])
		}
		if p, err := strconv.ParseFloat(st.Price, 64); err != nil || p <= 0 {
			return fmt.Errorf("%s shows no price (%q)", st.Symbol, st.Price)
		}
	}
	return nil
}

func (s demoState) chartsAtLeast(n int) error {
	for _, st := range s.Stocks {
		if st.Points < n {
			return fmt.Errorf("%s's chart has %d points, want at least %d", st.Symbol, st.Points, n)
		}
		if st.Last-st.First+1 != st.Points {
			return fmt.Errorf("%s's chart: %d points for offsets %d..%d", st.Symbol, st.Points, st.First, st.Last)
		}
	}
	return nil
}

func (s demoState) chartPoints() string {
	var p []string
	for _, st := range s.Stocks {
		p = append(p, strconv.Itoa(st.Points))
	}
	return strings.Join(p, "/")
}

func (s demoState) NewsTitles() []string {
	var out []string
	for _, n := range s.News {
		out = append(out, n.Title)
	}
	return out
}

// newsConsecutive: the items of epoch (all of them when "") come first,
// newest first, each offset one less than the one above it: no gap, no
// repeat, no reordering; with "" no other epoch either.
func (s demoState) newsConsecutive(epoch string) error {
	var items []newsItem
	for i, n := range s.News {
		if epoch == "" && n.Epoch != s.News[0].Epoch {
			return fmt.Errorf("news item %d has epoch %q, the first %q", i, n.Epoch, s.News[0].Epoch)
		}
		if epoch == "" || n.Epoch == epoch {
			if i != len(items) {
				return fmt.Errorf("news item %d of epoch %q is below one of another epoch", i, epoch)
			}
			items = append(items, n)
		}
	}
	for i := 1; i < len(items); i++ {
		if items[i].Offset != items[i-1].Offset-1 {
			return fmt.Errorf("news offsets %d then %d: a gap, repeat or reordering", items[i-1].Offset, items[i].Offset)
		}
	}
	return nil
}

func (s demoState) dump() string {
	var b strings.Builder
	fmt.Fprintf(&b, "  #state %q, #news-state %q, present %q, joins %v\n", s.State, s.NewsState, s.Present, s.Joins)
	fmt.Fprintf(&b, "  chat: %q\n  stocks: %+v\n  dots: %+v\n  news:\n", s.Chat, s.Stocks, s.Dots)
	for _, n := range s.News {
		fmt.Fprintf(&b, "    %d %s %q\n", n.Offset, n.Epoch, n.Title)
	}
	fmt.Fprintf(&b, "  #log (newest first):\n")
	for _, l := range s.Log {
		fmt.Fprintf(&b, "    %s\n", l)
	}
	return b.String()
}
