package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/internal/wstest"
)

// parseHint reads the retry= parameter of a restart reason.
func parseHint(t *testing.T, reason string) time.Duration {
	t.Helper()
	_, v, ok := strings.Cut(reason, "; retry=")
	if !strings.HasPrefix(reason, "restart; retry=") || !ok {
		t.Fatalf("close reason %q is not a restart hint", reason)
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		t.Fatalf("close reason %q: %v", reason, err)
	}
	return time.Duration(f * float64(time.Second))
}

// With DrainSpread, Shutdown closes every conn with 1012 and a hint of its
// own, spread over the window; without it, 1001 as before.
func TestShutdownDrainSpread(t *testing.T) {
	const (
		n      = 60
		spread = 4 * time.Second
	)
	srv := New[struct{}](Options{DrainSpread: spread})
	srv.Handle("/x", Funcs[struct{}]{})
	addr, done := serve(t, srv)
	cs := make([]*wstest.Client, n)
	for i := range cs {
		c, err := wstest.Dial(addr, "/x")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs[i] = c
	}
	waitFor(t, 10*time.Second, "every upgrade", func() bool { return srv.Stats().Upgraded == n })
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	hints := map[time.Duration]bool{}
	var lo, hi time.Duration = spread, 0
	for i, c := range cs {
		code, reason, err := c.ExpectClose()
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if code != codec.CloseServiceRestart {
			t.Fatalf("client %d: close %d %q, want 1012", i, code, reason)
		}
		h := parseHint(t, reason)
		if h < 0 || h >= spread {
			t.Fatalf("client %d: hint %v outside [0, %v)", i, h, spread)
		}
		hints[h] = true
		lo, hi = min(lo, h), max(hi, h)
	}
	// 60 uniform draws over 4 s: the chance that they all land in one half
	// of the window is 2^-59; duplicates at 1 ms resolution are rare.
	if hi-lo < spread/2 || len(hints) < n/2 {
		t.Fatalf("hints not spread: %d distinct in [%v, %v]", len(hints), lo, hi)
	}
	if err := recv(t, shut, 10*time.Second, "Shutdown"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, done, 10*time.Second, "ListenAndServe"); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownWithoutSpreadSends1001(t *testing.T) {
	srv := New[struct{}](Options{})
	srv.Handle("/x", Funcs[struct{}]{})
	addr, done := serve(t, srv)
	c, err := wstest.Dial(addr, "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	code, reason, err := c.ExpectClose()
	if err != nil || code != codec.CloseGoingAway || reason != "server shutting down" {
		t.Fatalf("close %d %q %v, want 1001 server shutting down", code, reason, err)
	}
	recv(t, done, 10*time.Second, "ListenAndServe")
}

// Upgrades beyond MaxAcceptRate get 503 with a Retry-After that spreads
// the refused clients at the rate, counted under accept_rate; plain HTTP
// is not rate limited.
func TestMaxAcceptRate(t *testing.T) {
	const rate = 5
	srv := New[struct{}](Options{MaxAcceptRate: rate})
	srv.Handle("/x", Funcs[struct{}]{})
	addr := start(t, srv)
	var (
		ok      int
		retries []int
	)
	// Twenty upgrades in well under a second: the burst (one second's
	// worth) passes, the rest are refused with growing Retry-After.
	begin := time.Now()
	for range 4 * rate {
		c, err := wstest.Dial(addr, "/x")
		var he *wstest.HTTPStatusError
		switch {
		case err == nil:
			ok++
			c.Close()
		case errors.As(err, &he) && he.Status == 503:
			_, v, _ := strings.Cut(he.Head, "Retry-After: ")
			v, _, _ = strings.Cut(v, "\r\n")
			ra, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("503 without a whole-seconds Retry-After:\n%s", he.Head)
			}
			retries = append(retries, ra)
		default:
			t.Fatalf("upgrade: %v", err)
		}
	}
	elapsed := time.Since(begin)
	// A slow box may earn a token or two back during the loop.
	extra := int(elapsed.Seconds()*rate) + 1
	if ok < rate || ok > rate+extra {
		t.Fatalf("%d upgrades admitted in %v at %d/s", ok, elapsed, rate)
	}
	for i := 1; i < len(retries); i++ {
		if retries[i] < retries[i-1] {
			t.Fatalf("Retry-After went down: %v", retries)
		}
	}
	// About 15 refused at 5/s: their slots span about 3 s (one interval
	// per client, whatever the box's speed).
	if len(retries) < 8 || retries[0] < 1 || retries[len(retries)-1]-retries[0] < (len(retries)-1)/rate-1 {
		t.Fatalf("Retry-After values %v do not spread %d refused clients at %d/s", retries, len(retries), rate)
	}
	waitFor(t, 10*time.Second, "the refusals counted", func() bool {
		return srv.Stats().Closes["accept_rate"] == uint64(len(retries))
	})
	if st := srv.Stats(); st.Closes["over_capacity"] != 0 || st.Closes["handshake_rejected"] != 0 {
		t.Fatalf("refusals counted elsewhere: %v", st.Closes)
	}
}

// SSE-style streams take a token of MaxAcceptRate like upgrades (one
// bucket for both): past it a stream request gets 503 with Retry-After,
// counted under accept_rate, before the route's Acceptor runs.
func TestMaxAcceptRateCountsStreams(t *testing.T) {
	const rate, tries = 2, 8
	var accepted atomic.Int64
	srv := New[struct{}](Options{MaxAcceptRate: rate})
	srv.Handle("/x", Funcs[struct{}]{})
	srv.HandleStream("/s", "text/event-stream", acceptCounter{n: &accepted})
	addr := start(t, srv)
	begin := time.Now()
	ok, refused := 0, 0
	for i := range tries {
		if i == tries/2 {
			// An upgrade in the middle draws on the same bucket.
			if c, err := wstest.Dial(addr, "/x"); err == nil {
				ok++
				c.Close()
			} else if he := (*wstest.HTTPStatusError)(nil); errors.As(err, &he) && he.Status == 503 {
				refused++
			} else {
				t.Fatal(err)
			}
		}
		nc, _, status := streamClient(t, addr, getReq("/s"))
		switch status {
		case 200:
			ok++
		case 503:
			refused++
		default:
			t.Fatalf("stream %d: status %d", i, status)
		}
		nc.Close()
	}
	elapsed := time.Since(begin)
	// A slow box may earn a token or two back during the loop.
	extra := int(elapsed.Seconds()*rate) + 1
	if ok < rate || ok > rate+extra || refused == 0 {
		t.Fatalf("%d streams and upgrades admitted, %d refused in %v at %d/s", ok, refused, elapsed, rate)
	}
	if got := accepted.Load(); got > int64(ok) {
		t.Fatalf("the stream Acceptor ran %d times for %d admitted", got, ok)
	}
	waitFor(t, 10*time.Second, "the refusals counted", func() bool {
		return srv.Stats().Closes["accept_rate"] == uint64(refused)
	})
}

// A 503 for a stream carries a whole-seconds Retry-After.
func TestStreamOverAcceptRateRetryAfter(t *testing.T) {
	srv := New[struct{}](Options{MaxAcceptRate: 1})
	srv.HandleStream("/s", "text/event-stream", Funcs[struct{}]{})
	addr := start(t, srv)
	first, _, status := streamClient(t, addr, getReq("/s"))
	if status != 200 {
		t.Fatalf("first stream: status %d", status)
	}
	defer first.Close()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(nc, getReq("/s")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); resp.StatusCode != 503 || err != nil || ra < 1 {
		t.Fatalf("second stream within a second at 1/s: %d, Retry-After %q; want 503 with whole seconds", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// acceptCounter is a stream handler whose Acceptor counts its calls.
type acceptCounter struct {
	Funcs[struct{}]
	n *atomic.Int64
}

func (h acceptCounter) Accept(*Conn[struct{}], *Request) error { h.n.Add(1); return nil }
