package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// APIPubConfig is a run of "wsbench apipub": Conns keep-alive connections,
// each posting to wsd's POST /api/publish one request after the other.
type APIPubConfig struct {
	URL      string // http://127.0.0.1:PORT/api/publish
	Key      string
	Channel  string // the channel, or with Channels a pattern such as feed:%d
	Size     int    // bytes of data (a JSON string)
	Conns    int
	Duration time.Duration
	// Channels > 0 spreads the publishes over the channels Channel names
	// (0..Channels-1), one per request: round robin over all connections
	// together, or a random one per request with Random.
	Channels int
	Random   bool
	// CPUPID, when set, is the server process whose CPU time (user +
	// system, /proc/PID/stat) the result reports for the run.
	CPUPID int
}

// APIPubResult is what the run measured.
type APIPubResult struct {
	OK, Failed uint64        // answered 200, anything else (status or I/O)
	Elapsed    time.Duration // the measured window
	Reconnects uint64        // connections opened after the first (0 with keep-alive)
	P50, P99   time.Duration // request latency of the 200s
	FirstError string
	// CPUSeconds is CPUPID's CPU time over the run (10 ms resolution).
	CPUSeconds float64
}

// PerSecond is OK publishes per second.
func (r APIPubResult) PerSecond() float64 { return float64(r.OK) / r.Elapsed.Seconds() }

// CPUPerPublish is the server's CPU time per accepted publish, 0 when not
// measured or nothing was accepted.
func (r APIPubResult) CPUPerPublish() time.Duration {
	if r.OK == 0 {
		return 0
	}
	return time.Duration(r.CPUSeconds * float64(time.Second) / float64(r.OK))
}

// apiRequest builds the publish requests of a run; its fields are
// read-only once made, so every connection may share one.
type apiRequest struct {
	head     string // request line and headers up to the Content-Length value
	pre      string // the body up to the channel name
	post     string // the body after it
	channel  string // the channel, or the pattern when channels > 0
	channels int
}

func newAPIRequest(u *url.URL, c APIPubConfig) apiRequest {
	return apiRequest{
		head: fmt.Sprintf("POST %s HTTP/1.1\r\nHost: %s\r\nAuthorization: apikey %s\r\nContent-Type: application/json\r\nContent-Length: ",
			u.RequestURI(), u.Host, c.Key),
		pre:      `{"channel":"`,
		post:     `","data":"` + string(bytes.Repeat([]byte{'x'}, max(c.Size-2, 0))) + `"}`,
		channel:  c.Channel,
		channels: c.Channels,
	}
}

// append appends the request publishing to channel i (ignored without
// channels). ch is scratch for the channel name; both are returned for
// reuse, so a connection builds its requests without allocating.
func (r *apiRequest) append(dst, ch []byte, i int) ([]byte, []byte) {
	ch = ch[:0]
	if r.channels > 0 {
		ch = appendSpreadChannel(ch, r.channel, i)
	} else {
		ch = append(ch, r.channel...) // checkChannel: nothing to escape
	}
	dst = append(dst, r.head...)
	dst = strconv.AppendInt(dst, int64(len(r.pre)+len(ch)+len(r.post)), 10)
	dst = append(dst, "\r\n\r\n"...)
	dst = append(dst, r.pre...)
	dst = append(dst, ch...)
	return append(dst, r.post...), ch
}

// picker chooses the channel of each request. Safe for concurrent use.
type picker struct {
	n      int
	random bool
	next   atomic.Uint64
}

func (p *picker) pick() int {
	if p.n <= 1 {
		return 0
	}
	if p.random {
		return rand.IntN(p.n)
	}
	return int((p.next.Add(1) - 1) % uint64(p.n))
}

// checkAPIPub checks the run's bounds and its channel or pattern.
func checkAPIPub(c APIPubConfig) error {
	if c.Conns < 1 || c.Conns > 256 || c.Duration <= 0 || c.Duration > 10*time.Minute {
		return errors.New("apipub: --conns 1..256 and --duration up to 10m")
	}
	if c.Channels < 0 {
		return fmt.Errorf("%w: --channels must not be negative", ErrChannelPattern)
	}
	if c.Channels > 0 {
		return checkChannelPattern(c.Channel, c.Channels)
	}
	if c.Random {
		return errors.New("apipub: --pick random needs --channels")
	}
	return checkChannel(c.Channel)
}

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
	if err := checkAPIPub(c); err != nil {
		return APIPubResult{}, err
	}
	req := newAPIRequest(u, c)
	pk := &picker{n: c.Channels, random: c.Random}
	var cpu0 int64
	if c.CPUPID > 0 {
		if cpu0, err = procCPUTicks(c.CPUPID); err != nil {
			return APIPubResult{}, fmt.Errorf("apipub: --cpu-pid %d: %w", c.CPUPID, err)
		}
	}
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
			l := apiPubConn(ctx, u.Host, &req, pk, &ok, &failed, &reconn, func(e string) {
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
	if c.CPUPID > 0 {
		cpu1, err := procCPUTicks(c.CPUPID)
		if err != nil {
			return res, fmt.Errorf("apipub: --cpu-pid %d: %w", c.CPUPID, err)
		}
		res.CPUSeconds = float64(cpu1-cpu0) / userHZ
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		res.P50, res.P99 = lat[len(lat)/2], lat[len(lat)*99/100]
	}
	return res, nil
}

// apiPubConn posts requests over one connection until ctx ends,
// redialling only when the server closes it. It returns the latencies of
// the 200s.
func apiPubConn(ctx context.Context, host string, req *apiRequest, pk *picker, ok, failed, reconn *atomic.Uint64, fail func(string)) []time.Duration {
	var lat []time.Duration
	var buf, ch []byte
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
			buf, ch = req.append(buf[:0], ch, pk.pick())
			t0 := time.Now()
			if _, err = conn.Write(buf); err != nil {
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
