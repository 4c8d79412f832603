package server

import (
	"context"
	"errors"
	mrand "math/rand/v2"
	"time"

	"github.com/wsdhq/wsd/codec"
	"github.com/wsdhq/wsd/poller"
)

// ListenAndServe listens on addr and serves until Shutdown, which makes it
// return nil. It fails at once if the server already started or was shut
// down.
func (s *Server[T]) ListenAndServe(addr string) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("server: already started or shut down")
	}
	s.work.start(s.opts.Workers, s.run)
	err := s.eng.Serve(addr)
	// The loops are gone, so nothing submits conns any more but the workers
	// themselves: they finish what is queued and exit. Not waited for here:
	// a handler stuck past Shutdown's deadline must not keep this blocked.
	s.work.stop()
	close(s.served)
	return err
}

// Shutdown stops accepting (new conns get 503), lets queued messages reach
// their handlers, sends 1001 "server shutting down" to every conn after its
// queued output, waits for the peers' close replies and for every OnClose,
// and stops. When ctx ends first, whatever is still open is closed at once
// and Shutdown returns ctx's error; handlers still running then finish on
// their own.
//
// With Options.DrainSpread set, the close is 1012 (service restart) with a
// retry hint of the conn's own instead: "restart; retry=2.375" asks the
// client to reconnect 2.375 s after it read the close (docs/protocol.md).
// The hints are drawn uniformly from [0, DrainSpread), so the clients of a
// restarting node come back spread over that window, not all at once; the
// node itself does not wait for the window to pass.
//
// Safe from any goroutine. Concurrent and later calls wait for the same
// shutdown and return its result (or their own ctx's error if that ends
// first). After a failed ListenAndServe it returns at once.
func (s *Server[T]) Shutdown(ctx context.Context) error {
	if s.stopping.CompareAndSwap(false, true) {
		s.stopErr = s.shutdown(ctx)
		close(s.stopped)
		return s.stopErr
	}
	select {
	case <-s.stopped:
		return s.stopErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// shutdown is the sequence the first Shutdown runs.
func (s *Server[T]) shutdown(ctx context.Context) error {
	if s.started.CompareAndSwap(false, true) {
		s.work.stop() // never served: ListenAndServe now refuses to start
		return nil
	}
	s.eng.StopAccepting()
	select {
	case <-s.eng.Ready():
	case <-s.served: // the listen failed: there is nothing to drain
		return waitClosed(ctx, s.work.done)
	case <-ctx.Done():
		go s.stopWhenBooted()
		return ctx.Err()
	}
	// HTTP requests already running finish first (new ones get 503): a
	// publication an API call made reaches the connections before their
	// close.
	err := waitUntil(ctx, func() bool { return s.httpBusy.Load() == 0 })
	s.closeAll()
	if err == nil {
		err = waitUntil(ctx, func() bool { return s.eng.Stats().Conns.Load() == 0 })
	}
	// Even with ctx over, Stop begins at once and closes what is left.
	if stopErr := s.eng.Stop(ctx); err == nil && ctx.Err() != nil {
		err = stopErr
	}
	if err == nil {
		err = waitClosed(ctx, s.served)
	}
	if err == nil {
		err = waitUntil(ctx, func() bool { return s.live.Load() == 0 && len(s.httpSem) == 0 })
	}
	if err == nil {
		err = waitClosed(ctx, s.work.done)
	}
	return err
}

// stopWhenBooted stops an engine whose Shutdown ran out of time before the
// listeners were up, so it does not go on serving unowned.
func (s *Server[T]) stopWhenBooted() {
	select {
	case <-s.eng.Ready():
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // begin the stop, do not wait for it
		_ = s.eng.Stop(ctx)
	case <-s.served:
	}
}

func waitClosed(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitUntil polls cond until it holds or ctx ends. The counters it watches
// change on the loops and workers, which have no event to wait on.
func waitUntil(ctx context.Context, cond func() bool) error {
	if cond() {
		return nil
	}
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// closeAll starts the close of every conn, as Shutdown describes.
func (s *Server[T]) closeAll() {
	spread := s.opts.DrainSpread
	if spread <= 0 {
		s.eng.CloseAll(codec.CloseGoingAway, "server shutting down")
		return
	}
	s.eng.CloseEach(codec.CloseServiceRestart, func(*poller.Conn) string {
		return string(codec.AppendRestartReason(nil, mrand.N(spread)))
	})
}
