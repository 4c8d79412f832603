package server

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, gnetGlobals...) }

// gnet's package-level ants pool starts these two at init and never stops
// them; they are not per-server and cannot leak per connection.
var gnetGlobals = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).purgeStaleWorkers"),
	goleak.IgnoreTopFunction("github.com/panjf2000/ants/v2.(*poolCommon).ticktock"),
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// start runs srv on a free loopback port until the test ends.
func start[T any](t testing.TB, srv *Server[T]) string {
	t.Helper()
	addr := freeAddr(t)
	done := make(chan error, 1)
	go func() { done <- srv.ListenAndServe(addr) }()
	select {
	case <-srv.Ready():
	case err := <-done:
		t.Fatalf("ListenAndServe: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("server did not start")
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("ListenAndServe returned %v", err)
		}
	})
	return addr
}

func itoa(i int) string { return strconv.Itoa(i) }

// waitFor polls cond until it holds, failing the test after d. It waits on
// a condition, not on time: d only bounds a broken run.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		<-tick.C
	}
}

// recv returns the next value from ch, failing the test after d.
func recv[V any](t testing.TB, ch <-chan V, d time.Duration, what string) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
		panic("unreachable")
	}
}

// waitWorkersExited waits for the pool's goroutines to end.
func waitWorkersExited[T any](t testing.TB, srv *Server[T]) {
	t.Helper()
	recv(t, srv.work.done, 10*time.Second, "the workers to exit")
}
