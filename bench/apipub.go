package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// APIPubConfig is a run of "wsbench apipub": Conns keep-alive connections,
// each posting to wsd's POST /api/publish one request after the other.
type APIPubConfig struct {
	URL      string // http://127.0.0.1:PORT/api/publish
	Key      string
	Channel  string
	Size     int // bytes of data (a JSON string)
	Conns    int
	Duration time.Duration
}

// APIPubResult is what the run measured.
type APIPubResult struct {
	OK, Failed uint64        // answered 200, anything else (status or I/O)
	Elapsed    time.Duration // the measured window
	Reconnects uint64        // connections opened after the first (0 with keep-alive)
	P50, P99   time.Duration // request latency of the 200s
	FirstError string
}

// PerSecond is OK publishes per second.
func (r APIPubResult) PerSecond() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

// RunAPIPub runs the load until Duration has passed or ctx ends. Only
// loopback targets are accepted. Safe to call from any goroutine.
func RunAPIPub(ctx context.Context, c APIPubConfig) (APIPubResult, error) {
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme != "http" {
		return APIPubResult{}, fmt.Errorf("apipub: --url must be http://HOST:PORT/PATH: %q", c.URL)
	}
	if err := checkAPIURL(c.URL, false); err != nil {
		return APIPubResult{}, err
	}
	if c.Conns < 1 || c.Conns > 256 || c.Duration <= 0 || c.Duration > 10*time.Minute {
		return APIPubResult{}, errors.New("apipub: --conns 1..256 and --duration up to 10m")
	}
	body := fmt.Appendf(nil, `{"channel":%q,"data":"%s"}`, c.Channel, bytes.Repeat([]byte{'x'}, max(c.Size-2, 0)))
	req := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: apikey %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		u.RequestURI(), u.Host, c.Key, len(body), body)
	ctx, cancel := context.WithTimeout(ctx, c.Duration)
	defer cancel()
	var res APIPubResult
	var ok, failed, reconn atomic.Uint64
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for range c.Conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := apiPubConn(ctx, u.Host, req, &ok, &failed, &reconn, func(e string) {
				mu.Lock()
				if res.FirstError == "" {
					res.FirstError = e
				}
				mu.Unlock()
			})
			mu.Lock()
			lat = append(lat, l...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.OK, res.Failed, res.Reconnects = ok.Load(), failed.Load(), reconn.Load()
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50, res.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return res, nil
}

// apiPubConn posts req over one connection until ctx ends, redialling
// only when the server closes it. It returns the latencies of the 200s.
func apiPubConn(ctx context.Context, host string, req []byte, ok, failed, reconn *atomic.Uint64, fail func(string)) []time.Duration {
	var lat []time.Duration
	var d net.Dialer
	// The dialer's deadline is ctx's and may pass a moment before ctx
	// reports it: an error then is the end of the run, not a failure.
	over := func() bool {
		dl, _ := ctx.Deadline()
		return ctx.Err() != nil || !time.Now().Before(dl)
	}
	for dials := 0; !over() && dials < 1000; dials++ {
		if dials > 0 {
			reconn.Add(1)
		}
		conn, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			if !over() {
				failed.Add(1)
				fail(err.Error())
			}
			return lat
		}
		stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
		br := bufio.NewReader(conn)
		for ctx.Err() == nil {
			t0 := time.Now()
			if _, err = conn.Write(req); err != nil {
				break
			}
			var resp *http.Response
			if resp, err = http.ReadResponse(br, nil); err != nil {
				break
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				failed.Add(1)
				fail("HTTP " + resp.Status)
			} else {
				ok.Add(1)
				lat = append(lat, time.Since(t0))
			}
			if resp.Close {
				break
			}
		}
		stop()
		_ = conn.Close()
		if err != nil && !over() {
			failed.Add(1)
			fail(err.Error())
		}
	}
	return lat
}
