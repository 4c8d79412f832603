package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"
)

// WorkerArg is the hidden first argument that makes wsbench a worker
// process (see ServeWorker). Mains that embed bench must dispatch it.
const WorkerArg = "__wsbench-worker"

// handle is the coordinator's view of one worker, in-process or not.
type handle interface {
	snapshot() Counters
	ready() <-chan struct{}
	done() <-chan struct{}
	send(cmd string)
	result() (*workerResult, error) // after done
	abort()
}

// event is one line a worker process writes on stdout.
type event struct {
	Ev     string        `json:"ev"` // progress, ready, result, error
	Snap   *Counters     `json:"snap,omitempty"`
	Result *workerResult `json:"result,omitempty"`
	Msg    string        `json:"msg,omitempty"`
}

// inproc runs the worker in this process.
type inproc struct {
	w       *worker
	cmds    chan string
	readyCh chan struct{}
	doneCh  chan struct{}
	once    sync.Once
	res     *workerResult
	err     error
}

func startInproc(ctx context.Context, cfg Config) (*inproc, error) {
	w, err := newWorker(cfg)
	if err != nil {
		return nil, err
	}
	h := &inproc{w: w, cmds: make(chan string, 8), readyCh: make(chan struct{}), doneCh: make(chan struct{})}
	go func() {
		defer close(h.doneCh)
		h.res, h.err = w.drive(ctx, h.cmds, func() { close(h.readyCh) })
	}()
	return h, nil
}

func (h *inproc) snapshot() Counters             { return h.w.snapshot() }
func (h *inproc) ready() <-chan struct{}         { return h.readyCh }
func (h *inproc) done() <-chan struct{}          { return h.doneCh }
func (h *inproc) result() (*workerResult, error) { return h.res, h.err }
func (h *inproc) send(cmd string) {
	select {
	case h.cmds <- cmd:
	case <-h.doneCh:
	}
}
func (h *inproc) abort() { h.once.Do(func() { close(h.cmds) }) }

// procHandle runs the worker as a child process speaking JSON lines.
type procHandle struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	mu      sync.Mutex
	last    atomic.Pointer[Counters]
	readyCh chan struct{}
	doneCh  chan struct{}
	res     *workerResult
	err     error
	once    sync.Once
}

func startProc(ctx context.Context, cfg Config, exe []string) (*procHandle, error) {
	cmd := exec.Command(exe[0], exe[1:]...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting worker %d: %w", cfg.WorkerIndex, err)
	}
	h := &procHandle{cmd: cmd, stdin: stdin, readyCh: make(chan struct{}), doneCh: make(chan struct{})}
	h.last.Store(&Counters{})
	b, _ := json.Marshal(cfg)
	if _, err := fmt.Fprintf(stdin, "%s\n", b); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	go func() {
		defer close(h.doneCh)
		var readyOnce sync.Once
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			var ev event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				continue
			}
			switch ev.Ev {
			case "progress":
				if ev.Snap != nil {
					h.last.Store(ev.Snap)
				}
			case "ready":
				readyOnce.Do(func() { close(h.readyCh) })
			case "result":
				h.res = ev.Result
			case "error":
				h.err = errors.New(ev.Msg)
			}
		}
		waitErr := cmd.Wait()
		if h.res == nil && h.err == nil {
			h.err = fmt.Errorf("worker %d exited without a result: %v", cfg.WorkerIndex, waitErr)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			h.abort()
		case <-h.doneCh:
		}
	}()
	return h, nil
}

func (h *procHandle) snapshot() Counters             { return *h.last.Load() }
func (h *procHandle) ready() <-chan struct{}         { return h.readyCh }
func (h *procHandle) done() <-chan struct{}          { return h.doneCh }
func (h *procHandle) result() (*workerResult, error) { return h.res, h.err }
func (h *procHandle) send(cmd string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	_, _ = fmt.Fprintln(h.stdin, cmd)
}

// abort closes the worker's stdin (it then closes its connections and
// exits) and kills it if it is still there 10 s later.
func (h *procHandle) abort() {
	h.once.Do(func() {
		h.mu.Lock()
		_ = h.stdin.Close()
		h.mu.Unlock()
		go func() {
			select {
			case <-h.doneCh:
			case <-time.After(10 * time.Second):
				_ = h.cmd.Process.Kill()
			}
		}()
	})
}

// ServeWorker is the body of a worker process: it reads its Config as the
// first JSON line of in, then commands, one a line; it writes events as
// JSON lines to out. EOF on in aborts the run.
func ServeWorker(in io.Reader, out io.Writer) error {
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(ev event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(ev)
	}
	br := bufio.NewReader(in)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("worker: reading config: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(line, &cfg); err != nil {
		return fmt.Errorf("worker: config: %w", err)
	}
	w, err := newWorker(cfg)
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error()})
		return err
	}
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(br)
		for sc.Scan() {
			cmds <- sc.Text()
		}
	}()
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				s := w.snapshot()
				emit(event{Ev: "progress", Snap: &s})
			}
		}
	}()
	res, err := w.drive(context.Background(), cmds, func() { emit(event{Ev: "ready"}) })
	close(stop)
	if err != nil {
		emit(event{Ev: "error", Msg: err.Error()})
		return err
	}
	s := w.snapshot()
	emit(event{Ev: "progress", Snap: &s})
	emit(event{Ev: "result", Result: res})
	return nil
}
