package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// rssSource reads the server's resident set size in bytes.
type rssSource func() (int64, error)

// procRSS reads VmRSS from /proc/PID/status.
func procRSS(pid int) rssSource {
	path := fmt.Sprintf("/proc/%d/status", pid)
	return func() (int64, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		return parseVmRSS(b)
	}
}

func parseVmRSS(status []byte) (int64, error) {
	for _, line := range bytes.Split(status, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			f := strings.Fields(string(rest))
			if len(f) < 1 {
				break
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS line")
}

// promRSS scrapes process_resident_memory_bytes from a Prometheus text
// endpoint. The URL must be loopback unless allowRemote.
func promRSS(raw string, allowRemote bool) (rssSource, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--prometheus %q: want an http:// URL", raw)
	}
	if _, err := resolveHost(u.Hostname(), allowRemote); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	return func() (int64, error) {
		req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, raw, nil)
		if err != nil {
			return 0, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return parsePromRSS(io.LimitReader(resp.Body, 8<<20))
	}, nil
}

func parsePromRSS(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "process_resident_memory_bytes"); ok && (strings.HasPrefix(rest, " ") || strings.HasPrefix(rest, "{")) {
			f := strings.Fields(rest)
			if strings.HasPrefix(rest, "{") {
				f = strings.Fields(rest[strings.IndexByte(rest, '}')+1:])
			}
			if len(f) == 0 {
				break
			}
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return 0, err
			}
			return int64(v), nil
		}
	}
	return 0, fmt.Errorf("no process_resident_memory_bytes metric")
}
