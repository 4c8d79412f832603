//go:build linux

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// httpPublisher is the broadcast publisher of /ws mode with --publish http:
// one goroutine posting to wsd's HTTP API, one request at a time over one
// keep-alive connection. It keeps the scenario's pacing —
// --rate publishes/s, or closed loop with --pipeline publishes not yet at
// every local subscriber — and never exceeds MaxHTTPPublishRate.
type httpPublisher struct {
	w      *worker
	s      *bcastScenario
	url    string
	auth   string
	client *http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wakeCh chan struct{}

	ctr     liveCounters
	mu      sync.Mutex
	reasons map[string]uint64

	out     []pubMsg // publishes not yet at every local subscriber
	body    []byte
	resp    []byte
	holdoff int64 // after an error, no publish before this (monotonic ns)
}

// httpErrorBackoff spaces publishes after a failed one, so that a
// misconfigured API (403, 401) is not hammered.
const httpErrorBackoff = 100 * time.Millisecond

func newHTTPPublisher(w *worker, s *bcastScenario) *httpPublisher {
	ctx, cancel := context.WithCancel(context.Background())
	return &httpPublisher{
		w: w, s: s, url: w.cfg.APIURL, auth: "apikey " + w.cfg.APIKey, ctx: ctx, cancel: cancel,
		wakeCh: make(chan struct{}, 1), reasons: map[string]uint64{},
		client: &http.Client{
			Timeout: 5 * time.Second,
			Transport: &http.Transport{
				Proxy: nil, DisableCompression: true, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1,
				ResponseHeaderTimeout: 5 * time.Second,
			},
		},
	}
}

// poke wakes the publisher. Safe from any goroutine.
func (p *httpPublisher) poke() {
	select {
	case p.wakeCh <- struct{}{}:
	default:
	}
}

func (p *httpPublisher) reason(r string) {
	p.mu.Lock()
	p.reasons[r]++
	p.mu.Unlock()
	p.ctr.errors.Add(1)
}

func (p *httpPublisher) run() {
	defer p.w.wg.Done()
	defer p.client.CloseIdleConnections()
	minGap := int64(time.Second) / MaxHTTPPublishRate
	interval := p.s.interval // rate mode: as asked (Config caps it at MaxHTTPPublishRate)
	var next, last int64 = -1, -minGap
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		phase := p.w.phase.Load()
		if phase >= phStop {
			return
		}
		now := p.w.now()
		wait := int64(20 * time.Millisecond)
		if phase >= phTraffic {
			p.out = p.w.bc.retire(p.out, now, &p.ctr.pubTimeout)
			switch {
			case now < p.holdoff:
				wait = p.holdoff - now
			case p.s.interval > 0:
				if next < 0 {
					next = now
				}
				if now >= next {
					p.publish(now)
					next += interval
					if next < now-int64(time.Second) {
						next = now // no burst to catch up after a stall
					}
					continue
				}
				wait = next - now
			case len(p.out) < p.s.window:
				if now-last >= minGap {
					last = now
					p.publish(now)
					continue
				}
				wait = minGap - (now - last)
			}
		}
		timer.Reset(time.Duration(min(wait, int64(20*time.Millisecond))))
		select {
		case <-p.wakeCh:
		case <-timer.C:
		case <-p.ctx.Done():
			return
		}
	}
}

// publish posts publication seq and waits for the answer.
func (p *httpPublisher) publish(now int64) {
	bc := &p.w.bc
	seq := bc.next
	bc.next++
	bc.acks[seq%bcastRing].Store(0)
	p.body = append(p.body[:0], `{"channel":"`...)
	p.body = append(p.body, p.s.channel...)
	p.body = append(p.body, `","data":`...)
	p.body = appendWSData(p.body, seq, time.Now().UnixNano(), p.s.size)
	p.body = append(p.body, '}')
	p.ctr.published.Add(1)
	p.ctr.sent.Add(1)
	p.ctr.bytesSent.Add(uint64(p.s.size))
	p.out = append(p.out, pubMsg{seq, now})

	req, err := http.NewRequestWithContext(p.ctx, http.MethodPost, p.url, bytes.NewReader(p.body))
	if err != nil {
		p.fail(seq, "http publish: "+err.Error())
		return
	}
	req.Header.Set("Authorization", p.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		switch {
		case p.ctx.Err() != nil:
			p.fail(seq, "http publish: cancelled at the end of the run")
		case errors.Is(err, context.DeadlineExceeded):
			p.fail(seq, "http publish: no answer within 5s")
		default:
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err
			}
			p.fail(seq, errReason("http publish", err))
		}
		return
	}
	if p.resp == nil {
		p.resp = make([]byte, 4096)
	}
	n, err := io.ReadFull(resp.Body, p.resp)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	body := p.resp[:n]
	if resp.StatusCode != http.StatusOK {
		_, _, code := classifyWS(body, nil)
		p.fail(seq, fmt.Sprintf("http publish: HTTP %d %s", resp.StatusCode, code))
		return
	}
	if err != nil || !bytes.HasPrefix(body, []byte(`{"offset":`)) {
		p.fail(seq, "http publish: 200 without {\"offset\":…}")
	}
}

// fail counts a refused publish: it will not be delivered, so it is retired
// at once and the publisher holds off a little.
func (p *httpPublisher) fail(seq uint64, why string) {
	p.ctr.pubErrors.Add(1)
	p.reason(why)
	p.w.bc.acks[seq%bcastRing].Store(ackDone)
	p.holdoff = p.w.now() + int64(httpErrorBackoff)
}
