package bench

import (
	"context"
	"fmt"
	"os"
	"time"
)

// stormPoll is how often the coordinator checks whether every client is
// back; the times it reports come from the workers' own events.
const stormPoll = 20 * time.Millisecond

// stormWait runs the storm's measured part: it signals cfg.KillPID after
// cfg.KillAfter when asked, then waits until every client that was closed
// is up again (or gave up), or cfg.Duration has passed since the storm
// began. It returns the
// storm's start as wall-clock ns (the kill; 0 without one: the first close
// then marks it).
func stormWait(ctx context.Context, cfg Config, tl *timeline) (t0 int64, kill *StormKill, err error) {
	begin := time.Now()
	wait := func(d time.Duration) error {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("storm: %w", ctx.Err())
		}
	}
	if cfg.KillPID != 0 {
		if err := wait(cfg.KillAfter); err != nil {
			return 0, nil, err
		}
		sig, err := killSignal(cfg.KillSignal)
		if err != nil {
			return 0, nil, err
		}
		t0 = time.Now().UnixNano()
		if err := sendSignal(cfg.KillPID, sig); err != nil {
			return 0, nil, fmt.Errorf("--kill-pid %d: %w", cfg.KillPID, err)
		}
		kill = &StormKill{PID: cfg.KillPID, Signal: cfg.KillSignal, AtS: time.Since(begin).Seconds()}
		tl.setPhase("killed")
		begin = time.Now()
	}
	deadline := begin.Add(cfg.Duration)
	for {
		c := tl.sum()
		if c.StormClients > 0 && c.Hit >= c.StormClients && c.Waiting == 0 {
			return t0, kill, nil
		}
		if !time.Now().Before(deadline) {
			return t0, kill, nil
		}
		if err := wait(min(stormPoll, time.Until(deadline))); err != nil {
			return 0, nil, err
		}
	}
}

// checkKillPID refuses PIDs that cannot be the server under test: init,
// wsbench itself or its parent, and processes that do not exist (or that
// we may not signal).
func checkKillPID(pid int) error {
	if pid <= 1 || pid == os.Getpid() || pid == os.Getppid() {
		return fmt.Errorf("--kill-pid %d: not a server wsbench may signal", pid)
	}
	if err := sendSignal(pid, 0); err != nil {
		return fmt.Errorf("--kill-pid %d: %w", pid, err)
	}
	return nil
}
